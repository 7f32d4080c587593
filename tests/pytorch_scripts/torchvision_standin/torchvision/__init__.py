"""A stand-in for the parts of torchvision that tests/pytorch_scripts/mnist_main.py uses, for
its PyTorch run where torchvision is not installed (each torchvision wheel is built for one
torch version, so it is often missing or broken beside a given torch).  tests/
test_pytorch_scripts.py puts this folder on PYTHONPATH only then.

It does what torchvision documents, no more: ``datasets.MNIST`` reads the four IDX files from
``root/mnist/`` (where the test writes them) and gives ``(image, label)`` with the image a uint8
(28, 28) array (torchvision: a PIL image of it); ``transforms.ToTensor`` divides uint8 pixels by
255 into a float32 (1, H, W) tensor; ``Normalize`` computes ``(x - mean) / std`` per channel;
``Compose`` chains them.
"""
from . import datasets, transforms  # noqa: F401
