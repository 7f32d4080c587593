"""Shared by the scripts that tests/test_distributed.py launches with ``mpiexec -n 2``.

Each script asserts what it checks on every rank and ends by printing ``rank R: <name> ok``;
the pytest side requires that line from every rank, so a script that stops early cannot pass.
"""
import numpy as np

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn


def start(world=2):
    """Join the job and insist it is the expected size (a mismatched mpiexec would start
    separate one-rank jobs that each pass on their own)."""
    dist.init_process_group("mpi")
    assert dist.get_world_size() == world, f"expected {world} ranks, got {dist.get_world_size()}"
    return dist.get_rank(), dist.get_world_size()


def done(name):
    print(f"rank {dist.get_rank()}: {name} ok", flush=True)


def gather(array):
    """Every rank's copy of ``array``, as a list indexed by rank."""
    out = [np.empty_like(array) for _ in range(dist.get_world_size())]
    dist.all_gather(out, np.ascontiguousarray(array))
    return out


def mlp(seed, widths=(6, 16, 16, 3)):
    """A float64 MLP; different seeds give different weights (DDP must replace them by rank 0's)."""
    mg.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1]), nn.Tanh()]
    return nn.Sequential(*layers[:-1]).double()


def cnn(seed):
    mg.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 5)).double()


def shard(array, rank, world):
    """Rank ``rank``'s equal slice of a global batch."""
    n = len(array) // world
    return array[rank * n:(rank + 1) * n]
