"""minigrad.distributed, nn.parallel.DistributedDataParallel and data.DistributedSampler.

The multi-process tests launch the scripts in tests/distributed/ with ``mpiexec -n 2`` (one
helper, ``mpiexec`` below, knows the flags and environment that work in a container) and skip
when mpi4py or mpiexec is missing (``pip install -e ".[distributed]"``).  Each script asserts
on every rank and prints ``rank R: <check> ok`` at the end; the tests require that line from
both ranks.  The sampler tests need no MPI.
"""
import importlib.util
import math
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minigrad as mg
import minigrad.distributed as dist
from minigrad import nn
from minigrad.data import DataLoader, DistributedSampler, TensorDataset
from tests.helpers import real_mnist_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "distributed"
EXAMPLES = ROOT / "examples"


def find_mpiexec():
    """The mpiexec beside this Python (where `pip install mpich` puts it), else on PATH."""
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def mpi_missing():
    if importlib.util.find_spec("mpi4py") is None:
        return 'mpi4py is not installed (pip install -e ".[distributed]")'
    if find_mpiexec() is None:
        return "mpiexec not found (pip install mpich)"
    return None


needs_mpi = pytest.mark.skipif(mpi_missing() is not None, reason=mpi_missing() or "")


def mpiexec(script, *args, ranks=2, timeout=120, dist_timeout=30, env=None):
    """Run ``script`` on ``ranks`` processes; returns the finished process with ``.seconds``.

    Environment: this checkout first on PYTHONPATH; one BLAS thread per rank (two ranks on two
    cores would otherwise oversubscribe them); hydra's fork launcher (a container may have no
    ssh, and all ranks run on this host anyway); a short collective timeout.  The whole process
    group is killed if it outlives ``timeout``."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
                    MINIGRAD_DIST_TIMEOUT=str(dist_timeout),
                    PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    full_env.setdefault("HYDRA_LAUNCHER", "fork")
    full_env.update(env or {})
    command = [find_mpiexec(), "-n", str(ranks), sys.executable, str(script), *map(str, args)]
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, cwd=ROOT, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{script.name} {args} still running after {timeout} s:\n{out[-3000:]}\n{err[-3000:]}")
    proc.stdout_text, proc.stderr_text = out, err
    proc.seconds = time.monotonic() - start
    return proc


def assert_ranks_ok(proc, name, ranks=2):
    report = f"stdout:\n{proc.stdout_text[-4000:]}\nstderr:\n{proc.stderr_text[-4000:]}"
    assert proc.returncode == 0, report
    for r in range(ranks):
        assert f"rank {r}: {name} ok" in proc.stdout_text, report


# -- collectives and DDP on 2 ranks ---------------------------------------------------------------


@needs_mpi
def test_collectives_on_two_ranks():
    assert_ranks_ok(mpiexec(SCRIPTS / "collectives.py"), "collectives")


@needs_mpi
@pytest.mark.parametrize("check", ["gradients", "training", "no_sync", "overlap", "buffers", "state_dict"])
def test_ddp_matches_single_process(check):
    """See tests/distributed/ddp_checks.py: gradients of the concatenated batch, N training
    steps, no_sync accumulation, the first bucket starting during backward, buffer broadcast,
    state_dict keys."""
    assert_ranks_ok(mpiexec(SCRIPTS / "ddp_checks.py", check), check)


@needs_mpi
def test_ddp_rejects_different_models_on_the_ranks():
    proc = mpiexec(SCRIPTS / "ddp_checks.py", "mismatch")
    assert_ranks_ok(proc, "mismatch")
    assert proc.stdout_text.count("the ranks built different models") == 2


@needs_mpi
def test_ddp_names_parameters_that_got_no_gradient():
    proc = mpiexec(SCRIPTS / "ddp_checks.py", "unused")
    assert_ranks_ok(proc, "unused")
    assert proc.stdout_text.count("gave no gradient to 2 parameter(s)") == 2


@needs_mpi
@pytest.mark.parametrize("mode", ["raise", "exit", "kill", "stall"])
def test_a_failing_rank_stops_the_job_within_the_timeout(mode):
    """Rank 1 raises / exits / is killed / stalls at step 3 of training; rank 0 must exit
    non-zero well before the test's own limit, never finishing its loop."""
    timeout = 5
    proc = mpiexec(SCRIPTS / "failures.py", mode, dist_timeout=timeout, timeout=90)
    report = f"stdout:\n{proc.stdout_text[-3000:]}\nstderr:\n{proc.stderr_text[-3000:]}"
    assert proc.returncode != 0, report
    assert "rank 0: step 2" in proc.stdout_text, report     # it was training before the failure
    assert "rank 0: finished" not in proc.stdout_text, report
    assert proc.seconds < timeout + 30, f"took {proc.seconds:.1f} s\n{report}"
    if mode == "raise":
        assert "rank 1 fails on purpose" in proc.stderr_text and "uncaught ValueError" in proc.stderr_text, report
    if mode == "stall":
        assert f"rank 0 of 2: timed out after {timeout} s waiting for all_reduce" in proc.stderr_text, report


@needs_mpi
def test_example_trains_on_two_ranks_and_rank0_alone_saves(tmp_path):
    """`mpiexec -n 2 python examples/mnist_mlp.py --distributed --save ... --plot ...` on small
    generated IDX files: one copy of the output, one writer of the checkpoint (rank 0), a
    complete checkpoint (no temporary file left) that predict.py loads."""
    from tests.idx_files import make_dataset_dir

    make_dataset_dir(tmp_path / "data" / "mnist", n_train=300, n_test=100)
    out = tmp_path / "out"
    out.mkdir()
    model, plot, log = out / "mlp.npz", out / "mlp.png", tmp_path / "save-log"
    proc = mpiexec(SCRIPTS / "run_example.py", EXAMPLES / "mnist_mlp.py", "--distributed", "--no-progress",
                   "--epochs", "2", "--batch-size", "50", "--save", model, "--plot", plot,
                   env={"MINIGRAD_DATA": str(tmp_path / "data"), "SAVE_LOG": str(log)})
    report = f"stdout:\n{proc.stdout_text[-3000:]}\nstderr:\n{proc.stderr_text[-3000:]}"
    assert proc.returncode == 0, report
    assert "data parallel: 2 ranks (cpu), 25 examples per rank and step, global batch 50" in proc.stdout_text
    for line in ("epoch 2/2", "confusion matrix", "saved model to", "saved plot to"):
        assert proc.stdout_text.count(line) == 1, f"{line!r} not printed exactly once:\n{report}"
    assert (tmp_path / "save-log.0").read_text() == f"0 {model}\n"
    assert not (tmp_path / "save-log.1").exists(), "rank 1 saved a checkpoint"
    assert sorted(p.name for p in out.iterdir()) == ["mlp.npz", "mlp.png"]  # no temp files left
    saved = mg.load(model)
    assert list(saved["state_dict"]) == ["1.weight", "1.bias", "3.weight", "3.bias"]  # no "module."
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", proc.stdout_text).group(1))
    predict = subprocess.run([sys.executable, str(EXAMPLES / "predict.py"), str(model), "--count", "1"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120,
                             env=dict(os.environ, MINIGRAD_DATA=str(tmp_path / "data")))
    assert predict.returncode == 0, predict.stderr
    assert f"accuracy on all 100 test images: {accuracy:.4f}" in predict.stdout


@pytest.mark.slow
@needs_mpi
@pytest.mark.skipif(real_mnist_dir() is None, reason="real MNIST not found (set MINIGRAD_DATA)")
def test_mlp_example_on_two_ranks_reaches_97_5_percent():
    """The target of data-parallel training: 2-rank MPI training of the MNIST MLP (global batch 32, 16 per rank)
    reaches the single-process accuracy."""
    proc = mpiexec(EXAMPLES / "mnist_mlp.py", "--distributed", "--no-progress", timeout=900,
                   env={"MINIGRAD_DATA": real_mnist_dir()})
    assert proc.returncode == 0, proc.stderr_text[-3000:]
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", proc.stdout_text).group(1))
    assert accuracy >= 0.975, proc.stdout_text[-2000:]


@pytest.mark.skipif(not mg.cuda_available() or mg.backend.EMULATED_CUDA,
                    reason="needs a real CUDA GPU with CuPy's NCCL (the emulated device has no NCCL)")
@pytest.mark.skipif(mpi_missing() is not None, reason=mpi_missing() or "")
def test_nccl_one_rank_runs_the_example(tmp_path):
    """The NCCL path end to end on one GPU (a job of one, no mpiexec needed)."""
    from tests.idx_files import make_dataset_dir

    make_dataset_dir(tmp_path / "data" / "mnist", n_train=300, n_test=100)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--distributed", "--device", "cuda",
                           "--no-progress", "--epochs", "1", "--batch-size", "50"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=dict(os.environ, MINIGRAD_DATA=str(tmp_path / "data")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data parallel: 1 ranks (cuda)" in proc.stdout and "test accuracy:" in proc.stdout


# -- one process, no launcher -------------------------------------------------------------------

ONE_RANK = r"""
import datetime, numpy as np, minigrad as mg
import minigrad.distributed as dist
from minigrad import nn, optim
group = dist.init_process_group("mpi", timeout=datetime.timedelta(seconds=42))
assert (dist.get_rank(), dist.get_world_size(), group.timeout) == (0, 1, 42.0)
a = np.array([1.0, 2.0]); dist.all_reduce(a, op="mean"); assert a.tolist() == [1.0, 2.0]
mg.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
ddp = nn.parallel.DistributedDataParallel(model)
x, y = mg.tensor(np.random.default_rng(0).normal(size=(5, 3))), mg.tensor(np.array([0, 1, 1, 0, 1]))
nn.functional.cross_entropy(ddp(x), y).backward()
grads = [p.grad.numpy().copy() for p in model.parameters()]
model.zero_grad()
nn.functional.cross_entropy(model(x), y).backward()
assert all(np.array_equal(g, p.grad.numpy()) for g, p in zip(grads, model.parameters()))
dist.destroy_process_group()
print("one rank ok")
"""


@needs_mpi
def test_a_plain_python_process_is_a_job_of_one():
    proc = subprocess.run([sys.executable, "-c", ONE_RANK], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0 and "one rank ok" in proc.stdout, proc.stderr[-3000:]


WITHOUT_MPI4PY_AND_CUPY = r"""
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mpi4py", "cupy"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")

sys.meta_path.insert(0, Block())
import minigrad, minigrad.distributed as dist
from minigrad.nn.parallel import DistributedDataParallel
from minigrad.data import DistributedSampler
assert "mpi4py" not in sys.modules and not dist.is_available()
try:
    dist.init_process_group("nccl")
except dist.DistributedError as e:
    assert "CuPy" in str(e) and "init_process_group('mpi')" in str(e), e
    print("nccl:", e)
try:
    dist.init_process_group("mpi")
except ImportError as e:
    assert 'pip install -e ".[distributed]"' in str(e), e
    print("mpi:", e)
assert not dist.is_initialized()
print("clean failures ok")
"""


def test_importing_minigrad_needs_neither_mpi4py_nor_cupy():
    """And the two backends fail with a message saying what to install."""
    proc = subprocess.run([sys.executable, "-c", WITHOUT_MPI4PY_AND_CUPY], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0 and "clean failures ok" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.count(":") >= 2  # both messages printed


def test_misuse_without_a_process_group_raises_clearly():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(np.ones(2)),
                 lambda: nn.parallel.DistributedDataParallel(nn.Linear(2, 2))):
        with pytest.raises(dist.DistributedError, match="init_process_group"):
            call()
    with pytest.raises(ValueError, match="unknown backend 'gloo'"):
        dist.init_process_group("gloo")
    for bad in (0, -1, "10", True):
        with pytest.raises(ValueError, match="timeout"):
            dist.init_process_group("mpi", timeout=bad)
    assert not dist.is_initialized()


# -- DistributedSampler (no MPI) ------------------------------------------------------------------


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shards_are_disjoint_equal_and_cover_the_data(shuffle, drop_last):
    for n in range(0, 12):
        for replicas in range(1, 5):
            shards = [DistributedSampler(Sized(n), replicas, r, shuffle=shuffle, seed=3, drop_last=drop_last)
                      for r in range(replicas)]
            lists = [list(s) for s in shards]
            per_rank = n // replicas if drop_last else math.ceil(n / replicas)
            assert all(len(s) == len(lst) == per_rank for s, lst in zip(shards, lists))
            flat = [i for lst in lists for i in lst]
            assert all(0 <= i < n for i in flat)
            if drop_last:  # disjoint; the last n mod replicas examples of the order are left out
                assert len(set(flat)) == len(flat) == n - n % replicas
            else:          # all covered; the padding repeats the order's first examples
                assert set(flat) == set(range(n))
                assert len(flat) - len(set(flat)) == per_rank * replicas - n
            # rank r takes every replicas-th index of one common order, starting at r
            order = [lists[k % replicas][k // replicas] for k in range(per_rank * replicas)]
            if not shuffle:
                expected = list(range(n))
                expected = (expected * (len(order) // max(n, 1) + 1))[:len(order)]
                assert order == expected


def test_sampler_shuffles_the_same_way_on_every_rank_and_anew_each_epoch():
    def orders(epoch, seed=0):
        samplers = [DistributedSampler(Sized(100), 4, r, seed=seed) for r in range(4)]
        for s in samplers:
            s.set_epoch(epoch)
        return [list(s) for s in samplers]

    first = orders(0)
    assert sorted(i for lst in first for i in lst) == list(range(100))  # one common permutation
    assert first == orders(0)                                           # reproducible
    assert first != orders(1) and first != orders(0, seed=1)            # new epoch, new seed
    assert [i for lst in first for i in lst] != list(range(100))


@pytest.mark.torch
def test_sampler_matches_pytorch_without_shuffle():
    torch_data = pytest.importorskip("torch.utils.data")
    for n in (0, 1, 5, 10, 11):
        for replicas in (1, 2, 3, 4):
            for drop_last in (False, True):
                for r in range(replicas):
                    theirs = torch_data.DistributedSampler(range(n), replicas, r, shuffle=False, drop_last=drop_last)
                    ours = DistributedSampler(Sized(n), replicas, r, shuffle=False, drop_last=drop_last)
                    assert list(ours) == list(theirs) and len(ours) == len(theirs), (n, replicas, r, drop_last)


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank must be in"):
        DistributedSampler(Sized(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas must be >= 1"):
        DistributedSampler(Sized(4), 0, 0)
    with pytest.raises(TypeError, match="rank must be an int"):
        DistributedSampler(Sized(4), 2, 1.0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(Sized(4))  # rank and world size from a group that does not exist


def test_dataloader_takes_its_order_from_a_sampler():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    data = TensorDataset(x, np.arange(10))
    sampler = DistributedSampler(data, 2, 1, shuffle=True, seed=7)
    loader = DataLoader(data, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    seen = [int(i) for _, y in loader for i in y.numpy()]
    assert seen == list(sampler)
    sampler.set_epoch(1)
    assert [int(i) for _, y in loader for i in y.numpy()] == list(sampler) != seen
    assert len(DataLoader(data, batch_size=2, sampler=sampler, drop_last=True)) == 2
    with pytest.raises(ValueError, match="shuffle=True or a sampler"):
        DataLoader(data, batch_size=2, shuffle=True, sampler=sampler)


# -- the NCCL engine against CuPy's documented API (no GPU here) ---------------------------------
#
# These fakes follow the signatures of cupy.cuda.nccl (cupy_backends/cuda/libs/nccl.pyx:
# NcclCommunicator(ndev, commId, rank), allReduce(sendbuf, recvbuf, count, datatype, op,
# stream), bcast(buff, count, datatype, root, stream), allGather(sendbuf, recvbuf, count,
# datatype, stream), get_unique_id() -> 128 ints) and of cupy.cuda's Stream and Event.  They
# check what the engine asks of CuPy and in which order; whether NCCL then moves the right
# bytes can only be seen on GPUs (test_nccl_one_rank_runs_the_example).


class FakeArray:
    """A cupy.ndarray stand-in: NumPy storage, a device id, ``.data.ptr``."""

    def __init__(self, array, device=0):
        self.a = array
        self.device = type("Device", (), {"id": device})()

    data = property(lambda self: type("Memory", (), {"ptr": self.a.ctypes.data})())
    size = property(lambda self: self.a.size)
    dtype = property(lambda self: self.a.dtype)
    shape = property(lambda self: self.a.shape)

    def reshape(self, *shape):
        return FakeArray(self.a.reshape(*shape), self.device.id)

    def view(self, dtype):
        return FakeArray(self.a.view(dtype), self.device.id)


def fake_cupy(log):
    import types

    class Stream:
        def __init__(self, non_blocking=False, ptr=1234):
            self.ptr = ptr

        def wait_event(self, event):
            log.append(("wait", self.ptr, event.name))

        def synchronize(self):
            log.append(("synchronize", self.ptr))

    class Event:
        count = 0

        def __init__(self, disable_timing=False):
            Event.count += 1
            self.name, self.done = f"event{Event.count}", False
            events[self.name] = self

        def record(self, stream=None):
            log.append(("record", self.name, stream.ptr))

    class Communicator:
        def __init__(self, ndev, comm_id, rank):
            assert isinstance(comm_id, tuple) and len(comm_id) == 128
            log.append(("init", ndev, comm_id[:3], rank))

        def __getattr__(self, name):  # allReduce, bcast, allGather, check_async_error, ...
            return lambda *args: log.append((name,) + args)

    current, events = Stream(ptr=0), {}
    nccl = types.SimpleNamespace(
        available=True, get_unique_id=lambda: tuple(range(-64, 64)), NcclCommunicator=Communicator,
        NCCL_SUM=0, NCCL_MAX=2, NCCL_INT8=0, NCCL_UINT8=1, NCCL_INT32=2, NCCL_UINT32=3, NCCL_INT64=4,
        NCCL_UINT64=5, NCCL_FLOAT16=6, NCCL_FLOAT32=7, NCCL_FLOAT64=8)
    cuda = types.SimpleNamespace(
        Stream=Stream, Event=Event, events=events, get_current_stream=lambda: current, nccl=nccl,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 2),
        Device=lambda i: type("Device", (), {"id": i, "use": lambda self: log.append(("use", i))})())
    return types.SimpleNamespace(cuda=cuda, ndarray=FakeArray), nccl


class FakeHost:
    """The MPI side as rank 1 of 2, both ranks on host "node"."""

    rank, size, MPI = 1, 2, type("MPI", (), {"Get_processor_name": staticmethod(lambda: "node")})

    def all_gather_json(self, value):
        return ["node", value]

    def broadcast(self, array, src):
        array[:] = np.arange(-64, 64)  # what rank 0's get_unique_id produced
        return type("Done", (), {"wait": lambda self: True})()

    def abort(self):
        raise SystemExit("MPI_Abort")


def test_nccl_engine_drives_cupy_as_documented(monkeypatch, capsys):
    from minigrad.distributed import nccl

    log = []
    cupy, nccl_module = fake_cupy(log)
    monkeypatch.setattr(nccl, "import_nccl", lambda: (cupy, nccl_module))
    engine = nccl.NCCLEngine(FakeHost(), timeout=5)
    # rank 1 is the second rank on its host: GPU 1; the communicator gets rank 0's unique id
    assert log == [("use", 1), ("init", 2, (-64, -63, -62), 1)]

    log.clear()
    grads = FakeArray(np.ones(6, dtype=np.float32), device=1)
    work = engine.all_reduce(grads, "sum")
    ready, done = log[0][1], log[3][1]
    assert log == [("record", ready, 0),                 # inputs ready on the compute stream
                   ("wait", 1234, ready),                # the side stream waits for them
                   ("allReduce", grads.data.ptr, grads.data.ptr, 6, 7, 0, 1234),  # in place, float32, sum
                   ("record", done, 1234)]               # completion, on the side stream
    assert not work.is_completed() and work.keep == (grads,)   # polls the completion event
    log.clear()
    cupy.cuda.events[done].done = True
    assert work.is_completed()
    assert log == [("check_async_error",), ("wait", 0, done)]  # results ordered before later kernels

    log.clear()
    step = FakeArray(np.array(3, dtype=np.int64), device=1)  # 0-d moves as its 8 bytes
    engine.broadcast(step, 0)
    assert log[2] == ("bcast", step.data.ptr, 8, 1, 0, 1234)
    send, recv = FakeArray(np.zeros(3, np.float64), 1), FakeArray(np.zeros((2, 3), np.float64), 1)
    log.clear()
    engine.all_gather(send, recv)
    assert log[2] == ("allGather", send.data.ptr, recv.data.ptr, 24, 1, 1234)

    with pytest.raises(dist.DistributedError, match="GPU tensors, got a ndarray on the CPU"):
        engine.all_reduce(np.ones(2), "sum")
    with pytest.raises(dist.DistributedError, match="on GPU 0 but this rank's NCCL communicator uses GPU 1"):
        engine.all_reduce(FakeArray(np.ones(2), device=0), "sum")
    with pytest.raises(dist.DistributedError, match="cannot reduce dtype bool"):
        engine.all_reduce(FakeArray(np.ones(2, dtype=bool), device=1), "sum")

    # an asynchronous NCCL error while polling aborts the job with the error in the message
    work = engine.all_reduce(grads, "max")
    engine.comm.check_async_error = lambda: (_ for _ in ()).throw(RuntimeError("NCCL_ERROR_SYSTEM_ERROR"))
    with pytest.raises(SystemExit, match="MPI_Abort"):
        work.wait()
    assert "NCCL reported an error during all_reduce(max)" in capsys.readouterr().err


def test_nccl_wait_orders_the_compute_stream_and_never_blocks_the_host(monkeypatch):
    """DistributedDataParallel waits for its buckets at the end of every backward.  With NCCL
    that wait must not make the host wait for the GPU (a synchronisation every step): the
    compute stream waits for the collective's event instead, and the unpacking is queued."""
    from minigrad.distributed import nccl

    log = []
    cupy, nccl_module = fake_cupy(log)
    monkeypatch.setattr(nccl, "import_nccl", lambda: (cupy, nccl_module))
    engine = nccl.NCCLEngine(FakeHost(), timeout=0.5)  # a blocking wait would abort after 0.5 s
    work = engine.all_reduce(FakeArray(np.ones(6, dtype=np.float32), device=1), "sum")
    done = log[-1][1]
    unpacked = []
    work.add_done_callback(lambda: unpacked.append(True))
    log.clear()
    assert work.wait() and unpacked == [True]
    assert not cupy.cuda.events[done].done               # the GPU may still be reducing
    assert ("check_async_error",) in log and ("wait", 0, done) in log
    assert not any(entry[0] == "synchronize" for entry in log)


def test_nccl_engine_refuses_more_ranks_than_gpus_on_a_host(monkeypatch):
    from minigrad.distributed import nccl

    log = []
    cupy, nccl_module = fake_cupy(log)
    cupy.cuda.runtime.getDeviceCount = lambda: 1
    monkeypatch.setattr(nccl, "import_nccl", lambda: (cupy, nccl_module))
    with pytest.raises(dist.DistributedError, match="2 ranks run on host 'node' but it has 1 GPU"):
        nccl.NCCLEngine(FakeHost(), timeout=5)
