"""The example models, by name, so a saved model can be rebuilt by examples/predict.py."""
from minigrad import nn


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
