"""One optimizer step beside one forward + backward of the MNIST MLP (784-128-10, batch 128),
each update through its fused numba kernel and through the NumPy reference
(MINIGRAD_DISABLE_NUMBA=1): how much of a training step the update costs, and so which
updates are worth a fused kernel (docs/optim.md).

    python -m benchmarks.optim_steps [--repeat 21] [--threads 1]

Interleaved rounds on the host clock, medians and spreads (benchmarks/common.py).
"""
import argparse
import os

import minigrad as mg
from minigrad import nn, optim

from . import common

OPTIMIZERS = {
    "SGD (momentum)": lambda ps: optim.SGD(ps, lr=0.0, momentum=0.9),
    "Adam": lambda ps: optim.Adam(ps, lr=0.0),
    "RMSprop": lambda ps: optim.RMSprop(ps, lr=0.0),
    "Adagrad": lambda ps: optim.Adagrad(ps, lr=0.0),
    "Adadelta": lambda ps: optim.Adadelta(ps, lr=0.0),
}


def _with_numba(fn, on):
    def call():
        os.environ["MINIGRAD_DISABLE_NUMBA"] = "0" if on else "1"
        fn()
    return call


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.optim_steps", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=21, help="interleaved rounds (default 21)")
    p.add_argument("--threads", type=int, default=1, help="BLAS and numba threads (default 1)")
    p.add_argument("--min-sample", type=float, default=0.02, help="seconds per sample at least (default 0.02)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    common.prepare_process()
    previous = os.environ.get("MINIGRAD_DISABLE_NUMBA")
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    x, y = mg.randn(128, 784), mg.randint(0, 10, size=(128,))

    def forward_backward():
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()

    forward_backward()  # every parameter has a gradient from here on (lr = 0 keeps them put)
    calls = {"forward + backward": (_with_numba(forward_backward, True), common.cpu_clock)}
    for name, make in OPTIMIZERS.items():
        opt = make(model.parameters())
        calls[f"{name}, numba"] = (_with_numba(opt.step, True), common.cpu_clock)
        calls[f"{name}, NumPy"] = (_with_numba(opt.step, False), common.cpu_clock)
    try:
        with common.thread_settings(blas=args.threads, numba=args.threads):
            stats = common.measure(calls, args.repeat, min_sample=args.min_sample)
    finally:
        if previous is None:
            os.environ.pop("MINIGRAD_DISABLE_NUMBA", None)
        else:
            os.environ["MINIGRAD_DISABLE_NUMBA"] = previous
    step = stats["forward + backward"]
    rows = [(name, common.fmt_time(s["median"]), f"{s['spread']:.0%}", f"{s['median'] / step['median']:.3f}")
            for name, s in stats.items()]
    print(common.machine())
    print(common.table(rows, ["call", "median", "spread", "of a forward + backward"]))
    return stats


if __name__ == "__main__":
    main()
