"""The example models, by name, so a saved model can be rebuilt by examples/predict.py."""
import numpy as np

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


MODELS = {"mlp": mlp, "cnn": cnn}


def prepare(images, model):
    """uint8 images (N, 28, 28) as the model's float32 input.

    The MLP takes pixels scaled to [0, 1] (the Keras recipe); the CNN takes them standardized
    to mean 0, std 1 (the PyTorch MNIST recipe), which makes its few epochs count for more."""
    x = images.astype(np.float32) / 255.0
    if model == "cnn":
        return ((x - MNIST_MEAN) / MNIST_STD).reshape(-1, 1, 28, 28)
    return x
