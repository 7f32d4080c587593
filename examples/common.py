"""What the MNIST examples share: command-line flags, data, the training loop with a progress
bar, evaluation with metrics, plots and saving.  Each example only defines its model."""
import argparse
import json
import os
import sys
import time

if "--distributed" in sys.argv:
    # Each rank would start a BLAS and a numba thread per core: N ranks on one machine then
    # oversubscribe it (many times slower: the threads spin waiting for cores).  Share the cores
    # out instead (MPICH and Open MPI say how many ranks run here), unless told otherwise; this
    # must happen before NumPy and numba are imported.
    _local = os.environ.get("MPI_LOCALNRANKS") or os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or 1
    for _pool in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_pool, str(max(1, (os.cpu_count() or 1) // int(_local))))

import numpy as np  # noqa: E402
from tqdm import tqdm

import minigrad as mg
from minigrad import nn, optim
from minigrad.data import MNIST, DataLoader, DistributedSampler, TensorDataset
from minigrad.metrics import classification_report, confusion_matrix

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, prepare  # noqa: E402


def parse_args(description, model, epochs, batch_size, lr, schedule="constant", cells=None):
    """The shared flags; ``cells``: the models the example can train, chosen with --cell
    (``model`` is then the default)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--schedule", choices=["constant", "cosine"], default=schedule,
                   help="learning rate over training: constant, or cosine decay to 0 over every step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="folder holding mnist/ (default: $MINIGRAD_DATA, then the cache)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--save", default=None, metavar="PATH", help="save the trained model (.npz)")
    p.add_argument("--plot", default=None, metavar="PATH", help="loss/accuracy curves as PNG (needs matplotlib)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    p.add_argument("--distributed", action="store_true",
                   help="data parallel over the ranks of `mpiexec -n N` (MPI on cpu, NCCL on cuda); "
                        "--batch-size stays the global batch, split evenly across the ranks")
    if cells:
        p.add_argument("--cell", choices=cells, default=model, help=f"the recurrent cell (default {model})")
    args = p.parse_args()
    args.model = args.cell if cells else model
    return args


def load_data(args, rank=0, world=1):
    """MNIST prepared for ``args.model`` (see models.prepare); labels int64.  With several
    ranks, each trains on its shard (a DistributedSampler) with its share of the batch."""
    train, test = MNIST(args.data, train=True), MNIST(args.data, train=False)

    def arrays(ds, limit=None):
        x = prepare(np.asarray(ds.data[:limit]), args.model)
        y = np.asarray(ds.targets[:limit], dtype=np.int64)
        return mg.tensor(x, device=args.device), mg.tensor(y, device=args.device)

    train_set = TensorDataset(*arrays(train, args.limit))
    if world == 1:
        train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=args.seed)
    else:
        train_loader = DataLoader(train_set, batch_size=args.batch_size // world,
                                  sampler=DistributedSampler(train_set, world, rank, seed=args.seed))
    test_loader = DataLoader(TensorDataset(*arrays(test)), batch_size=1000)
    return train_loader, test_loader


def train_epoch(model, optimizer, loader, epoch, epochs, progress=True, scheduler=None):
    """One pass over ``loader``; returns (mean loss, accuracy).  The running sums stay on the
    model's device and are read back only when the progress bar shows them: on a GPU a
    read-back (``.item()``) would make the host wait for the device at every step."""
    model.train()
    total_loss = correct = 0.0
    seen = 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
               disable=not progress, dynamic_ncols=True)
    for i, (x, y) in enumerate(bar):
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = len(y)
        total_loss = total_loss + loss.array * n
        correct = correct + (logits.array.argmax(axis=1) == y.array).sum()
        seen += n
        if progress and i % 50 == 0:
            bar.set_postfix(loss=f"{float(total_loss) / seen:.4f}", acc=f"{float(correct) / seen:.4f}")
    return float(total_loss) / seen, float(correct) / seen


@mg.no_grad()
def evaluate(model, loader):
    model.eval()
    total_loss, preds, targets = 0.0, [], []
    for x, y in loader:
        logits = model(x)
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        preds.append(logits.argmax(axis=1).numpy())
        targets.append(y.numpy())
    preds, targets = np.concatenate(preds), np.concatenate(targets)
    return total_loss / len(targets), float((preds == targets).mean()), preds, targets


def run(args):
    """Train ``args.model`` on MNIST, print per-epoch results and final metrics; return test accuracy."""
    rank, world = start_distributed(args) if args.distributed else (0, 1)
    mg.manual_seed(args.seed)
    model = MODELS[args.model]().to(args.device)
    print(model)
    if args.distributed:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    train_loader, test_loader = load_data(args, rank, world)
    scheduler = None
    if args.schedule == "cosine":  # stepped after every optimizer step
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(train_loader))
    history = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    for epoch in range(1, args.epochs + 1):
        if world > 1:
            train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        train_loss, train_acc = train_epoch(model, optimizer, train_loader, epoch, args.epochs,
                                            progress=not args.no_progress and rank == 0,
                                            scheduler=scheduler)
        if world > 1:  # every rank saw as many examples: the mean of the ranks' means is the mean
            train_loss, train_acc = mean_over_ranks(train_loss, train_acc)
        seconds = time.perf_counter() - start
        test_loss, test_acc, preds, targets = evaluate(model, test_loader)
        for k, v in zip(history, (train_loss, train_acc, test_loss, test_acc)):
            history[k].append(v)
        print(f"epoch {epoch}/{args.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
              f"test loss {test_loss:.4f} acc {test_acc:.4f}  ({seconds:.1f} s)", flush=True)

    confusion = confusion_matrix(preds, targets, num_classes=10)
    print("\nconfusion matrix (rows: true digit, columns: predicted)")
    print(confusion)
    print(classification_report(confusion))
    print(f"test accuracy: {test_acc:.4f}")
    if args.save and rank == 0:  # one writer; minigrad.save replaces the file atomically
        mg.save({"model": args.model, "state_dict": model.state_dict(),
                 "history": json.dumps(history)}, args.save)
        print(f"saved model to {args.save}")
    if args.plot and rank == 0:
        plot_history(history, args.plot)
    return test_acc


def start_distributed(args):
    """Join the job (``mpiexec -n N python ... --distributed``); only rank 0 keeps stdout."""
    from minigrad import distributed as dist

    dist.init_process_group("mpi" if args.device == "cpu" else "nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} (the global batch) must be a multiple "
                         f"of the number of ranks, {world}")
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # the other ranks print the same numbers: keep one copy
    print(f"data parallel: {world} ranks ({args.device}), {args.batch_size // world} examples "
          f"per rank and step, global batch {args.batch_size}")
    return rank, world


def mean_over_ranks(*values):
    from minigrad import distributed as dist

    values = np.array(values, dtype=np.float64)
    dist.all_reduce(values, op="mean")
    return values.tolist()


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or None (with a hint) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return None
    return plt


def plot_history(history, path):
    plt = pyplot()
    if plt is None:
        return
    from matplotlib.ticker import MaxNLocator
    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, history["train_loss"], "o-", label="train")
    ax1.plot(epochs, history["test_loss"], "o-", label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(epochs, history["train_acc"], "o-", label="train")
    ax2.plot(epochs, history["test_acc"], "o-", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"saved plot to {path}")
