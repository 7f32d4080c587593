"""DistributedSampler: each rank's share of a dataset, for data-parallel training.

    sampler = DistributedSampler(train, shuffle=True, seed=0)    # rank and world from the group
    loader = DataLoader(train, batch_size=64, sampler=sampler)   # 64 examples per rank
    for epoch in range(epochs):
        sampler.set_epoch(epoch)                                 # a new order every epoch
        for x, y in loader: ...

Every rank draws the same permutation (seeded by ``seed + epoch``, so no communication is
needed) and takes every ``num_replicas``-th index of it starting at its rank: the shards are
disjoint and together cover the dataset.  When the dataset does not divide evenly, PyTorch's
rule applies: without ``drop_last`` the permutation is padded with its own first indices up to
a multiple of ``num_replicas`` (a few examples are seen twice per epoch), with ``drop_last``
its tail is dropped (a few are not seen that epoch).  Either way every rank gets the same
number of examples, hence the same number of batches, so no rank waits in an all-reduce that
the others never start.
"""
import math
import numbers

import numpy as np

__all__ = ["DistributedSampler"]


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"DistributedSampler: {what} must be an int, got {type(value).__name__}")
    return int(value)


class DistributedSampler:
    """Indices of this rank's shard of ``dataset``, one epoch at a time (PyTorch's semantics).

    ``num_replicas`` and ``rank`` default to the process group's world size and rank.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from .. import distributed as dist  # only when the group is asked for
            if not dist.is_initialized():
                raise RuntimeError(
                    "DistributedSampler: pass num_replicas and rank, or call "
                    "minigrad.distributed.init_process_group() first to take them from the job"
                )
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        self.num_replicas = _count(num_replicas, "num_replicas")
        self.rank = _count(rank, "rank")
        if self.num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {self.num_replicas}")
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {self.num_replicas}), got {self.rank}")
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = _count(seed, "seed")
        self.drop_last = bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Use the permutation of ``epoch`` (call it at the start of every epoch, on every rank)."""
        self.epoch = _count(epoch, "epoch")

    def indices(self):
        """This rank's indices for the current epoch, as an int64 array."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n, dtype=np.int64)
        if self.total_size > n:  # pad with the first indices, cycling if needed (n < replicas)
            order = np.resize(order, self.total_size)
        else:
            order = order[:self.total_size]
        return order[self.rank::self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler(rank {self.rank} of {self.num_replicas}, {self.num_samples} of "
                f"{len(self.dataset)} examples, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last}, epoch={self.epoch})")
