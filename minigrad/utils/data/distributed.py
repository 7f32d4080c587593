"""PyTorch's ``torch.utils.data.distributed``: ``DistributedSampler`` (``minigrad.data.sampler``)."""
from ...data import DistributedSampler  # noqa: F401

__all__ = ["DistributedSampler"]
