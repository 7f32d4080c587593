"""Data-parallel training across processes: MPI (mpi4py) on CPUs, NCCL (CuPy) on GPUs.

    # mpiexec -n 2 python train.py
    import minigrad.distributed as dist
    dist.init_process_group("mpi")              # "nccl" for one GPU per rank
    model = nn.parallel.DistributedDataParallel(model)
    ...                                         # each rank trains on its shard of every batch
    if dist.get_rank() == 0:
        minigrad.save(model.state_dict(), "model.npz")

Importing this package needs neither mpi4py nor CuPy; ``init_process_group`` imports what its
backend needs and says how to install it when it is missing.  docs/distributed.md explains
the ring all-reduce, how to launch on one machine and on a cluster, and what it costs.
"""
from .collectives import ReduceOp, all_gather, all_reduce, barrier, broadcast
from .group import (DEFAULT_TIMEOUT, DistributedError, ProcessGroup, Work, destroy_process_group,
                    get_rank, get_world_size, init_process_group, is_available, is_initialized)

__all__ = ["init_process_group", "destroy_process_group", "is_initialized", "is_available",
           "get_rank", "get_world_size", "all_reduce", "broadcast", "all_gather", "barrier",
           "ReduceOp", "Work", "ProcessGroup", "DistributedError", "DEFAULT_TIMEOUT"]
