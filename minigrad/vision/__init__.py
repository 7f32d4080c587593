"""torchvision's names for minigrad's data sets and transforms (``minigrad.data``), so that
``from torchvision import datasets, transforms`` becomes
``from minigrad.vision import datasets, transforms`` and nothing else changes.

``datasets``: MNIST and FashionMNIST.  ``transforms``: Compose, ToTensor, Normalize, Lambda,
RandomCrop, RandomHorizontalFlip, CenterCrop.  (docs/differences.md lists what is not here.)
"""
from . import datasets, transforms  # noqa: F401
