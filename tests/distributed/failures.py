"""Rank 1 fails in the middle of DDP training; rank 0 must not wait for it forever.

    mpiexec -n 2 python tests/distributed/failures.py MODE

MODE: raise (an exception), exit (os._exit), kill (SIGKILL), stall (sleeps; rank 0's collective
times out).  Rank 0 prints "rank 0: step N" after each step and would print "rank 0: finished"
if it ever got through, which it must not.
"""
import os
import signal
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn.parallel import DistributedDataParallel as DDP
from _common import mlp, start

mode = sys.argv[1]
rank, world = start()
model = DDP(mlp(0))
opt = optim.SGD(model.parameters(), lr=0.1)
rng = np.random.default_rng(rank)
for step in range(20):
    if rank == 1 and step == 3:
        if mode == "raise":
            raise ValueError("rank 1 fails on purpose")
        if mode == "exit":
            os._exit(3)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "stall":
            time.sleep(600)
    opt.zero_grad()
    x, y = rng.normal(size=(4, 6)), rng.integers(0, 3, 4)
    nn.functional.cross_entropy(model(mg.tensor(x)), mg.tensor(y)).backward()
    opt.step()
    print(f"rank {rank}: step {step}", flush=True)
print(f"rank {rank}: finished", flush=True)
