"""Time training of the MNIST CNN (two conv/ReLU/max-pool stages, Linear(1600, 128), dropout,
Linear(128, 10), Adam) with minigrad and with PyTorch on the CPU when it is installed: same
process, same data, same batch size; reported per 10,000 training images and per step.

    python benchmarks/train_cnn.py                     # batch 128, 10,000 images, median of 3
    python benchmarks/train_cnn.py --images 60000 --repeat 1
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, mnist_arrays, table, timed, train_steps  # noqa: E402


def minigrad_run(x, y, batch):
    import minigrad as mg
    from minigrad import nn, optim

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
    from models import cnn

    mg.manual_seed(0)
    model = cnn()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    batches = [(mg.tensor(x[i:i + batch]), mg.tensor(y[i:i + batch])) for i in range(0, len(x), batch)]

    return lambda: train_steps(model.train(), opt, batches, nn.functional.cross_entropy)


def torch_run(x, y, batch):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(torch.from_numpy(x[i:i + batch]), torch.from_numpy(y[i:i + batch]))
               for i in range(0, len(x), batch)]

    return lambda: train_steps(model.train(), opt, batches, nn.functional.cross_entropy)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--images", type=int, default=10000, help="training images per timed run")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    x, y, source = mnist_arrays(args.images, image_shape=(1, 28, 28))
    steps = -(-len(x) // args.batch)
    print(f"{machine()}\n{len(x)} training images ({source}), batch {args.batch} ({steps} steps); "
          f"median of {args.repeat} runs after a warm-up, contenders interleaved\n")
    contenders = [("minigrad", minigrad_run)]
    try:
        import torch  # noqa: F401
        contenders.append(("pytorch", torch_run))
    except ImportError:
        print("(PyTorch not installed: pip install torch==2.13.0 to compare)")
    results = timed({name: make(x, y, args.batch) for name, make in contenders}, args.repeat)
    seconds = {name: r[0] for name, r in results.items()}
    rows = []
    for name, s in seconds.items():
        ratio = f"{s / seconds['pytorch']:.2f}x" if "pytorch" in seconds else "-"
        rows.append([name, f"{s * 10000 / len(x):.2f}", f"{1000 * s / steps:.1f}", ratio])
    print(table(rows, ["implementation", "s / 10k images", "ms / step", "vs pytorch"]))


if __name__ == "__main__":
    main()
