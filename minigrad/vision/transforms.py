"""torchvision's ``transforms`` (``minigrad.data.transforms``, where they are explained).

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])

Each also runs on a whole batch at once: the DataLoader calls ``apply_batch``, so a pipeline
costs a few NumPy operations per batch, not a Python loop over the images.
"""
from ..data.transforms import (  # noqa: F401
    CenterCrop, Compose, Lambda, Normalize, RandomCrop, RandomHorizontalFlip, ToTensor,
)

__all__ = ["CenterCrop", "Compose", "Lambda", "Normalize", "RandomCrop", "RandomHorizontalFlip",
           "ToTensor"]
