"""Time conv2d and max_pool2d (forward, and forward + backward) alone, for the two layer shapes
of the MNIST CNN at batch 128, in minigrad and (when installed) PyTorch.

    python benchmarks/conv_ops.py [--repeat 30] [--dtype float32]

"fwd+bwd" is one forward plus the backward for all inputs that need a gradient, as in a
training step: the first conv's input is the image batch, which needs no gradient.  minigrad's
inputs and output gradients are laid out as they arrive inside the CNN (conv outputs, and the
arrays computed from them, are channels-last: see docs/derivations/conv.md); PyTorch's are its
usual contiguous NCHW tensors.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import minigrad as mg  # noqa: E402
from common import machine, table, timed  # noqa: E402

# (name, x shape, weight shape, does x need a gradient?)
LAYERS = [
    ("conv1", (128, 1, 28, 28), (32, 1, 3, 3), False),
    ("conv2", (128, 32, 13, 13), (64, 32, 3, 3), True),
]
POOLS = [("pool1", (128, 32, 26, 26)), ("pool2", (128, 64, 11, 11))]


def channels_last(a):
    """The same values with (N, H, W, C) memory, as conv2d outputs (and what follows them) have."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def minigrad_cases(dtype, rng):
    cases = {}
    for name, xs, ws, x_grad in LAYERS:
        x = rng.standard_normal(xs).astype(dtype)
        x = mg.Tensor(x if name == "conv1" else channels_last(x), requires_grad=x_grad)  # images / pool output
        w = mg.tensor(rng.standard_normal(ws).astype(dtype) * 0.1, requires_grad=True)
        b = mg.tensor(np.zeros(ws[0], dtype), requires_grad=True)
        g = mg.Tensor(channels_last(rng.standard_normal(mg.conv2d(x, w, b).shape).astype(dtype)))

        def fwd(x=x, w=w, b=b):
            with mg.no_grad():
                mg.conv2d(x, w, b)

        def fwd_bwd(x=x, w=w, b=b, g=g):
            mg.conv2d(x, w, b).backward(g)
            x.grad = w.grad = b.grad = None

        cases[name] = (fwd, fwd_bwd)
    for name, xs in POOLS:
        x = mg.Tensor(channels_last(rng.standard_normal(xs).astype(dtype)), requires_grad=True)  # relu(conv)
        g = rng.standard_normal(mg.max_pool2d(x, 2).shape).astype(dtype)
        g = mg.Tensor(channels_last(g) if name == "pool1" else g)  # from conv2 / from Flatten

        def pfwd(x=x):
            with mg.no_grad():
                mg.max_pool2d(x, 2)

        def pfwd_bwd(x=x, g=g):
            mg.max_pool2d(x, 2).backward(g)
            x.grad = None

        cases[name] = (pfwd, pfwd_bwd)
    return cases


def torch_cases(dtype, rng):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    tdtype = getattr(torch, np.dtype(dtype).name)
    cases = {}
    for name, xs, ws, x_grad in LAYERS:
        x = torch.tensor(rng.standard_normal(xs), dtype=tdtype, requires_grad=x_grad)
        w = torch.tensor(rng.standard_normal(ws) * 0.1, dtype=tdtype, requires_grad=True)
        b = torch.zeros(ws[0], dtype=tdtype, requires_grad=True)
        g = torch.randn(F.conv2d(x, w, b).shape, dtype=tdtype)

        def fwd(x=x, w=w, b=b):
            with torch.no_grad():
                F.conv2d(x, w, b)

        def fwd_bwd(x=x, w=w, b=b, g=g):
            F.conv2d(x, w, b).backward(g)
            x.grad = w.grad = b.grad = None

        cases[name] = (fwd, fwd_bwd)
    for name, xs in POOLS:
        x = torch.tensor(rng.standard_normal(xs), dtype=tdtype, requires_grad=True)
        g = torch.randn(F.max_pool2d(x, 2).shape, dtype=tdtype)

        def pfwd(x=x):
            with torch.no_grad():
                F.max_pool2d(x, 2)

        def pfwd_bwd(x=x, g=g):
            F.max_pool2d(x, 2).backward(g)
            x.grad = None

        cases[name] = (pfwd, pfwd_bwd)
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ours = minigrad_cases(args.dtype, rng)
    theirs = torch_cases(args.dtype, rng)
    labels = {"conv1": "conv2d x(128,1,28,28) w(32,1,3,3)",
              "conv2": "conv2d x(128,32,13,13) w(64,32,3,3)",
              "pool1": "max_pool2d(2) x(128,32,26,26)",
              "pool2": "max_pool2d(2) x(128,64,11,11)"}
    rows = []
    for name, (fwd, fwd_bwd) in ours.items():
        for which, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            # one block per library: interleaving single ops lets each library's spinning
            # threads (OpenBLAS, OpenMP) slow the other one down
            ms = timed({"minigrad": fn}, args.repeat)["minigrad"][0] * 1e3
            row = [labels[name], which, f"{ms:.2f}"]
            if theirs is not None:
                tfn = theirs[name][0 if which == "fwd" else 1]
                tms = timed({"torch": tfn}, args.repeat)["torch"][0] * 1e3
                row += [f"{tms:.2f}", f"{ms / tms:.2f}"]
            rows.append(row)
    headers = ["op", "pass", "minigrad ms"]
    if theirs is not None:
        headers += ["torch ms", "minigrad / torch"]
    print(f"{machine()}; dtype {args.dtype}; numba {'on' if mg.backend.cpu_kernels.use_numba() else 'off'}; "
          f"median of {args.repeat}")
    print(table(rows, headers))


if __name__ == "__main__":
    main()
