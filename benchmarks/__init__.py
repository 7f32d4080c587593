"""minigrad's benchmarks: the kernel laboratory and end-to-end training times.

    python -m benchmarks.ops      every op, every implementation on this machine (benchmarks/ops.py)
    python -m benchmarks.train    training steps of the example models (benchmarks/train.py)

benchmarks/README.md says how to read the output and how to add an op or a model.
"""
