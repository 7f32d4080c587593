"""PyTorch's ``torch.utils.data``, under its name: the datasets and the DataLoader of
``minigrad.data`` (the one implementation; this module only names them).

    from minigrad.utils.data import DataLoader, TensorDataset, random_split

``DataLoader`` accepts PyTorch's ``num_workers`` and ``pin_memory`` and loads in this process
(docs/data.md says why).
"""
from ...data import (  # noqa: F401
    DataLoader, Dataset, DistributedSampler, Subset, TensorDataset, default_collate, random_split,
)
from . import distributed  # noqa: F401,E402  (torch.utils.data.distributed.DistributedSampler)

__all__ = ["DataLoader", "Dataset", "DistributedSampler", "Subset", "TensorDataset",
           "default_collate", "random_split"]
