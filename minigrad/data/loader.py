"""DataLoader: batches of a dataset as minigrad Tensors, shuffled reproducibly.

    loader = DataLoader(train, batch_size=64, shuffle=True, generator=0)
    for x, y in loader:          # x, y are Tensors; len(loader) batches per epoch
        ...

Fast path: when the dataset has ``get_batch(indices)`` (TensorDataset, MNIST, their Subsets)
and no ``collate_fn`` is given, each batch is one fancy index per array, plus one vectorised
call per transform.  Otherwise examples are fetched one by one and stacked by
``default_collate``.
"""
import numbers

import numpy as np

from .. import backend
from .._arguments import CheckedArguments
from ..tensor import Tensor
from .dataset import as_generator
from .transforms import apply_batch, stack_examples

__all__ = ["DataLoader", "default_collate"]


def default_collate(samples):
    """Stack a list of examples into a batch of arrays, field by field.

    An example is an array / Tensor / number, or a tuple/list of those (one per field).
    Python ints become int64, Python floats the default float dtype (float32).
    """
    if not samples:
        raise ValueError("default_collate: empty batch")
    first = samples[0]
    if isinstance(first, (tuple, list)):
        n = len(first)
        if any(not isinstance(s, (tuple, list)) or len(s) != n for s in samples):
            raise ValueError(f"default_collate: examples have different numbers of fields "
                             f"(first has {n})")
        return tuple(_stack_field([s[k] for s in samples], k) for k in range(n))
    return _stack_field(samples, 0)


def _stack_field(values, k):
    v = values[0]
    if isinstance(v, bool) or isinstance(v, np.bool_):
        return np.asarray(values, dtype=np.bool_)
    if isinstance(v, numbers.Integral):
        return np.asarray(values, dtype=np.int64)
    if isinstance(v, numbers.Real) and not isinstance(v, np.floating):
        return np.asarray(values, dtype=backend.get_default_dtype())
    if isinstance(v, (Tensor, np.ndarray, np.generic)):
        shapes = {tuple(np.shape(x)) for x in values}
        if len(shapes) != 1:
            raise ValueError(f"default_collate: field {k} has examples of different shapes "
                             f"{sorted(shapes)}; pad them or pass a collate_fn")
        if isinstance(v, Tensor) and v.device != backend.CPU:
            xp = v.device.xp
            return xp.stack([x.array for x in values])
        return stack_examples(values)
    raise TypeError(f"default_collate: cannot batch field {k} of type {type(v).__name__}; "
                    "pass a collate_fn")


class DataLoader(CheckedArguments):
    """Iterate over ``dataset`` in batches of ``batch_size`` examples.

    Arguments (PyTorch names):
      shuffle     a new random order every epoch, drawn from ``generator``
      drop_last   drop the last, smaller batch
      generator   None: minigrad's seeded CPU generator (``minigrad.manual_seed`` makes runs
                  repeatable); an int: a private generator with that seed (same sequence of
                  epochs every run); or a ``numpy.random.Generator``
      transform   applied to the inputs (the first field) of every batch, as a NumPy array,
                  before it becomes a Tensor: e.g. ``ToFloat()``.  Vectorised when it has
                  ``apply_batch``.  Not combinable with collate_fn (do it there).
      collate_fn  turns the list of examples into the batch; its result is yielded as is
      device      put batches on this device (default: where the dataset's arrays are)
      sampler     an iterable of dataset indices giving the order of an epoch (and which
                  examples are in it), e.g. a DistributedSampler; not combinable with shuffle
      num_workers, pin_memory, persistent_workers
                  accepted for PyTorch scripts, and checked, but batches are always made in
                  this process: the fast path is one vectorised index per batch, which worker
                  processes would only slow down, and a batch goes straight to ``device``

    Each batch is a tuple of Tensors (one per field; a single Tensor if examples have one
    field).  Every example appears exactly once per epoch (without a sampler).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None,
                 transform=None, collate_fn=None, device=None, sampler=None, num_workers=0,
                 pin_memory=False, persistent_workers=False):
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(num_workers, numbers.Integral) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r} "
                             "(minigrad loads in this process whatever the number)")
        if transform is not None and collate_fn is not None:
            raise ValueError("DataLoader: give either transform or collate_fn, not both "
                             "(apply the transform inside your collate_fn)")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: give either shuffle=True or a sampler, not both "
                             "(the sampler decides the order; DistributedSampler shuffles itself)")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.collate_fn = collate_fn
        self.device = backend.Device(device) if device is not None else None
        self.sampler = sampler
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)  # (see above)
        # An int seed makes one private stream, so successive epochs differ but runs repeat.
        self._generator = None if generator is None else as_generator(generator)

    def __len__(self):
        n = len(self.sampler if self.sampler is not None else self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self, n):
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        gen = self._generator if self._generator is not None else backend.generator("cpu")
        return gen.permutation(n)

    def __iter__(self):
        order = self._order(len(self.dataset))
        n = len(order)
        bs = self.batch_size
        stop = (n // bs) * bs if self.drop_last else n
        fast = self.collate_fn is None and hasattr(self.dataset, "get_batch")
        for start in range(0, stop, bs):
            idx = order[start:start + bs]
            if fast:
                batch = self.dataset.get_batch(idx)
            else:
                samples = [self.dataset[int(i)] for i in idx]
                if self.collate_fn is not None:
                    yield self.collate_fn(samples)
                    continue
                batch = default_collate(samples)
            yield self._to_tensors(batch)

    def _to_tensors(self, batch):
        single = not isinstance(batch, tuple)
        fields = [batch] if single else list(batch)
        if self.transform is not None:
            fields[0] = apply_batch(self.transform, fields[0])
        out = []
        for a in fields:
            if isinstance(a, Tensor):
                a = a.array
            if self.device is not None:
                a = backend.to_device(a, self.device)
            out.append(Tensor._wrap(a))
        return out[0] if single else tuple(out)

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last})")
