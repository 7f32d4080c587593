"""Time one training epoch of the MNIST MLP (784 -> 128 -> ReLU -> 10, Adam, cross-entropy):
minigrad, a hand-written NumPy loop (the floor for a NumPy framework), and PyTorch on the CPU
when it is installed.  Same process, same data, same batch sizes.

    python benchmarks/train_mlp.py                  # batch 32 and 128, median of 3 epochs each
    python benchmarks/train_mlp.py --batch 128 --repeat 5 --limit 20000
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, mnist_arrays, table, timed, train_steps  # noqa: E402


def minigrad_epoch(x, y, batch):
    import minigrad as mg
    from minigrad import nn, optim
    from minigrad.data import DataLoader, TensorDataset

    mg.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(mg.tensor(x.reshape(-1, 28, 28)), mg.tensor(y)),
                        batch_size=batch, shuffle=True, generator=0)

    return lambda: train_steps(model, opt, loader, nn.functional.cross_entropy)


def numpy_epoch(x, y, batch):
    """The same computation written out by hand: forward, backward, Adam, all in place."""
    rng = np.random.default_rng(0)
    bound1, bound2 = 1 / np.sqrt(784), 1 / np.sqrt(128)
    params = [rng.uniform(-bound1, bound1, (128, 784)).astype(np.float32),
              rng.uniform(-bound1, bound1, 128).astype(np.float32),
              rng.uniform(-bound2, bound2, (10, 128)).astype(np.float32),
              rng.uniform(-bound2, bound2, 10).astype(np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    step = [0]

    def epoch():
        W1, c1, W2, c2 = params
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            n = len(idx)
            h = xb @ W1.T
            h += c1
            a = np.maximum(h, 0)
            z = a @ W2.T
            z += c2
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(n), yb] -= 1          # dL/dz = (softmax - onehot) / n
            p /= n
            da = p @ W2
            da *= h > 0
            grads = [da.T @ xb, da.sum(axis=0), p.T @ a, p.sum(axis=0)]
            step[0] += 1
            t = step[0]
            scale = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            for w, g, mw, vw in zip(params, grads, m, v):
                mw *= b1
                mw += (1 - b1) * g
                vw *= b2
                vw += (1 - b2) * g * g
                w -= scale * mw / (np.sqrt(vw) + eps)

    return epoch


def torch_epoch(x, y, batch):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x.reshape(-1, 28, 28)), torch.from_numpy(y)

    def batches():
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            yield xt[idx], yt[idx]

    return lambda: train_steps(model, opt, batches(), torch.nn.functional.cross_entropy)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    p.add_argument("--repeat", type=int, default=3, help="timed epochs per case (median reported)")
    p.add_argument("--limit", type=int, default=None, help="images per epoch (default: all 60,000)")
    args = p.parse_args()

    x, y, source = mnist_arrays(args.limit)
    print(f"{machine()}\n{len(x)} training images ({source}); median of {args.repeat} epochs after a warm-up, contenders interleaved\n")
    contenders = [("minigrad", minigrad_epoch), ("numpy by hand", numpy_epoch)]
    try:
        import torch  # noqa: F401
        contenders.append(("pytorch", torch_epoch))
    except ImportError:
        print("(PyTorch not installed: pip install torch==2.13.0 to compare)")

    rows = []
    for batch in args.batch:
        results = timed({name: make(x, y, batch) for name, make in contenders}, args.repeat)
        seconds = {name: r[0] for name, r in results.items()}
        for name, s in seconds.items():
            vs_torch = f"{s / seconds['pytorch']:.2f}x" if "pytorch" in seconds else "-"
            rows.append([batch, name, f"{s:.3f}", f"{1e6 * s / -(-len(x) // batch):.0f}",
                         f"{s / seconds['numpy by hand']:.2f}x", vs_torch])
    print(table(rows, ["batch", "implementation", "s / epoch", "us / step", "vs numpy", "vs pytorch"]))


if __name__ == "__main__":
    main()
