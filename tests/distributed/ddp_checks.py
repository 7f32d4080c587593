"""DistributedDataParallel on 2 ranks against single-process references (float64).

    mpiexec -n 2 python tests/distributed/ddp_checks.py CHECK

Every rank builds the same data from a fixed seed, trains DDP on its shard, and compares with a
reference model trained in the same process on the whole batch, which is exactly what DDP
promises to reproduce.  Each model starts from weights that differ by rank, so the checks also
see that DDP starts every rank from rank 0's.
"""
import sys

import numpy as np

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn, optim
from minigrad.nn.parallel import DistributedDataParallel as DDP
from _common import cnn, done, gather, mlp, shard, start

F = nn.functional
rank, world = start()
rng = np.random.default_rng(1234)


def loss_of(model, x, y):
    return F.cross_entropy(model(mg.tensor(x)), mg.tensor(y))


def batch(n, shape=(6,), classes=3):
    return rng.normal(size=(n,) + shape), rng.integers(0, classes, n)


def assert_grads_equal(model, reference):
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=name)


def check_gradients():
    """After backward, every .grad is the gradient of the whole batch's mean loss."""
    for make, shape, classes in [(mlp, (6,), 3), (cnn, (1, 8, 8), 5)]:
        x, y = batch(8, shape, classes)
        reference = make(0)
        loss_of(reference, x, y).backward()
        model = DDP(make(rank), bucket_cap_mb=0.0005)  # ~500-byte buckets: several in flight
        assert len(model.buckets) > 1
        for p, q in zip(model.parameters(), reference.parameters()):
            np.testing.assert_array_equal(p.numpy(), q.numpy())  # rank 0's weights everywhere
        loss_of(model, shard(x, rank, world), shard(y, rank, world)).backward()
        assert_grads_equal(model.module, reference)


def check_training():
    """N optimizer steps with b/2 examples per rank equal N steps on b examples in one process,
    and the replicas stay identical."""
    for opt in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.01)):
        reference, model = mlp(0), DDP(mlp(rank), bucket_cap_mb=0.001)
        ref_opt, ddp_opt = opt(reference.parameters()), opt(model.parameters())
        for step in range(6):
            x, y = batch(16)
            for m, o, (xs, ys) in [(reference, ref_opt, (x, y)),
                                   (model, ddp_opt, (shard(x, rank, world), shard(y, rank, world)))]:
                o.zero_grad()
                loss_of(m, xs, ys).backward()
                o.step()
        for p, q in zip(model.parameters(), reference.parameters()):
            np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-11, atol=1e-13)
            mine, theirs = gather(p.numpy())
            np.testing.assert_array_equal(mine, theirs)  # bit-identical replicas


def check_no_sync():
    """Gradients of backwards inside no_sync() stay local (nothing is sent); the next
    synchronized backward averages the accumulated sum."""
    sent = []
    real_all_reduce = dist.all_reduce

    def counting(tensor, op="sum", async_op=False):
        sent.append(tensor.size)
        return real_all_reduce(tensor, op, async_op)

    dist.all_reduce = counting
    (xa, ya), (xb, yb) = batch(8), batch(8)
    reference, local = mlp(0), mlp(0)
    loss_of(reference, xa, ya).backward()
    loss_of(reference, xb, yb).backward()                       # accumulated: A + B
    loss_of(local, shard(xa, rank, world), shard(ya, rank, world)).backward()
    model = DDP(mlp(rank))
    with model.no_sync():
        loss_of(model, shard(xa, rank, world), shard(ya, rank, world)).backward()
    assert sent == [], f"no_sync backward communicated: {sent}"
    assert_grads_equal(model.module, local)                      # this rank's own gradient
    mine, theirs = gather(next(model.parameters()).grad.numpy())
    assert not np.allclose(mine, theirs), "the ranks' local gradients should differ"
    loss_of(model, shard(xb, rank, world), shard(yb, rank, world)).backward()
    assert sent, "the backward after no_sync did not communicate"
    assert_grads_equal(model.module, reference)


def check_overlap():
    """The first bucket's all-reduce starts while backward is still working on earlier layers,
    and all of them have finished when backward returns."""
    events = []
    real_all_reduce = dist.all_reduce

    def recording(tensor, op="sum", async_op=False):
        work = real_all_reduce(tensor, op, async_op)
        events.append(("start", work))
        work.add_done_callback(lambda: events.append(("finish", work)))
        return work

    dist.all_reduce = recording

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(20, 64), nn.Linear(64, 64), nn.Linear(64, 64),
                                         nn.Linear(64, 5)])

        def forward(self, x):
            h = self.layers[0](x)
            if h.requires_grad:  # fires when backward reaches the first layer
                h.register_hook(lambda g: events.append(("backward reached layer 0", None)))
            for layer in self.layers[1:]:
                h = layer(h.tanh())
            return h

    mg.manual_seed(rank)
    model = DDP(Net().double(), bucket_cap_mb=0.04)
    assert len(model.buckets) >= 3, [b.params for b in model.buckets]
    x, y = batch(8, (20,), 5)
    loss = loss_of(model, shard(x, rank, world), shard(y, rank, world))
    loss.backward()
    events.append(("backward returned", None))
    kinds = [k for k, _ in events]
    first_start = kinds.index("start")
    reached = kinds.index("backward reached layer 0")
    assert first_start < reached, f"the first all-reduce did not start during backward: {kinds}"
    assert kinds.count("start") == len(model.buckets) == kinds.count("finish"), kinds
    last_finish = len(kinds) - 1 - kinds[::-1].index("finish")
    assert last_finish < kinds.index("backward returned"), kinds
    # the gradients are the averages already, before any optimizer step
    mine, theirs = gather(model.module.layers[0].weight.grad.numpy())
    np.testing.assert_array_equal(mine, theirs)


def check_buffers():
    """Buffers are broadcast from rank 0 at construction and at each forward that records a
    graph; forwards under no_grad communicate nothing (so rank 0 may evaluate alone)."""
    mg.manual_seed(0)
    bn = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double()
    with mg.no_grad():
        bn[1].running_mean.fill_(float(rank))
    model = DDP(bn)
    np.testing.assert_array_equal(bn[1].running_mean.numpy(), 0.0)   # rank 0's, at construction
    with mg.no_grad():
        bn[1].running_mean.fill_(float(rank + 1))
    model.eval()                                                     # eval: forward keeps buffers
    x = mg.tensor(rng.normal(size=(5, 4)))
    with mg.no_grad():
        model(x)
    np.testing.assert_array_equal(bn[1].running_mean.numpy(), rank + 1.0)  # no_grad: untouched
    model(x)                                                         # records a graph: broadcast
    np.testing.assert_array_equal(bn[1].running_mean.numpy(), 1.0)


def check_state_dict():
    """state_dict has the wrapped module's keys (no "module." prefix) and round-trips."""
    model = DDP(mlp(rank))
    plain = mlp(5)
    assert list(model.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(model.state_dict())
    model.load_state_dict(plain.state_dict())
    for p, q in zip(model.parameters(), plain.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def check_mismatch():
    """Rank 1 builds a different model: both ranks raise, naming the entry and the ranks."""
    model = mlp(0, widths=(6, 16, 3) if rank == 0 else (6, 12, 3))
    try:
        DDP(model)
    except RuntimeError as e:
        message = str(e)
        assert "'0.weight' (16, 6) float64 on rank 0" in message, message
        assert "'0.weight' (12, 6) float64 on rank 1" in message, message
        print(f"rank {rank}: {message}", flush=True)
    else:
        raise AssertionError("DDP accepted different models on the ranks")


def check_unused():
    """A parameter without a gradient: its bucket never starts; the next forward says which."""
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head, self.spare = nn.Linear(6, 4), nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.body(x).tanh())

    mg.manual_seed(0)
    model = DDP(TwoHeads().double())
    x, y = batch(4)
    loss_of(model, x, y).backward()
    try:
        model(mg.tensor(x))
    except RuntimeError as e:
        assert "spare.weight" in str(e) and "spare.bias" in str(e) and "head.weight" not in str(e), str(e)
        print(f"rank {rank}: {e}", flush=True)
    else:
        raise AssertionError("the unused parameter went unnoticed")
    # the buckets that did start must be finished before this rank can leave cleanly
    for b in model.buckets:
        if b.work is not None:
            b.work.wait()


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}
if __name__ == "__main__":
    name = sys.argv[1]
    CHECKS[name]()
    done(name)
