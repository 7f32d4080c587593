"""All-reduce bandwidth between the ranks of one machine, beside the machine's memory-copy
bandwidth (the ceiling: on one host, MPI moves the bytes through shared memory).

    mpiexec -n 2 python benchmarks/allreduce.py                 # float32, 4 KB .. 100 MB
    mpiexec -n 2 python benchmarks/allreduce.py --repeat 50 --sizes 0.4 25

For each message size (MB = 10^6 bytes) it times, median of --repeat runs:
  minigrad   minigrad.distributed.all_reduce (non-blocking Iallreduce, polled: what DDP uses)
  MPI        mpi4py's blocking Allreduce on the same buffer (the engine's own speed)
  memcpy     one numpy copy of the same number of bytes on rank 0 while the others wait
and prints the algorithm bandwidth (bytes / time) and the bus bandwidth
(2 (N-1)/N x bytes / time: what each rank actually sends and receives in a ring all-reduce,
comparable across N, as in nccl-tests).  docs/distributed.md explains both.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, table  # noqa: E402

import minigrad.distributed as dist  # noqa: E402


def median_time(fn, repeat):
    """Median seconds of ``fn()``; every rank starts each run together (a barrier first)."""
    fn()
    times = []
    for _ in range(repeat):
        dist.barrier()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    # a collective is as slow as its slowest rank: take the max over ranks of each median
    t = np.array([np.median(times)])
    dist.all_reduce(t, op="max")
    return float(t[0])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[0.004, 0.04, 0.4, 4, 25, 100],
                   help="message sizes in MB (25 MB is DDP's default bucket)")
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()

    dist.init_process_group("mpi")
    from mpi4py import MPI  # the engine's own blocking call, for comparison
    rank, world = dist.get_rank(), dist.get_world_size()
    comm = MPI.COMM_WORLD
    rows = []
    for mb in args.sizes:
        n = max(1, int(mb * 1e6) // 4)
        buf = np.zeros(n, dtype=np.float32)
        other = np.empty_like(buf)
        t_ours = median_time(lambda: dist.all_reduce(buf), args.repeat)
        t_mpi = median_time(lambda: comm.Allreduce(MPI.IN_PLACE, buf), args.repeat)
        t_copy = median_time(lambda: np.copyto(other, buf) if rank == 0 else None, args.repeat)
        nbytes = buf.nbytes
        bus = 2 * (world - 1) / world
        rows.append([f"{nbytes / 1e6:g}",
                     f"{t_ours * 1e3:.3f}", f"{nbytes / t_ours / 1e9:.2f}", f"{bus * nbytes / t_ours / 1e9:.2f}",
                     f"{t_mpi * 1e3:.3f}", f"{nbytes / t_mpi / 1e9:.2f}",
                     f"{t_copy * 1e3:.3f}", f"{nbytes / t_copy / 1e9:.2f}"])
    if rank == 0:
        print(f"all-reduce (sum) of float32 over {world} ranks on one host; median of {args.repeat}")
        print(machine(), f"| MPI: {MPI.Get_library_version().splitlines()[0]}\n")
        print(table(rows, ["MB", "minigrad ms", "algo GB/s", "bus GB/s", "MPI ms", "MPI algo GB/s",
                           "memcpy ms", "memcpy GB/s"]))


if __name__ == "__main__":
    main()
