"""Train the Keras-tutorial MLP on MNIST with minigrad.

    python examples/mnist_mlp.py                      # 5 epochs, Adam(1e-3), batch 32
    python examples/mnist_mlp.py --save mlp.npz --plot mlp.png

Flatten -> Linear(784, 128) -> ReLU -> Linear(128, 10), cross-entropy on the logits,
inputs scaled to [0, 1].  Reaches about 97.7% test accuracy.
"""
from common import parse_args, run

if __name__ == "__main__":
    run(parse_args(__doc__.splitlines()[0], model="mlp", epochs=5, batch_size=32, lr=1e-3))
