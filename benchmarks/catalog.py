"""What the lab times: every op as a list of Cases, each with every implementation of it that
this machine has (Impls).

An Impl runs one kernel (or, for conv2d, one minigrad op) on one device:

=================  =====  ==============================================================
name               device what runs
=================  =====  ==============================================================
numpy              cpu    ``backend/reference.py`` on NumPy arrays: the reference; for
                          matmul this is NumPy's BLAS (OpenBLAS), the CPU library kernel
numba              cpu    ``backend/cpu_kernels.py`` where it overrides the reference
cupy               cuda   ``reference.py`` on CuPy arrays: CuPy's own kernels (for matmul:
                          cuBLAS), the GPU library kernels
cuda               cuda   ``backend/cuda/__init__.py``: the project's CUDA C kernels
cuda:<rung>        cuda   the project's SGEMM ladder (naive, tiled, regblock) for matmul
torch              both   PyTorch's kernel for the same math, when torch is installed
=================  =====  ==============================================================

Rows appear only for what exists: no ``numba`` row where cpu_kernels does not override the
kernel (or numba is off), no cuda rows without a real GPU (the CPU emulator of our CUDA C is
for checking kernels, not for timing them).

Every Case says how much work it is, so that rates can be compared with the machine's peaks:

* ``flops``: the arithmetic of the math, counting one for each add, multiply, compare, max,
  exp or division (a GEMM is 2 m n k; ReLU is one compare per element);
* ``bytes``: the compulsory memory traffic: every input read once, every output written once.
  An implementation that moves more (im2col's column matrix, a two-pass softmax) shows up as
  a lower fraction of the copy bandwidth.

The expected result of a Case is the reference (``reference.py`` on NumPy) in the same dtype;
each Impl's first result is compared with it before any timing, with a tolerance for the
dtype and for the kind of op (``EXACT``: elementwise and data movement; ``SUMS``: reductions,
whose order of summation may differ).
"""
import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from minigrad import backend
from minigrad.backend import cpu_kernels, reference

from .common import cpu_clock, cupy_clock, cuda_usable, gpu_module, torch_cuda_clock

# relative tolerances (max |out - expected| / max |expected|) per dtype
EXACT = {"float32": 1e-6, "float64": 1e-13}
SUMS = {"float32": 1e-4, "float64": 1e-10}


@dataclass
class Impl:
    """One way to compute a Case: ``setup(inputs)`` (untimed: moves the host inputs to the
    device, copies what the call writes into) returns ``run``, the timed call, which returns
    the outputs.  ``adapt(host_outputs)`` (untimed, on NumPy copies of the outputs) puts them
    in the reference's layout.  ``compared=False``: outputs that cannot equal the reference's
    (another random number generator); only their shapes are checked."""
    name: str
    device: str
    setup: Callable
    clock: Callable = cpu_clock
    adapt: Callable = None
    compared: bool = True


@dataclass
class Case:
    op: str
    pass_: str          # "fwd", "bwd", "fwd+bwd", "step"
    label: str          # the shapes, in words
    size: int           # the coordinate of the size sweep (what --size sets; see OPS)
    flops: float
    bytes: float
    inputs: Callable    # rng -> tuple of host (NumPy) arrays, or lists of them
    expected: Callable  # inputs -> tuple of NumPy arrays (the reference)
    impls: list = field(default_factory=list)
    tol: float = 0.0


# ----------------------------------------------------------------------------------------
# Moving inputs to a device (arrays, or lists of arrays; other values pass through)
def _convert(value, to):
    if isinstance(value, np.ndarray):
        return to(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(v, to) for v in value)
    return value


def _copied(inputs):
    return _convert(inputs, np.copy)


def _to_cupy(inputs):
    return _convert(inputs, gpu_module().asarray)


def _to_torch(inputs, device):
    import torch

    # a copy: torch.from_numpy shares memory, and no contender may write into the inputs
    return _convert(inputs, lambda a: torch.from_numpy(np.array(a, copy=True, order="K")).to(device))


def to_host(value):
    """NumPy arrays from NumPy/CuPy arrays, torch tensors and minigrad Tensors (or tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(to_host(v) for v in value)
    if hasattr(value, "detach"):                    # torch
        return value.detach().cpu().numpy()
    if hasattr(value, "_record"):                   # minigrad Tensor
        value = value.array
    if backend.device_of(value) == backend.CUDA:
        return backend.to_device(value, "cpu")
    return np.asarray(value)


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_devices(devices):
    if not torch_available():
        return []
    import torch

    return [d for d in devices if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]


def _torch_setup_gpu():
    """Full float32 on the GPU, as our kernels compute (TF32 convolutions would differ by ~1e-3)."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


# ----------------------------------------------------------------------------------------
# Impls of a kernel-table function
def overrides(module, name):
    """True when ``module`` has its own ``name`` (not reference.py's)."""
    return getattr(module, name) is not getattr(reference, name)


def _cuda_kernels():
    from minigrad.backend import cuda as cuda_kernels

    return cuda_kernels


def table_impls(kernel, call, devices, inplace=False):
    """The kernel-table implementations of ``call(k, *inputs)`` (k: a kernel module), for the
    devices asked for: numpy (+ numba where it overrides ``kernel``) on the CPU; cupy (+ our
    CUDA C where it overrides) on a GPU.  ``inplace``: the call writes into its inputs, so
    each implementation gets its own copies."""
    prepare = _copied if inplace else (lambda ins: ins)

    def on(module, convert=prepare):
        return lambda inputs: (lambda ins=convert(inputs): lambda: call(module, *ins))()

    impls = []
    if "cpu" in devices:
        impls.append(Impl("numpy", "cpu", on(reference)))
        if cpu_kernels.use_numba() and overrides(cpu_kernels, kernel):
            impls.append(Impl("numba", "cpu", on(cpu_kernels)))
    if "cuda" in devices and cuda_usable():
        impls.append(Impl("cupy", "cuda", on(reference, _to_cupy), clock=cupy_clock))
        if overrides(_cuda_kernels(), kernel):
            impls.append(Impl("cuda", "cuda", on(_cuda_kernels(), _to_cupy), clock=cupy_clock))
    return impls


def torch_impls(fn, devices, prepare=None, adapt=None):
    """PyTorch's version: ``fn(*tensors)`` on each device torch has; ``prepare(*tensors)``
    (untimed) may reshape or convert the inputs first."""
    impls = []
    for device in _torch_devices(devices):
        def setup(inputs, device=device):
            if device == "cuda":
                _torch_setup_gpu()
            ts = _to_torch(inputs, device)
            ts = prepare(*ts) if prepare is not None else ts
            return lambda: fn(*ts)

        impls.append(Impl("torch", device, setup, clock=cpu_clock if device == "cpu" else torch_cuda_clock,
                          adapt=adapt))
    return impls


def _kernel_case(op, pass_, label, size, flops, nbytes, inputs, kernel, call, devices, tol, dtype,
                 torch_fn=None, torch_prepare=None, torch_adapt=None, inplace=False):
    """A Case of one kernel-table function, with its table and torch implementations."""
    expected = (lambda ins: call(reference, *_copied(ins))) if inplace else (lambda ins: call(reference, *ins))
    impls = table_impls(kernel, call, devices, inplace)
    if torch_fn is not None:
        impls += torch_impls(torch_fn, devices, torch_prepare, torch_adapt)
    return Case(op, pass_, label, size, flops, nbytes, inputs, expected, impls, tol[dtype])


def _normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _channels_last(a):
    """The same values with (N, H, W, C) memory, as conv2d outputs (and what follows them) have."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------
# matmul
def matmul_cases(sizes, dtype, devices):
    """Square n x n x n products for each int in ``sizes``; (m, k, n) tuples as given."""
    s = np.dtype(dtype).itemsize
    cases = []
    for size in sizes:
        m, k, n = (size, size, size) if isinstance(size, int) else size
        label = f"{m}x{k} @ {k}x{n}"
        case = _kernel_case(
            "matmul", "fwd", label, m if m == k == n else m * k * n, 2.0 * m * n * k, s * (m * k + k * n + m * n),
            lambda rng, m=m, k=k, n=n: (_normal(rng, (m, k), dtype), _normal(rng, (k, n), dtype)),
            "matmul", lambda kt, a, b: (kt.matmul(a, b),), devices, SUMS, dtype,
            torch_fn=lambda a, b: (a @ b,))
        if "cuda" in devices and cuda_usable():
            case.impls = [i for i in case.impls if i.name != "cuda"]  # cublas: the cupy row
            case.impls += [Impl(f"cuda:{rung}", "cuda", _gemm_rung(rung), clock=cupy_clock)
                           for rung in ("naive", "tiled", "regblock")]
        cases.append(case)
    return cases


@contextlib.contextmanager
def gemm_choice(impl, variant="regblock"):
    """cuda_kernels' matrix product set to (impl, variant) inside the block."""
    ck = _cuda_kernels()
    before = ck.get_matmul()
    ck.set_matmul(impl, variant)
    try:
        yield
    finally:
        ck.set_matmul(*before)


def _gemm_rung(rung):
    def setup(inputs):
        a, b = _to_cupy(inputs)
        ck = _cuda_kernels()

        def run():
            with gemm_choice("own", rung):
                return (ck.matmul(a, b),)
        return run
    return setup


# ----------------------------------------------------------------------------------------
# conv2d: the minigrad op (im2col + GEMM forward; two GEMMs + col2im backward)
# (name, C, H, W, O, k, padding, does x need a gradient, is x channels-last inside the net)
CONV_LAYERS = [
    ("mnist conv1", 1, 28, 28, 32, 3, 0, False, False),
    ("mnist conv2", 32, 13, 13, 64, 3, 0, True, True),
    ("resnet 3x3", 64, 56, 56, 64, 3, 1, True, True),
]
CONV_BATCH = {"mnist conv1": 128, "mnist conv2": 128, "resnet 3x3": 32}


@contextlib.contextmanager
def cpu_table(name):
    """Ops on NumPy arrays run on kernel table ``name`` ("cpu", "reference") inside the block."""
    from minigrad import backend

    if hasattr(backend, "set_cpu_kernels"):
        before = backend.set_cpu_kernels(name)
        try:
            yield
        finally:
            backend.set_cpu_kernels(before)
        return
    before = os.environ.get("MINIGRAD_CPU_KERNELS")  # before set_cpu_kernels: read at each call
    os.environ["MINIGRAD_CPU_KERNELS"] = name
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINIGRAD_CPU_KERNELS"]
        else:
            os.environ["MINIGRAD_CPU_KERNELS"] = before


def conv_cases(batches, dtype, devices):
    """The MNIST CNN's two layers and a ResNet 3x3 layer, forward and forward + backward, at
    each batch size of ``batches`` (None: each layer's usual batch)."""
    cases = []
    for name, c, h, w, o, k, p, x_grad, cl in CONV_LAYERS:
        for n in batches or [CONV_BATCH[name]]:
            cases += _conv_layer_cases(name, n, c, h, w, o, k, p, x_grad, cl, dtype, devices)
    return cases


def _conv_layer_cases(name, n, c, h, w, o, k, p, x_grad, cl, dtype, devices):
    s = np.dtype(dtype).itemsize
    oh, ow = h + 2 * p - k + 1, w + 2 * p - k + 1
    flops = 2.0 * n * oh * ow * o * c * k * k
    xb, wb, yb = n * c * h * w * s, o * c * k * k * s, n * o * oh * ow * s
    label = f"{name}: x({n},{c},{h},{w}) w({o},{c},{k},{k})" + (f" pad {p}" if p else "")

    def inputs(rng):
        x = _normal(rng, (n, c, h, w), dtype)
        g = _channels_last(_normal(rng, (n, o, oh, ow), dtype))  # as the next layer sends it back
        return (_channels_last(x) if cl else x, _normal(rng, (o, c, k, k), dtype, 0.1),
                _normal(rng, (o,), dtype, 0.1), g)

    cases = []
    for pass_, backward in (("fwd", False), ("fwd+bwd", True)):
        def call(x, wt, b, g, backward=backward):
            import minigrad as mg

            x = mg.Tensor(x, requires_grad=backward and x_grad)
            wt, b = mg.Tensor(wt, requires_grad=backward), mg.Tensor(b, requires_grad=backward)
            if not backward:
                with mg.no_grad():
                    return (mg.conv2d(x, wt, b, padding=p).array,)
            y = mg.conv2d(x, wt, b, padding=p)
            # gradients returned, not accumulated into .grad (a leaf's first .grad is a copy,
            # which a layer inside a network does not pay)
            grads = mg.grad(y, [wt, b] + ([x] if x_grad else []), mg.Tensor(g))
            return (y.array,) + tuple(t.array for t in grads)

        def on_table(table, call=call):
            def setup(inputs):
                return lambda: _with(cpu_table(table), call, *inputs)
            return setup

        impls = []
        if "cpu" in devices:
            impls.append(Impl("numpy", "cpu", on_table("reference")))
            if cpu_kernels.use_numba():
                impls.append(Impl("numba", "cpu", on_table("cpu")))
        if "cuda" in devices and cuda_usable():
            for gemm, variant in (("cublas", "regblock"), ("own", "regblock")):
                def setup(inputs, call=call, gemm=gemm, variant=variant):
                    ins = _to_cupy(inputs)
                    return lambda: _with(gemm_choice(gemm, variant), call, *ins)
                impls.append(Impl("cuda+cublas" if gemm == "cublas" else f"cuda+{variant}", "cuda", setup,
                                  clock=cupy_clock))
        impls += torch_impls(_torch_conv(p, x_grad, backward), devices)
        nbytes = xb + wb + yb + (yb + xb + wb + wb + s * o + (xb if x_grad else 0) if backward else 0)
        cases.append(Case("conv2d", pass_, label, n, flops * (1 + (1 + x_grad) * backward), nbytes,
                          inputs, lambda ins, call=call: _with(cpu_table("reference"), call, *ins),
                          impls, SUMS[dtype]))
    return cases


def _with(context, fn, *args):
    with context:
        return fn(*args)


def _torch_conv(p, x_grad, backward):
    """PyTorch's conv2d, forward only or forward + backward (autograd), as the minigrad op."""
    if not torch_available():
        return None
    import torch
    import torch.nn.functional as F

    def fn(x, w, b, g):
        if not backward:
            with torch.no_grad():
                return (F.conv2d(x, w, b, padding=p),)
        x.requires_grad_(x_grad)
        w.requires_grad_(True)
        b.requires_grad_(True)
        y = F.conv2d(x, w, b, padding=p)
        return (y,) + torch.autograd.grad(y, [w, b] + ([x] if x_grad else []), g)
    return fn


# ----------------------------------------------------------------------------------------
# im2col / col2im (the column matrix of a 3x3 convolution, channels-last)
IM2COL_LAYERS = [("mnist conv2", 32, 13, 13, 0, 128), ("resnet 3x3", 64, 56, 56, 1, 32)]


def im2col_cases(batches, dtype, devices):
    s = np.dtype(dtype).itemsize
    cases = []
    for name, c, h, w, p, default_n in IM2COL_LAYERS:
        for n in batches or [default_n]:
            oh, ow = h + 2 * p - 2, w + 2 * p - 2
            geometry = ((3, 3), (1, 1), (p, p), (1, 1), (oh, ow))
            L, K = n * oh * ow, 9 * c
            label = f"{name}: x({n},{h},{w},{c}) -> cols({L},{K})"
            fold = lambda cols, n=n, c=c, L=oh * ow: cols.reshape(n, L, 3, 3, c).permute(0, 4, 2, 3, 1).reshape(n, c * 9, L)
            cases.append(_kernel_case(
                "im2col", "fwd", label, n, 0.0, s * (n * h * w * c + L * K),
                lambda rng, shape=(n, h, w, c): (_normal(rng, shape, dtype),),
                "im2col", lambda k, x, geometry=geometry: (k.im2col(x, *geometry),), devices, EXACT, dtype,
                torch_fn=lambda x, p=p: (_unfold(x.permute(0, 3, 1, 2), 3, padding=p),),
                torch_adapt=lambda out, n=n, c=c, L=oh * ow: (
                    out[0].reshape(n, c, 3, 3, L).transpose(0, 4, 2, 3, 1).reshape(n * L, 9 * c),)))
            cases.append(_kernel_case(
                "col2im", "bwd", label.replace("->", "<-"), n, float(L * K), s * (n * h * w * c + L * K),
                lambda rng, shape=(L, K): (_normal(rng, shape, dtype),),
                "col2im", lambda k, cols, shape=(n, h, w, c), geometry=geometry: (k.col2im(cols, shape, *geometry),),
                devices, SUMS, dtype,
                torch_fn=lambda cols, h=h, w=w, p=p: (_fold(cols, (h, w), 3, padding=p),),
                torch_prepare=lambda cols, fold=fold: (fold(cols).contiguous(),),
                torch_adapt=lambda out: (out[0].transpose(0, 2, 3, 1),)))
    return cases


def _unfold(*args, **kwargs):
    import torch.nn.functional as F

    return F.unfold(*args, **kwargs)


def _fold(*args, **kwargs):
    import torch.nn.functional as F

    return F.fold(*args, **kwargs)


# ----------------------------------------------------------------------------------------
# max_pool2d (forward: values and argmax; backward: the scatter of the gradient)
# (name, C, H, W, kernel, stride, padding, channels-last, default batch)
POOLS = [("mnist pool1 2x2", 32, 26, 26, 2, 2, 0, True, 128),
         ("resnet stem 3x3/2 pad 1", 64, 112, 112, 3, 2, 1, False, 32)]


def pool_cases(batches, dtype, devices):
    s = np.dtype(dtype).itemsize
    cases = []
    for name, c, h, w, k, st, p, cl, default_n in POOLS:
        for n in batches or [default_n]:
            oh, ow = (h + 2 * p - k) // st + 1, (w + 2 * p - k) // st + 1
            geometry = ((k, k), (st, st), (p, p), (1, 1))
            label = f"{name}: x({n},{c},{h},{w})" + (" channels-last" if cl else "")
            outs = n * c * oh * ow
            layout = _channels_last if cl else (lambda a: a)

            def inputs(rng, shape=(n, c, h, w), layout=layout, geometry=geometry, out=(oh, ow)):
                x = layout(_normal(rng, shape, dtype))
                _, argmax = reference.maxpool2d_forward(x, *geometry, out)
                g = layout(_normal(rng, (shape[0], shape[1]) + out, dtype))
                return x, layout(np.ascontiguousarray(argmax)), g

            cases.append(_kernel_case(
                "max_pool2d", "fwd", label, n, float(outs * (k * k - 1)), s * (n * c * h * w + outs) + 4 * outs,
                inputs, "maxpool2d_forward",
                lambda kt, x, a, g, geometry=geometry, out=(oh, ow): kt.maxpool2d_forward(x, *geometry, out),
                devices, EXACT, dtype,
                torch_fn=lambda x, a, g, k=k, st=st, p=p: _max_pool(x, k, st, p)))
            cases.append(_kernel_case(
                "max_pool2d", "bwd", label, n, float(outs), s * (n * c * h * w + outs) + 4 * outs,
                inputs, "maxpool2d_backward",
                lambda kt, x, a, g, geometry=geometry: (kt.maxpool2d_backward(g, a, x.shape, *geometry),),
                devices, SUMS, dtype,
                torch_fn=lambda x, a, g, k=k, st=st, p=p: (_max_pool_backward(g, x, k, st, p, a),),
                torch_prepare=lambda x, a, g: (x, a.long(), g)))
    return cases


def _max_pool(x, k, st, p):
    import torch.nn.functional as F

    return F.max_pool2d(x, k, st, p, return_indices=True)


def _max_pool_backward(g, x, k, st, p, indices):
    import torch

    return torch.ops.aten.max_pool2d_with_indices_backward(g, x, [k, k], [st, st], [p, p], [1, 1], False, indices)


def _torch():
    import torch

    return torch


# ----------------------------------------------------------------------------------------
# ReLU, sigmoid and tanh: forward from x, backward from the output y = f(x)
ACTIVATIONS = {
    # name: (forward flops, backward flops per element, torch forward, torch backward(g, y))
    "relu": (1.0, 1.0, lambda x: _torch().relu(x), lambda g, y: _torch().ops.aten.threshold_backward(g, y, 0)),
    "sigmoid": (4.0, 3.0, lambda x: _torch().sigmoid(x), lambda g, y: _torch().ops.aten.sigmoid_backward(g, y)),
    "tanh": (4.0, 3.0, lambda x: _torch().tanh(x), lambda g, y: _torch().ops.aten.tanh_backward(g, y)),
}


def activation_cases(name):
    """Cases of the elementwise activation ``name`` (relu, sigmoid, tanh): flat arrays of each size
    (None: 16M elements, larger than the caches, and the MNIST CNN's first activation,
    channels-last)."""
    fwd_flops, bwd_flops, torch_fwd, torch_bwd = ACTIVATIONS[name]

    def build(sizes, dtype, devices):
        s = np.dtype(dtype).itemsize
        shapes = [(n,) for n in sizes] if sizes else [(1 << 24,), (128, 32, 26, 26)]
        cases = []
        for shape in shapes:
            n = math.prod(shape)
            layout = _channels_last if len(shape) == 4 else (lambda a: a)
            label = f"x{shape}" + (" channels-last" if len(shape) == 4 else "")

            def inputs(rng, shape=shape, layout=layout):
                x = layout(_normal(rng, shape, dtype, 3.0))
                return x, getattr(reference, name)(x), layout(_normal(rng, shape, dtype))

            cases.append(_kernel_case(name, "fwd", label, n, fwd_flops * n, 2.0 * s * n, inputs, name,
                                      lambda k, x, y, g: (getattr(k, name)(x),), devices, EXACT, dtype,
                                      torch_fn=lambda x, y, g: (torch_fwd(x),)))
            cases.append(_kernel_case(name, "bwd", label, n, bwd_flops * n, 3.0 * s * n, inputs, f"{name}_backward",
                                      lambda k, x, y, g: (getattr(k, f"{name}_backward")(g, y),),
                                      devices, EXACT, dtype, torch_fn=lambda x, y, g: (torch_bwd(g, y),)))
        return cases
    return build


relu_cases = activation_cases("relu")


# ----------------------------------------------------------------------------------------
# softmax and cross-entropy (rows of logits)
def softmax_cases(rows, dtype, devices, cols=1024, name="softmax"):
    """``rows`` x 1024 logits (None: 16384 rows, 64 MB in float32), softmax or log_softmax
    (``name``) along the rows, forward and backward (from the output y)."""
    s = np.dtype(dtype).itemsize
    fn = getattr(reference, name)
    torch_fwd = {"softmax": lambda x: _torch().softmax(x, 1), "log_softmax": lambda x: _torch().log_softmax(x, 1)}[name]
    torch_bwd = {"softmax": lambda g, y: _torch()._softmax_backward_data(g, y, 1, y.dtype),
                 "log_softmax": lambda g, y: _torch()._log_softmax_backward_data(g, y, 1, y.dtype)}[name]
    cases = []
    for r in rows or [16384]:
        n = r * cols
        label = f"x({r},{cols}) along axis 1"

        def inputs(rng, r=r):
            x = _normal(rng, (r, cols), dtype, 3.0)
            return x, fn(x, 1), _normal(rng, (r, cols), dtype)

        cases.append(_kernel_case(name, "fwd", label, r, 5.0 * n, 2.0 * s * n, inputs, name,
                                  lambda k, x, y, g: (getattr(k, name)(x, 1),), devices, SUMS, dtype,
                                  torch_fn=lambda x, y, g: (torch_fwd(x),)))
        cases.append(_kernel_case(name, "bwd", label, r, 4.0 * n, 3.0 * s * n, inputs, f"{name}_backward",
                                  lambda k, x, y, g: (getattr(k, f"{name}_backward")(g, y, 1),), devices, SUMS, dtype,
                                  torch_fn=lambda x, y, g: (torch_bwd(g, y),)))
    return cases


def log_softmax_cases(rows, dtype, devices):
    return softmax_cases(rows, dtype, devices, name="log_softmax")


def cross_entropy_cases(rows, dtype, devices):
    """Logits (N, C) and int64 labels: the MNIST batch (128, 10), where a call is mostly fixed
    cost, and (16384, 1024) (None: both; a size gives N rows of 1024 classes)."""
    s = np.dtype(dtype).itemsize
    shapes = [(r, 1024) for r in rows] if rows else [(128, 10), (16384, 1024)]
    cases = []
    for r, c in shapes:
        n = r * c
        label = f"x({r},{c}), labels ({r},)"

        def inputs(rng, r=r, c=c):
            x = _normal(rng, (r, c), dtype, 3.0)
            t = rng.integers(0, c, r).astype(np.int64)
            _, sumexp = reference.cross_entropy_forward(x, t, None, -100, 0.0)
            return x, t, sumexp, np.full(r, 1.0 / r, dtype=dtype)

        cases.append(_kernel_case(
            "cross_entropy", "fwd", label, r, 5.0 * n, s * n + (8 + 2 * s) * r, inputs, "cross_entropy_forward",
            lambda k, x, t, sumexp, grow: k.cross_entropy_forward(x, t, None, -100, 0.0), devices, SUMS, dtype,
            torch_fn=lambda x, t, sumexp, grow: (_torch().nn.functional.cross_entropy(x, t, reduction="none"),)))
        cases.append(_kernel_case(
            "cross_entropy", "bwd", label, r, 5.0 * n, 2.0 * s * n + (8 + 2 * s) * r, inputs, "cross_entropy_backward",
            lambda k, x, t, sumexp, grow: (k.cross_entropy_backward(x, t, sumexp, grow, None, -100, 0.0),),
            devices, SUMS, dtype))
    return cases


# ----------------------------------------------------------------------------------------
# batch norm (training: batch statistics)
def batch_norm_cases(batches, dtype, devices, c=64, hw=56):
    """x (N, 64, 56, 56), NCHW (None: N = 64, 51 MB in float32)."""
    s = np.dtype(dtype).itemsize
    eps = 1e-5
    cases = []
    for n in batches or [64]:
        size = n * c * hw * hw
        label = f"x({n},{c},{hw},{hw})"

        def inputs(rng, n=n):
            x = _normal(rng, (n, c, hw, hw), dtype, 2.0) + dtype_type(dtype)(0.5)
            w, b = _normal(rng, (c,), dtype), _normal(rng, (c,), dtype)
            _, mean, invstd = reference.batch_norm_forward(x, w, b, eps)
            return x, w, b, mean, invstd, _normal(rng, (n, c, hw, hw), dtype)

        cases.append(_kernel_case(
            "batch_norm", "fwd", label, n, 7.0 * size, 2.0 * s * size, inputs, "batch_norm_forward",
            lambda k, x, w, b, mean, invstd, g: k.batch_norm_forward(x, w, b, eps), devices, SUMS, dtype,
            torch_fn=lambda x, w, b, mean, invstd, g: _torch().ops.aten.native_batch_norm(
                x, w, b, None, None, True, 0.1, eps)))
        cases.append(_kernel_case(
            "batch_norm", "bwd", label, n, 9.0 * size, 3.0 * s * size, inputs, "batch_norm_backward",
            lambda k, x, w, b, mean, invstd, g: k.batch_norm_backward(g, x, w, mean, invstd, True),
            devices, SUMS, dtype,
            torch_fn=lambda x, w, b, mean, invstd, g: _torch().ops.aten.native_batch_norm_backward(
                g, x, w, None, None, mean, invstd, True, eps, [True, True, True])))
    return cases


def dtype_type(dtype):
    return np.dtype(dtype).type


# ----------------------------------------------------------------------------------------
# layer norm (rows of x, with weight and bias)
LN_SHAPES = [(768, 128), (16384, 1024)]  # the char GPT's activations (12 x 64 tokens, width 128); 64 MB


def layer_norm_cases(rows, dtype, devices, cols=1024):
    """x (M, N) normalised over each row (None: the char GPT's (768, 128) and (16384, 1024);
    a size gives that many rows of 1024)."""
    s = np.dtype(dtype).itemsize
    eps = 1e-5
    cases = []
    for m, n in ([(r, cols) for r in rows] if rows else LN_SHAPES):
        size = m * n
        label = f"x({m},{n}), weight and bias ({n},)"

        def inputs(rng, m=m, n=n):
            x = _normal(rng, (m, n), dtype, 2.0) + dtype_type(dtype)(0.5)
            w, b = _normal(rng, (n,), dtype), _normal(rng, (n,), dtype)
            _, mean, rstd = reference.layer_norm_forward(x, w, b, eps)
            return x, w, b, mean, rstd, _normal(rng, (m, n), dtype)

        cases.append(_kernel_case(
            "layer_norm", "fwd", label, m, 8.0 * size, 2.0 * s * size, inputs, "layer_norm_forward",
            lambda k, x, w, b, mean, rstd, g: k.layer_norm_forward(x, w, b, eps), devices, SUMS, dtype,
            torch_fn=lambda x, w, b, mean, rstd, g, n=n: _torch().ops.aten.native_layer_norm(x, [n], w, b, eps),
            torch_adapt=lambda out: (out[0], out[1].reshape(-1), out[2].reshape(-1))))
        cases.append(_kernel_case(
            "layer_norm", "bwd", label, m, 11.0 * size, 3.0 * s * size, inputs, "layer_norm_backward",
            lambda k, x, w, b, mean, rstd, g: k.layer_norm_backward(g, x, w, mean, rstd), devices, SUMS, dtype,
            torch_fn=lambda x, w, b, mean, rstd, g, n=n: _torch().ops.aten.native_layer_norm_backward(
                g, x, [n], mean.reshape(-1, 1), rstd.reshape(-1, 1), w, b, [True, True, True])))
    return cases


# ----------------------------------------------------------------------------------------
# dropout: what nn.functional.dropout runs (the mask from the kernel table, then x * mask;
# backward g * mask).  PyTorch draws its own random numbers: its rows are timed, not compared.
def dropout_cases(sizes, dtype, devices, p=0.5):
    """x of each size (None: 16M elements, and the MNIST CNN's (128, 128) activation)."""
    s = np.dtype(dtype).itemsize
    cases = []
    for shape in [(n,) for n in sizes] if sizes else [(1 << 24,), (128, 128)]:
        n = math.prod(shape)
        label = f"x{shape}, p = {p}"

        def inputs(rng, shape=shape):
            x, g = _normal(rng, shape, dtype), _normal(rng, shape, dtype)
            return x, g, reference.dropout_mask(shape, p, 7, 0, dtype)

        def forward(k, x, g, mask):
            m = k.dropout_mask(x.shape, p, 7, 0, x.dtype)
            return x * m, m

        impls = table_impls("dropout_mask", forward, devices)
        impls += [dataclasses.replace(i, compared=False) for i in torch_impls(
            lambda x, g, mask: _torch().native_dropout(x, p, True), devices,
            adapt=lambda out: (out[0], out[1].astype(dtype) / (1 - p)))]
        # forward: read x, write y and the mask; backward: read g and the mask, write dx
        cases.append(Case("dropout", "fwd", label, n, 2.0 * n, 3.0 * s * n, inputs,
                          lambda ins: forward(reference, *ins), impls, EXACT[dtype]))
        backward = _kernel_case(
            "dropout", "bwd", label, n, float(n), 3.0 * s * n, inputs, "dropout_mask",
            lambda k, x, g, mask: (g * mask,), devices, EXACT, dtype,
            torch_fn=lambda x, g, mask: (_torch().ops.aten.native_dropout_backward(g, mask != 0, 1 / (1 - p)),))
        backward.impls = [i for i in backward.impls if i.name != "numba"]  # g * mask: NumPy's multiply
        cases.append(backward)
    return cases


# ----------------------------------------------------------------------------------------
# Adam (one step over a parameter group, in place)
CNN_PARAMS = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 1600), (128,), (10, 128), (10,)]
ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)


def adam_cases(sizes, dtype, devices):
    """The MNIST CNN's 8 parameters (225,034 numbers), and 16M parameters in 4 tensors (None:
    both; a size gives that many parameters in 4 tensors)."""
    s = np.dtype(dtype).itemsize
    groups = ([("4 tensors", [(n // 4,)] * 4) for n in sizes] if sizes else
              [("the MNIST CNN's 8 tensors", CNN_PARAMS), ("4 tensors", [(1 << 22,)] * 4)])
    cases = []
    for name, shapes in groups:
        n = sum(math.prod(sh) for sh in shapes)

        def inputs(rng, shapes=shapes):
            return ([_normal(rng, sh, dtype) for sh in shapes], [_normal(rng, sh, dtype) for sh in shapes],
                    [np.zeros(sh, dtype) for sh in shapes], [np.zeros(sh, dtype) for sh in shapes])

        def call(k, ps, gs, ms, vs):
            k.adam_step_(ps, gs, ms, vs, None, ADAM["lr"], ADAM["beta1"], ADAM["beta2"], ADAM["eps"], 1, 0.0, False)
            return tuple(ps) + tuple(ms) + tuple(vs)

        cases.append(_kernel_case("adam", "step", f"{n:,} parameters in {name}", n, 15.0 * n, 7.0 * s * n,
                                  inputs, "adam_step_", call, devices, SUMS, dtype, inplace=True,
                                  torch_fn=_torch_adam_step, torch_prepare=_torch_adam))
    return cases


def _torch_adam(ps, gs, ms, vs):
    """torch.optim.Adam (its default implementation for the device) over the parameters,
    their gradients set; moments start at 0, as in the inputs."""
    import torch

    params = [torch.nn.Parameter(p) for p in ps]
    for p, g in zip(params, gs):
        p.grad = g
    return (torch.optim.Adam(params, **{"lr": ADAM["lr"], "betas": (ADAM["beta1"], ADAM["beta2"]),
                                        "eps": ADAM["eps"]}),)


def _torch_adam_step(opt):
    opt.step()
    params = [p for group in opt.param_groups for p in group["params"]]
    state = [opt.state[p] for p in params]
    return tuple(params) + tuple(s["exp_avg"] for s in state) + tuple(s["exp_avg_sq"] for s in state)


# ----------------------------------------------------------------------------------------
# The ops: what --op names, what --size means for each, the default, tiny and sweep sizes
@dataclass
class Op:
    build: Callable     # (sizes or None, dtype, devices) -> [Case]
    size_means: str
    tiny: list
    sweep: list


OPS = {
    "matmul": Op(matmul_cases, "n of an n x n x n product", [16, (8, 24, 4)],
                 [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]),
    "conv2d": Op(conv_cases, "batch size", [1], [1, 2, 4, 8, 16, 32, 64, 128, 256]),
    "im2col": Op(im2col_cases, "batch size", [1], [1, 4, 16, 64, 256]),
    "max_pool2d": Op(pool_cases, "batch size", [1], [1, 4, 16, 64, 256]),
    "relu": Op(relu_cases, "elements", [1000, 70000], [1 << e for e in range(10, 27, 2)]),
    "sigmoid": Op(activation_cases("sigmoid"), "elements", [1000, 70000], [1 << e for e in range(10, 27, 2)]),
    "tanh": Op(activation_cases("tanh"), "elements", [1000, 70000], [1 << e for e in range(10, 27, 2)]),
    "softmax": Op(softmax_cases, "rows of 1024 logits", [1, 3], [1 << e for e in range(0, 17, 2)]),
    "log_softmax": Op(log_softmax_cases, "rows of 1024 logits", [1, 3], [1 << e for e in range(0, 17, 2)]),
    "cross_entropy": Op(cross_entropy_cases, "rows of 1024 classes", [1, 3], [1 << e for e in range(0, 17, 2)]),
    "batch_norm": Op(batch_norm_cases, "batch size of x(N, 64, 56, 56)", [1], [1, 2, 4, 8, 16, 32, 64]),
    "layer_norm": Op(layer_norm_cases, "rows of 1024", [1, 3], [1 << e for e in range(0, 17, 2)]),
    "dropout": Op(dropout_cases, "elements", [1000, 70000], [1 << e for e in range(10, 27, 2)]),
    "adam": Op(adam_cases, "parameters (in 4 tensors)", [1000, 4000], [1 << e for e in range(10, 25, 2)]),
}

# the defaults, as the issue asks for them: matmul squares 64..4096 and tall/skinny shapes
# (the MLP's first layer, the CNN's second conv as a GEMM, and its weight gradient)
MATMUL_DEFAULT = [64, 256, 1024, 4096, (128, 784, 128), (15488, 288, 64), (288, 15488, 64)]


def build(op, sizes, dtype, devices):
    """The Cases of ``op`` at ``sizes`` (None: the default set)."""
    if op == "matmul" and sizes is None:
        sizes = MATMUL_DEFAULT
    return OPS[op].build(sizes, dtype, devices)
