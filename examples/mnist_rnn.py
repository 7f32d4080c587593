"""Train a bidirectional LSTM on MNIST read row by row (sequential MNIST) with minigrad.

    python examples/mnist_rnn.py                       # BiLSTM(128), 6 epochs, Adam(2e-3) with cosine decay, batch 128
    python examples/mnist_rnn.py --cell gru            # the same with a GRU (or --cell rnn: a plain tanh RNN)
    python examples/mnist_rnn.py --save lstm.npz --plot lstm.png
    python examples/predict.py lstm.npz                # reload it and predict

Each 28x28 image is a sequence of 28 steps of 28 pixels.  nn.LSTM(28, 128, batch_first=True,
bidirectional=True) reads it top to bottom and bottom to top; the two final states (256
numbers) -> Linear(256, 10).  Backpropagation through time runs through the 28 steps of
both directions: docs/derivations/rnn.md.
"""
from common import parse_args, run

if __name__ == "__main__":
    run(parse_args(__doc__.splitlines()[0], model="lstm", epochs=6, batch_size=128, lr=2e-3, schedule="cosine",
                   cells=["lstm", "gru", "rnn"]))
