"""What the benchmarks share: the data, a timer, and the table."""
import os
import platform
import statistics
import time

import numpy as np


def mnist_arrays(limit=None, image_shape=(784,)):
    """Training images (float32 in [0, 1]) and labels: real MNIST when it can be found
    (--data / MINIGRAD_DATA / cache), else random data of the same shape (timing does not
    depend on the values)."""
    try:
        from minigrad.data import MNIST
        ds = MNIST(train=True, download=False)
        x = np.asarray(ds.data[:limit], dtype=np.float32) / 255.0
        y = np.asarray(ds.targets[:limit], dtype=np.int64)
        source = "real MNIST"
    except Exception as exc:  # no files: any data of the right shape times the same
        n = limit or 60000
        rng = np.random.default_rng(0)
        x = rng.random((n, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, n)
        source = f"random data ({type(exc).__name__})"
    return np.ascontiguousarray(x.reshape((len(x),) + image_shape)), y, source


def train_steps(model, optimizer, batches, cross_entropy):
    """One pass of training steps; the same code drives minigrad and PyTorch (same API)."""
    for xb, yb in batches:
        loss = cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def timed(fns, repeat):
    """Time each of ``fns`` (a dict name -> function) ``repeat`` times after one warm-up each,
    interleaved (a, b, a, b, ...) so that a slow spell of the machine hits every contender
    alike; return {name: (median seconds, all times)}."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), t) for name, t in times.items()}


def machine():
    try:
        import torch
        torch_info = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_info = "torch not installed"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, numpy {np.__version__}, {torch_info}")


def table(rows, headers):
    """A Markdown table (pastes straight into docs/benchmarks.md)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in rows])
