"""torchvision's ``datasets``: MNIST and FashionMNIST (``minigrad.data.mnist``), with
torchvision's arguments ``root, train, download, transform, target_transform``.

The files are looked for before anything is downloaded, in ``root/mnist``, ``root``,
``root/MNIST/raw`` (where torchvision keeps them), ``$MINIGRAD_DATA`` and the cache
(docs/data.md), so ``download=True`` works offline when they are there.
"""
from ..data.mnist import MNIST, FashionMNIST  # noqa: F401

__all__ = ["MNIST", "FashionMNIST"]
