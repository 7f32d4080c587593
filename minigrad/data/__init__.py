"""Data loading: datasets, the DataLoader, transforms, MNIST / Fashion-MNIST (IDX files).

See docs/data.md for where the files are looked for and how to use them offline.
"""
from .dataset import Dataset, Subset, TensorDataset, random_split
from .download import ChecksumError, DatasetNotFoundError, cache_dir
from .idx import IDXError, read_idx
from .loader import DataLoader, default_collate
from .mnist import MNIST, FashionMNIST
from .sampler import DistributedSampler  # each rank's shard, for data parallelism
from .text import CharText, TinyShakespeare
from .transforms import (CenterCrop, Compose, Flatten, Lambda, Normalize, RandomCrop,
                         RandomHorizontalFlip, ToFloat, ToTensor, Transform)

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate",
           "MNIST", "FashionMNIST", "read_idx", "IDXError", "DatasetNotFoundError",
           "ChecksumError", "cache_dir", "Transform", "ToFloat", "Normalize", "Flatten",
           "Compose", "Lambda", "ToTensor", "RandomCrop", "RandomHorizontalFlip", "CenterCrop",
           "DistributedSampler", "CharText", "TinyShakespeare"]
