"""The example models, by name, so a saved model can be rebuilt by examples/predict.py."""
import numpy as np

import minigrad as mg
from minigrad import nn

# The mean and standard deviation of the MNIST training pixels (scaled to [0, 1])
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def mlp():
    """The Keras-tutorial MLP: 784 -> 128 -> ReLU -> 10 (101,770 parameters)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def cnn():
    """The Keras-example CNN: two 3x3 conv + 2x2 max-pool stages, dropout, 10 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 128), nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )


class SequenceClassifier(nn.Module):
    """MNIST read row by row, the classic sequential-MNIST task: each image is a sequence of 28
    steps of 28 pixels, read by a bidirectional recurrent layer (one direction top to bottom,
    the other bottom to top); the two final states -> Linear -> 10 classes."""

    def __init__(self, cell="lstm", hidden=128):
        super().__init__()
        layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = layer(28, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, 10)

    def forward(self, x):             # x (N, 28, 28): N images, 28 rows of 28 pixels
        _, h_n = self.rnn(x)
        if isinstance(h_n, tuple):    # an LSTM returns (h_n, c_n)
            h_n = h_n[0]
        # h_n (2, N, hidden): [-2] the forward direction after the last row, [-1] the
        # backward one after the first
        return self.fc(mg.cat([h_n[-2], h_n[-1]], dim=1))


def lstm():
    """Bidirectional LSTM, 128 units each way, over the 28 rows (164,362 parameters)."""
    return SequenceClassifier("lstm")


def gru():
    return SequenceClassifier("gru")


def rnn():
    return SequenceClassifier("rnn")


MODELS = {"mlp": mlp, "cnn": cnn, "lstm": lstm, "gru": gru, "rnn": rnn}


def prepare(images, model):
    """uint8 images (N, 28, 28) as the model's float32 input.

    The MLP takes pixels scaled to [0, 1] (the Keras recipe); the CNN takes them standardized
    to mean 0, std 1 (the PyTorch MNIST recipe), which makes its few epochs count for more, and
    so do the recurrent models, as (N, 28, 28) sequences of rows."""
    x = images.astype(np.float32) / 255.0
    if model == "cnn":
        return ((x - MNIST_MEAN) / MNIST_STD).reshape(-1, 1, 28, 28)
    if model in ("lstm", "gru", "rnn"):
        return (x - MNIST_MEAN) / MNIST_STD
    return x
