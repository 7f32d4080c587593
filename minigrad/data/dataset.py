"""Datasets: anything with ``__len__`` and ``__getitem__`` (PyTorch's map-style datasets).

A dataset may also offer ``get_batch(indices)``: the whole batch for an integer index array,
as a tuple of arrays (one per field, batch axis first), with its transforms applied.  Array
backed datasets (TensorDataset, MNIST, Subset of either) implement it with one fancy index per
array, and the DataLoader then never loops over examples in Python: that is the fast path.
"""
import abc

import numpy as np

from .. import backend
from .._arguments import CheckedArguments
from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split"]


class Dataset(CheckedArguments, abc.ABC):
    """Base class: subclasses implement ``__getitem__(i)`` (one example) and ``__len__``."""

    @abc.abstractmethod
    def __getitem__(self, index):
        ...

    @abc.abstractmethod
    def __len__(self):
        ...


def _as_array(t, i):
    if isinstance(t, Tensor):
        return t.array
    if isinstance(t, np.ndarray) or backend.device_of(t) == backend.CUDA:
        return t
    raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, "
                    "expected a Tensor or a NumPy array")


class TensorDataset(Dataset):
    """Examples are rows of the given tensors: ``ds[i] == (t0[i], t1[i], ...)`` as Tensors.

    All tensors must have the same size along the first axis (the example axis)::

        ds = TensorDataset(images, labels)      # images (N, ...), labels (N,)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        arrays = [_as_array(t, i) for i, t in enumerate(tensors)]
        shapes = [tuple(a.shape) for a in arrays]
        if any(len(s) == 0 for s in shapes):
            raise ValueError(f"TensorDataset: every tensor needs an example axis (dim 0); "
                             f"got shapes {shapes}")
        if len({s[0] for s in shapes}) != 1:
            raise ValueError(f"TensorDataset: all tensors must have the same size in dim 0 "
                             f"(one row per example), got shapes {shapes}")
        self.arrays = arrays
        self._on_cpu = all(isinstance(a, np.ndarray) for a in arrays)

    @property
    def tensors(self):
        return tuple(Tensor._wrap(a) for a in self.arrays)

    def __len__(self):
        return self.arrays[0].shape[0]

    def __getitem__(self, index):
        return tuple(Tensor._wrap(backend.array_module(a).asarray(a[index])) for a in self.arrays)

    def get_batch(self, indices):
        if self._on_cpu:  # the hot path: one fancy index per array
            return tuple(a[indices] for a in self.arrays)
        return tuple(a[backend.array_module(a).asarray(indices)] for a in self.arrays)


class Subset(Dataset):
    """The examples of ``dataset`` at ``indices`` (keeps the fast path when it has one)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: indices must lie in [-{n}, {n}) for a dataset of "
                             f"{n} examples, got min {self.indices.min()}, max {self.indices.max()}")
        if hasattr(dataset, "get_batch"):  # keep the fast path of the wrapped dataset
            self.get_batch = self._get_batch

    def __len__(self):
        return self.indices.size

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def _get_batch(self, indices):
        return self.dataset.get_batch(self.indices[np.asarray(indices)])


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random Subsets of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1 (the
    remainder after flooring goes to the first parts, one each, as in PyTorch).
    ``generator``: None (minigrad's seeded CPU generator), a seed, or a numpy Generator.
    """
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n or any(x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be non-negative and sum to the "
                         f"dataset size {n} (or be fractions summing to 1)")
    perm = as_generator(generator).permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[start:start + k]))
        start += k
    return out


def as_generator(generator):
    """None -> minigrad's seeded CPU generator; an int -> a new seeded generator."""
    if generator is None:
        return backend.generator("cpu")
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(f"generator: expected None, an int seed or a numpy.random.Generator, "
                    f"got {type(generator).__name__}")
