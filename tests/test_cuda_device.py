"""The emulated CUDA device, and the GPU-path bugs it found.

Part 1 holds the CuPy stand-in (minigrad/backend/cuda/emulator/cupy_standin) to CuPy's
behaviour where minigrad depends on it; it imports the stand-in directly, so it runs in every
pass.  Part 2 runs minigrad on device "cuda": a real GPU, or the emulated device that CI's
device pass switches on with MINIGRAD_CUDA_EMULATOR=1.  Tests that count host transfers, or
that make a kernel trap (which loses a real GPU's CUDA context for the rest of the process),
need the emulated device and say so when skipped.
"""
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, nn, optim
from minigrad.backend.cuda import emulator
from minigrad.backend.cuda.emulator import cupy_standin as cp
from tests.conftest import NO_CUDA

needs_compiler = pytest.mark.skipif(not emulator.available(), reason=str(emulator.available()))
on_cuda = pytest.mark.skipif(not mg.cuda_available(), reason=NO_CUDA)
emulated = pytest.mark.skipif(not (backend.EMULATED_CUDA and mg.cuda_available()),
                              reason="counts host transfers or traps a kernel: needs the emulated device "
                                     "(MINIGRAD_CUDA_EMULATOR=1, CI's device pass)")

# =============================================================================================
# Part 1: the stand-in imitates CuPy
# =============================================================================================


def test_implicit_conversion_to_numpy_raises_cupys_type_error():
    x = cp.arange(3, dtype=np.float32)
    for convert in (np.asarray, np.array, lambda a: np.float64(1.0) * np.ones(3) + a):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed|Unsupported type"):
            convert(x)
    with pytest.raises(TypeError, match=r"Implicit conversion to a NumPy array is not allowed\. Please use `\.get\(\)`"):
        np.asarray(x)


def test_host_arrays_are_refused_where_cupy_refuses_them():
    x, host = cp.ones(3), np.ones(3)
    for refused in (lambda: x + host, lambda: host * x, lambda: cp.exp(host), lambda: cp.where(x > 0, host, x),
                    lambda: cp.concatenate([x, host]), lambda: cp.maximum(x, [1.0, 2.0, 3.0])):
        with pytest.raises(TypeError, match="Unsupported type"):
            refused()
    for value in (host, [1.0, 2.0, 3.0]):  # x[...] = host data: convert with asarray first
        with pytest.raises(TypeError, match="Unsupported type"):
            x[...] = value
    x[0] = 5.0  # scalars are fine, as in CuPy
    x[1:] = cp.asarray(np.array([6.0, 7.0]))
    assert x.get().tolist() == [5.0, 6.0, 7.0]
    assert not hasattr(cp.add, "at")  # float atomics: minigrad must not use them


def test_reductions_stay_on_the_device():
    x = cp.arange(6, dtype=np.float64).reshape(2, 3)
    for r in (x.sum(), x.max(), cp.sum(x), x.mean(), cp.count_nonzero(x), (x > 2).any(), x[1, 2]):
        assert isinstance(r, cp.ndarray) and r.ndim == 0
    assert isinstance(np.sum(x), cp.ndarray)  # NumPy's functions dispatch to the stand-in's, as to CuPy's


def test_out_of_range_indices_wrap_around_as_in_cupy():
    x = cp.arange(10, 13)
    assert x[cp.asarray(np.array([3, -4, 5]))].get().tolist() == [10, 12, 12]
    assert x.take(cp.asarray(np.array([4]))).get().tolist() == [11]
    with pytest.raises(IndexError):
        x[3]  # a Python int is checked, as by CuPy


def test_every_transfer_and_synchronisation_is_counted_where_it_happens():
    x = cp.arange(4, dtype=np.float32)
    with cp.counting() as outer:
        with cp.counting() as inner:
            float(x[0]), bool(x[1]), int(x[2]), x[3].item(), x.tolist(), x.get(), cp.asnumpy(x), repr(x)
        x[x > 1]                            # boolean mask: the host reads how many
        cp.nonzero(x)
        cp.asarray(np.ones(2))              # an upload
        x[[0, 1]]                           # a list index is uploaded
        cp.cuda.get_current_stream().synchronize()
        cp.cuda.Device().synchronize()
        cp.cuda.Event().synchronize()
        x + 1, x.sum(), cp.exp(x), x.astype(np.float64), x.reshape(2, 2)  # none of these
    assert inner.of_kind("download") == inner.total == 8
    assert (outer.of_kind("download"), outer.of_kind("sync"), outer.of_kind("upload")) == (8, 5, 2)
    assert all(where.startswith(os.path.join("tests", "test_cuda_device.py:")) for _, _, where in outer.sites)
    assert "boolean mask" in str(outer)


def test_fresh_device_memory_holds_garbage_not_zeros():
    assert np.isnan(cp.empty(4).get()).all() and (cp.empty(3, dtype=np.int64).get() == -1).all()
    assert np.isnan(cp.empty_like(cp.zeros(2)).get()).all() and (cp.zeros(2).get() == 0).all()


# CuPy 14's cupy.random.Generator (cupy/random/_generator_api.pyx): these methods, and no others
CUPY_14_GENERATOR = {"random", "uniform", "integers", "beta", "chisquare", "dirichlet", "exponential", "f",
                     "geometric", "hypergeometric", "logseries", "standard_exponential", "poisson", "power",
                     "standard_normal", "gamma", "standard_gamma", "binomial"}


def test_the_generator_has_exactly_cupy_14s_methods():
    rng = cp.random.default_rng(0)
    assert {m for m in dir(rng) if not m.startswith("_") and callable(getattr(rng, m))} == CUPY_14_GENERATOR
    assert not hasattr(rng, "normal")  # (NumPy's has it; Tensor.normal_ once called it)
    z = rng.standard_normal((3, 2), dtype=np.float32)
    assert isinstance(z, cp.ndarray) and z.dtype == np.float32 and z.shape == (3, 2)
    assert rng.random().ndim == 0 and isinstance(rng.random(), cp.ndarray)  # size=None: a 0-d device array
    with pytest.raises(TypeError, match="cupy.ndarray or a scalar"):
        rng.uniform(np.zeros(2), 1.0)


@needs_compiler
def test_raw_module_runs_the_cuda_c_with_cupys_argument_conventions():
    module = cp.RawModule(code=r'''
extern "C" __global__ void twice(float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] *= 2.0f;
}''', options=("--std=c++17",))
    kernel = module.get_function("twice")
    x = cp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    kernel((2,), (32,), (x, np.int64(6)))
    assert x.get().tolist() == [[0, 2, 4], [6, 8, 10]]
    kernel((1,), (32,), (x[:, ::2], np.int64(3)))  # CuPy passes the first element's address: a kernel that
    assert x.get().tolist() == [[0, 4, 8], [6, 8, 10]]  # ignores strides reads consecutive memory
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel((1,), (32,), (np.zeros(3, np.float32), np.int64(3)))
    with pytest.raises(TypeError, match="Python float"):  # a float for a float parameter: CuPy's classic bug
        kernel((1,), (32,), (x, 3.0))


@needs_compiler
def test_a_trapping_kernel_fails_at_the_next_synchronisation_not_at_the_launch():
    kernel = cp.RawKernel(r'''
extern "C" __global__ void check(const long long* i, long long n) {
    if (threadIdx.x < n && i[threadIdx.x] < 0) __trap();
}''', "check")
    bad = cp.asarray(np.array([1, -1]))
    kernel((1,), (32,), (bad, np.int64(2)))  # returns: the GPU reports errors asynchronously
    with pytest.raises(cp.CUDARuntimeError, match=r"unspecified launch failure, in kernel check .*__trap\(\) was called"):
        bad.get()
    assert bad.get().tolist() == [1, -1]  # reported once (a real GPU's context would be lost)


def test_no_floating_point_warnings_on_the_device():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (cp.zeros(2) / cp.zeros(2)).get(), cp.log(cp.zeros(1)).get()  # NaN and -inf flow, as on a GPU


# =============================================================================================
# Part 2: minigrad on device "cuda" (a GPU, or the emulated device)
# =============================================================================================


def test_gradcheck_and_gradgradcheck_on_every_device(device):
    """gradcheck once made its upstream gradient on the CPU and called np.asarray on CuPy
    arrays: every device-parametrised gradient check failed on the first GPU."""
    x = mg.tensor(np.linspace(-1.0, 1.0, 6).reshape(2, 3), device=device)
    w = mg.tensor(np.linspace(0.5, 2.0, 3), device=device)
    assert mg.gradcheck(lambda a, b: ((a * b).tanh(), (a + b).sum(axis=1)), x, w)
    assert mg.gradcheck(lambda a, b: (a * b).exp().sum(), x, w, directional=True)
    assert mg.gradgradcheck(lambda a, b: (a * a * b).sum(axis=0), x, w)
    with pytest.raises(mg.GradcheckError, match="gradcheck failed"):
        mg.gradcheck(lambda a: _TwiceTooLarge.apply(a), x)


class _TwiceTooLarge(mg.autograd.Function):
    def forward(self, x):
        return x * x

    def backward(self, g):
        (x,) = self.saved_tensors
        return 4 * x * g


def test_normal_and_uniform_fill_on_every_device(device):
    """Tensor.normal_ called Generator.normal, which CuPy 14's generator does not have."""
    n = 40_000
    t = mg.zeros(n, device=device).normal_(2.0, 3.0)
    assert t.device == mg.Device(device) and t.dtype == np.float32
    values = t.numpy().astype(np.float64)
    assert abs(values.mean() - 2.0) < 5 * 3.0 / np.sqrt(n)          # 5 standard errors
    assert abs(values.std() - 3.0) < 5 * 3.0 / np.sqrt(2 * n)
    u = mg.zeros(n, dtype=np.float64, device=device).uniform_(-1.0, 3.0).numpy()
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 5 * (4 / np.sqrt(12)) / np.sqrt(n)


def test_setitem_takes_host_values_on_every_device(device):
    """The raw-write path handed NumPy arrays and lists straight to CuPy (a TypeError there)."""
    t = mg.zeros(5, device=device)
    t[1:3] = np.array([1.0, 2.0])
    t[[0, 4]] = [5.0, 6.0]
    t[3] = np.float32(7.0)
    t[mg.tensor([2], device=device)] = mg.tensor([8.0], device=device)
    assert t.numpy().tolist() == [5.0, 1.0, 8.0, 7.0, 6.0] and t.device == mg.Device(device)


@on_cuda
def test_setitem_refuses_a_tensor_on_another_device():
    t = mg.zeros(3, device="cuda")
    with pytest.raises(RuntimeError, match=r"setitem: the value \(shape \(3,\)\) is on cpu, the tensor \(shape \(3,\)\) on cuda"):
        t[...] = mg.ones(3)


def test_backward_refuses_a_seed_that_does_not_match_the_output(device):
    x = mg.ones(2, 3, device=device, requires_grad=True)
    y = x * 2
    for seed, what in ((mg.ones(3, 2, device=device), r"shape \(3, 2\)"),
                       (mg.ones(2, 3, dtype=np.int64, device=device), r"shape \(2, 3\), dtype int64")):
        with pytest.raises(RuntimeError, match=rf"backward: the gradient given for the output must match it: got {what}"):
            y.backward(seed)
    with pytest.raises(RuntimeError, match="grad: the gradient given for the output must match it"):
        mg.grad(y, x, mg.ones(6, device=device))
    (g,) = mg.grad(y, x, mg.ones(2, 3, dtype=np.float64, device=device), retain_graph=True)  # cast,
    assert g.dtype == np.float32  # another floating dtype is cast, as in PyTorch
    y.backward(np.ones((2, 3)))  # host data is converted to the output's dtype and device
    assert x.grad.numpy().tolist() == [[2.0] * 3] * 2


@on_cuda
def test_backward_refuses_a_seed_on_another_device():
    y = mg.ones(2, device="cuda", requires_grad=True) * 3
    with pytest.raises(RuntimeError, match=r"got shape \(2,\), dtype float32, device cpu for an output of shape "
                                           r"\(2,\), dtype float32, device cuda"):
        y.backward(mg.ones(2))


@on_cuda
def test_cross_entropy_kernels_refuse_labels_on_another_device():
    """reference._labels used to mix cupy.where with NumPy labels (a TypeError deep in CuPy)."""
    from minigrad.backend import cuda as cuda_table
    from minigrad.backend import reference

    x = backend.to_device(np.zeros((2, 3), np.float32), "cuda")
    for table in (reference, cuda_table):
        with pytest.raises(TypeError, match="cross_entropy_forward: the arrays must be on one device, got x on the "
                                            "GPU, target on the CPU"):
            table.cross_entropy_forward(x, np.array([0, 1]), None, -100, 0.0)


@emulated
@pytest.mark.parametrize("case", ["embedding", "getitem", "0-d index", "setitem", "scatter_add", "gather", "one_hot"])
def test_an_index_out_of_range_stops_a_kernel_and_fails_at_the_next_synchronisation(case, monkeypatch):
    """CuPy wraps out-of-range indices around (a silent wrong row); minigrad checks them on the
    device instead, without reading them back: the kernel traps, and the error, naming the op,
    comes out of the next synchronisation.  MINIGRAD_DEBUG=1 checks on the host, at once."""
    monkeypatch.delenv("MINIGRAD_DEBUG", raising=False)
    x, values = mg.ones(3, 4, device="cuda"), mg.ones(2, 4, device="cuda")
    idx = mg.tensor([0, 5], device="cuda")
    index = {"0-d index": mg.tensor(-4, device="cuda"), "setitem": mg.tensor([4], device="cuda"),
             "gather": mg.tensor([[0], [4], [1]], device="cuda")}.get(case, idx)
    run = {"embedding": lambda: nn.functional.embedding(index, x),
           "getitem": lambda: x[index],
           "0-d index": lambda: x[index],
           "setitem": lambda: x.__setitem__((slice(None), index), 1.0),
           "scatter_add": lambda: mg.ops.shape.scatter_add(values, index, (3, 4)),
           "gather": lambda: mg.gather(x, 1, index),
           "one_hot": lambda: nn.functional.one_hot(index, 4)}[case]
    op = {"0-d index": "getitem", "gather": "gather"}.get(case, case)
    bad = {"0-d index": -4, "setitem": 4, "gather": 4}.get(case, 5)
    try:
        with cp.counting() as c:
            run()  # returns: nothing was read back
        assert c.total == 0, c
        with pytest.raises(cp.CUDARuntimeError, match=rf"check_indices_{op} .*{op}: index {bad} is out of range"):
            mg.cuda.synchronize()
    finally:
        cp.transfers._failed.clear()  # (never leave an error behind for the next test)
    monkeypatch.setenv("MINIGRAD_DEBUG", "1")
    with pytest.raises((IndexError, ValueError), match=rf"{bad}"):
        run()


def test_index_backwards_add_repeats_in_index_order_without_atomics(device):
    """getitem / gather / reflect-pad / embedding backward scatter-add rows: on the GPU with a
    counting sort (no float atomics, so the same bits every run), in index order, which is
    NumPy's add.at order: the float32 sums equal the CPU's bit for bit.  (The stand-in has no
    ufunc.at, so the old cupy.add.at path fails here on the emulated device.)"""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 3)).astype(np.float32) * np.float32(1e4)
    g = rng.standard_normal((7, 3)).astype(np.float32)
    rows = np.array([4, 0, 4, 4, 2, 0, 4])
    x = mg.tensor(a, device=device, requires_grad=True)
    x[mg.tensor(rows, device=device)].backward(mg.tensor(g, device=device))
    want = np.zeros_like(a)
    np.add.at(want, rows, g)
    assert np.array_equal(x.grad.numpy(), want)

    x.grad = None
    index = rng.integers(0, 3, (5, 6))
    gz = rng.standard_normal((5, 6)).astype(np.float32)
    mg.gather(x, 1, mg.tensor(index, device=device)).backward(mg.tensor(gz, device=device))
    want = np.zeros_like(a)
    np.add.at(want, (np.arange(5)[:, None], index), gz)
    assert np.array_equal(x.grad.numpy(), want)

    x.grad = None
    gp = rng.standard_normal((5, 3 + 4)).astype(np.float32)
    nn.functional.pad(x, (2, 2), mode="reflect").backward(mg.tensor(gp, device=device))
    want = np.zeros_like(a)
    np.add.at(want, (slice(None), np.array([2, 1, 0, 1, 2, 1, 0])), gp)  # reflect: columns -2..4 read these
    assert np.array_equal(x.grad.numpy(), want)

    w = mg.tensor(a, device=device, requires_grad=True)
    ge = rng.standard_normal((2, 4, 3)).astype(np.float32)
    ids = np.array([[1, 1, 3, 1], [0, 1, 3, 3]])
    nn.functional.embedding(mg.tensor(ids, device=device), w).backward(mg.tensor(ge, device=device))
    want = np.zeros_like(a)
    np.add.at(want, ids.reshape(-1), ge.reshape(-1, 3))
    assert np.array_equal(w.grad.numpy(), want)


def test_adam_and_sgd_update_more_tensors_than_one_launch_table_holds(device):
    """The fused optimizer kernels take their table of tensors as a kernel argument (no upload);
    a group larger than one table (64 tensors for Adam, 89 for SGD) takes several launches,
    which must give exactly what one tensor per launch gives."""
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(n).astype(np.float32) for n in rng.integers(1, 40, 100)]

    def train(groups):
        params = [mg.tensor(v, device=device, requires_grad=True) for v in values]
        for make in (lambda ps: optim.Adam(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)):
            opts = [make(params[i:i + groups]) for i in range(0, len(params), groups)]
            for _ in range(2):
                for p in params:
                    p.grad = (p * p).detach()
                for opt in opts:
                    opt.step()
        return [p.numpy() for p in params]

    for together, alone in zip(train(len(values)), train(1)):
        np.testing.assert_array_equal(together, alone)


# -- a training step makes no host transfer and no synchronisation -----------------------------

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def _step_makes_no_host_transfer(model, loss_fn, batch, opt_cls=optim.Adam, clip=None):
    model = model.to("cuda")
    opt = opt_cls(model.parameters(), lr=1e-3)

    def step():
        loss = loss_fn(model, *batch)
        opt.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss

    step()  # warm-up: kernels compiled, optimizer state made
    with cp.counting() as c:
        loss = step()
    assert c.total == 0, f"a training step waited for the device:\n{c}"
    assert np.isfinite(loss.item())


@emulated
def test_a_training_step_of_the_mlp_makes_no_host_transfer():
    from models import mlp

    rng = np.random.default_rng(0)
    x = mg.tensor(rng.random((4, 784), dtype=np.float32), device="cuda")
    y = mg.tensor(rng.integers(0, 10, 4), device="cuda")
    _step_makes_no_host_transfer(mlp(), lambda m, x, y: nn.functional.cross_entropy(m(x), y), (x, y))


@emulated
def test_a_training_step_of_the_cnn_makes_no_host_transfer():
    from models import cnn

    rng = np.random.default_rng(0)
    x = mg.tensor(rng.random((2, 1, 28, 28), dtype=np.float32), device="cuda")
    y = mg.tensor(rng.integers(0, 10, 2), device="cuda")
    _step_makes_no_host_transfer(cnn(), lambda m, x, y: nn.functional.cross_entropy(m(x), y), (x, y))


@emulated
def test_a_training_step_of_the_gpt_makes_no_host_transfer():
    from char_gpt import GPT

    rng = np.random.default_rng(0)
    idx = mg.tensor(rng.integers(0, 20, (2, 8)), device="cuda")
    targets = mg.tensor(rng.integers(0, 20, (2, 8)), device="cuda")
    _step_makes_no_host_transfer(GPT(20, 8, 1, 2, 16, dropout=0.1), lambda m, i, t: m.loss(i, t), (idx, targets),
                                 optim.AdamW, clip=1.0)


@emulated
def test_the_layers_that_used_to_wait_for_the_gpu_no_longer_do():
    """BatchNorm(momentum=None) read its batch counter, attention weights with a mask asked
    whether every row was open, reflect padding uploaded its indices, one_hot read the labels'
    range: each made the host wait inside a step."""
    rng = np.random.default_rng(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.BatchNorm1d(8, momentum=None)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.out = nn.Linear(8, 3)

        def forward(self, x, labels, mask):
            x = nn.functional.pad(x, (1, 1), mode="reflect")[..., 1:-1]
            h = self.norm(x.reshape(-1, 8)).reshape(x.shape)
            h, _ = self.attn(h, h, h, attn_mask=mask, need_weights=True)
            onehot = nn.functional.one_hot(labels, 3).astype(np.float32)
            return -(nn.functional.log_softmax(self.out(h).mean(axis=1), -1) * onehot).sum()

    x = mg.tensor(rng.standard_normal((2, 4, 8)).astype(np.float32), device="cuda")
    labels = mg.tensor(np.array([0, 2]), device="cuda")
    mask = mg.tensor(np.triu(np.ones((4, 4), bool), 1), device="cuda")  # True: may not attend
    _step_makes_no_host_transfer(Net(), lambda m, x, y, mask: m(x, y, mask), (x, labels, mask))


def test_batchnorm_cumulative_average_counts_batches_without_reading_the_counter(device):
    """momentum=None: running = mean over all batches so far.  The count is kept on the host,
    and read from the buffer only after something else wrote it (here: load_state_dict)."""
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((6, 2)).astype(np.float32) + k for k in range(3)]
    bn = nn.BatchNorm1d(2, momentum=None).to(device)
    for b in batches:
        bn(mg.tensor(b, device=device))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 3
    state = bn.state_dict()
    state["num_batches_tracked"] = mg.tensor(np.array(9))  # as if 9 batches had been averaged
    bn.load_state_dict(state)
    before = bn.running_mean.numpy().copy()
    bn(mg.tensor(batches[0], device=device))
    np.testing.assert_allclose(bn.running_mean.numpy(), before + (batches[0].mean(0) - before) / 10, rtol=1e-5)
