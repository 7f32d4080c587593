"""PyTorch's ``torch.utils``: only ``utils.data``, the data loading (``minigrad.data``)."""
from . import data  # noqa: F401
