"""Run an example script as __main__ with ``minigrad.save`` instrumented: every call appends
"<rank> <path>" to ``$SAVE_LOG.<rank>``, so a test sees which ranks wrote checkpoints.

    mpiexec -n 2 python tests/distributed/run_example.py examples/mnist_mlp.py --distributed ...
"""
import os
import runpy
import sys

import minigrad as mg
import minigrad.distributed as dist

real_save = mg.save


def logged_save(obj, path):
    rank = dist.get_rank()
    with open(f"{os.environ['SAVE_LOG']}.{rank}", "a") as log:
        log.write(f"{rank} {path}\n")
    return real_save(obj, path)


mg.save = logged_save
script = os.path.abspath(sys.argv[1])
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
