"""The kernel-table contract (docs/architecture.md, "The kernel table").

reference.py, cpu_kernels.py and backend/cuda/__init__.py expose exactly the same names, and every
kernel of cpu_kernels and cuda_kernels gives reference.py's numbers on random inputs:
float32 and float64, odd sizes, non-contiguous and channels-last inputs, empty batches.
cuda_kernels is checked twice: on NumPy arrays under the CPU emulator of CUDA C
(minigrad.backend.cuda.emulator, when it imports and a C++ compiler is present), and on a
real GPU when there is one.  Inconsistent inputs raise ValueError in every implementation.
"""
import importlib
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend
from tests.conftest import NO_CUDA
from minigrad.backend import cpu_kernels as C
from minigrad.backend import reference as R

# -- the implementations under test -----------------------------------------------------------


def _import_cuda_kernels():
    """The CUDA kernel table; it imports without CuPy (and must: it is part of the package)."""
    return importlib.import_module("minigrad.backend.cuda")


def _emulated_cuda():
    importlib.import_module("minigrad.backend.cuda.emulator")  # part of the package: no skip
    if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        pytest.skip("the CUDA emulator needs a C++ compiler (c++, g++ or clang++); none found")
    return _import_cuda_kernels()


class Impl:
    """A kernel module and the array module its inputs live in."""

    def __init__(self, module, xp):
        self.module, self.xp = module, xp

    def get(self, a):
        return a.get() if hasattr(a, "get") and self.xp is not np else a


@pytest.fixture(params=["cpu", "cuda-emulated",
                        pytest.param("cuda-gpu", marks=pytest.mark.skipif(not mg.cuda_available(), reason=NO_CUDA))])
def impl(request):
    """(cpu_kernels runs its numba kernels unless MINIGRAD_DISABLE_NUMBA=1: CI runs this file both ways.)"""
    if request.param == "cpu":
        return Impl(C, np)
    if request.param == "cuda-emulated":
        return Impl(_emulated_cuda(), np)
    return Impl(_import_cuda_kernels(), mg.backend.cupy)  # CuPy, or the stand-in of the emulated device


# -- the names -----------------------------------------------------------------------------------


def _public_functions(module):
    return {name for name, value in vars(module).items()
            if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == module.__name__}


def test_reference_lists_every_kernel_it_defines():
    assert len(R.__all__) == len(set(R.__all__)) == 57
    assert _public_functions(R) == set(R.__all__)
    for name in R.__all__:
        assert callable(getattr(R, name)) and getattr(R, name).__doc__, f"{name} needs a docstring with its math"


def test_cpu_kernels_expose_exactly_the_reference_names():
    assert list(C.__all__) == list(R.__all__)
    for name in R.__all__:
        assert callable(getattr(C, name))
    # whatever cpu_kernels defines itself overrides a reference kernel (plus the use_numba switch)
    assert _public_functions(C) - {"use_numba"} <= set(R.__all__)
    namespace = {}
    exec("from minigrad.backend.cpu_kernels import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(R.__all__)


def test_cuda_kernels_expose_exactly_the_reference_names():
    cuda = _import_cuda_kernels()
    assert sorted(cuda.__all__) == sorted(R.__all__)
    for name in R.__all__:
        assert callable(getattr(cuda, name))


def test_kernels_picks_the_table(monkeypatch):
    x = np.zeros(3)
    previous = backend.set_cpu_kernels("cpu")
    try:
        assert backend.kernels(x) is C
        assert backend.set_cpu_kernels("reference") == "cpu"
        assert backend.kernels(x) is R
        with pytest.raises(ValueError, match="set_cpu_kernels: expected one of cpu, reference, cuda, got 'fast'"):
            backend.set_cpu_kernels("fast")
        backend.set_cpu_kernels("cuda")
        try:
            cuda = importlib.import_module("minigrad.backend.cuda")
        except ImportError:
            with pytest.raises(RuntimeError, match=r"minigrad.backend.cuda\) could not be imported"):
                backend.kernels(x)
        else:
            assert backend.kernels(x) is cuda
    finally:
        backend.set_cpu_kernels(previous)


@pytest.mark.parametrize("value, expected", [("reference", "reference"), ("", "cpu"), ("cpu", "cpu")])
def test_minigrad_cpu_kernels_is_read_at_import(value, expected):
    code = ("import numpy, minigrad.backend as b; t = b.kernels(numpy.zeros(1)); "
            "print(t.__name__.rsplit('.', 1)[1])")
    env = {**os.environ, "MINIGRAD_CPU_KERNELS": value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == {"reference": "reference", "cpu": "cpu_kernels"}[expected]
    env["MINIGRAD_CPU_KERNELS"] = "fast"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "MINIGRAD_CPU_KERNELS='fast': expected one of cpu, reference, cuda" in bad.stderr


def test_set_matmul_validates():
    try:
        backend.set_matmul("own", "tiled")
        assert backend.get_matmul() == ("own", "tiled")
        with pytest.raises(ValueError, match="impl must be 'cublas' or 'own'"):
            backend.set_matmul("mkl")
        with pytest.raises(ValueError, match="variant must be one of"):
            backend.set_matmul("own", "fast")
    finally:
        backend.set_matmul()
    assert backend.get_matmul() == ("cublas", "regblock")


# -- numbers: every kernel against reference.py ---------------------------------------------------


class Put:
    """Builds kernel inputs from NumPy data on one array module, in a given memory layout."""

    def __init__(self, xp, dtype):
        self.xp, self.dtype = xp, dtype

    def __call__(self, a, layout="C"):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = a.astype(self.dtype)
        xp = self.xp
        d = xp.array(a)
        if layout == "F":
            return xp.asfortranarray(d)
        if layout == "strided":  # every other element of a bigger buffer
            big = xp.zeros(d.shape[:-1] + (2 * d.shape[-1],), dtype=d.dtype)
            big[..., ::2] = d
            return big[..., ::2]
        if layout == "channels_last":  # (N, C, H, W) values in (N, H, W, C) memory
            return xp.ascontiguousarray(d.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        if layout == "T":  # a transposed view
            return xp.ascontiguousarray(d.T).T
        assert layout == "C"
        return d


CASES = {}


def case(name, *variants):
    """Register a builder ``build(put, rng, variant) -> args`` for kernel ``name``."""
    def register(build):
        for v in variants or (None,):
            CASES[f"{name}[{v}]" if v is not None else name] = (name, build, v)
        return build
    return register


def normal(rng, shape, scale=1.0):
    return rng.standard_normal(shape) * scale


LAYOUTS_4D = ("C", "F", "strided", "channels_last")
SHAPES = {"C": (3, 5, 7, 9), "F": (3, 5, 7, 9), "strided": (3, 5, 7, 9), "channels_last": (3, 5, 7, 9),
          "big": (70001,), "empty": (0, 5), "0d": ()}


def _elementwise_input(put, rng, v, scale=3.0):
    layout = v if v in LAYOUTS_4D else "C"
    return lambda: put(normal(rng, SHAPES[v], scale), layout)


for _name in ("relu", "sigmoid", "tanh", "silu"):
    case(_name, *SHAPES)(lambda put, rng, v: (_elementwise_input(put, rng, v)(),))
case("leaky_relu", *SHAPES)(lambda put, rng, v: (_elementwise_input(put, rng, v)(), 0.1))
case("gelu", *SHAPES)(lambda put, rng, v: (_elementwise_input(put, rng, v)(), "none"))
case("gelu", "tanh-C", "tanh-channels_last")(
    lambda put, rng, v: (put(normal(rng, (3, 5, 7, 9), 3), v[5:]), "tanh"))
for _name in ("relu_backward", "sigmoid_backward", "tanh_backward", "silu_backward"):
    case(_name, *SHAPES)(lambda put, rng, v: (_elementwise_input(put, rng, v, 1.0)(), _elementwise_input(put, rng, v)()))
case("leaky_relu_backward", *SHAPES)(
    lambda put, rng, v: (_elementwise_input(put, rng, v, 1.0)(), _elementwise_input(put, rng, v)(), 0.2))
case("gelu_backward", *SHAPES)(
    lambda put, rng, v: (_elementwise_input(put, rng, v, 1.0)(), _elementwise_input(put, rng, v)(), "none"))
case("gelu_backward", "tanh")(lambda put, rng, v: (put(normal(rng, (7, 33))), put(normal(rng, (7, 33), 3)), "tanh"))

ROWWISE = {"rows": ((7, 13), 1, "C"), "cols": ((7, 13), 0, "F"), "3d": ((3, 4, 5), 1, "strided"),
           "long": ((3, 1025), 1, "C"), "many": ((70, 1001), 1, "C"), "empty": ((0, 5), 1, "C"),
           "huge": ((4, 6), 1, "huge")}


def _rowwise_input(put, rng, v):
    shape, axis, layout = ROWWISE[v]
    x = normal(rng, shape, 3)
    if layout == "huge":  # logits of 1e4, a row of -inf (NaN out) and a NaN
        x[0] *= 1e4
        x[1] = -np.inf
        x[2, 3] = np.nan
        layout = "C"
    return put(x, layout), axis


for _name in ("softmax", "log_softmax"):
    case(_name, *ROWWISE)(lambda put, rng, v: _rowwise_input(put, rng, v))
for _name, _ys in (("softmax_backward", lambda y, a: np.exp(y) / np.exp(y).sum(a, keepdims=True)),
                   ("log_softmax_backward", lambda y, a: y - np.log(np.exp(y).sum(a, keepdims=True)))):
    case(_name, *(k for k in ROWWISE if k != "huge"))(
        lambda put, rng, v, _ys=_ys: (put(normal(rng, ROWWISE[v][0])),
                                      put(_ys(normal(rng, ROWWISE[v][0]), ROWWISE[v][1]), ROWWISE[v][2]),
                                      ROWWISE[v][1]))


@case("logsumexp", "two-axes", "one-axis", "all-minus-inf", "empty")
def _logsumexp(put, rng, v):
    x = normal(rng, (4, 5, 6), 10)
    if v == "all-minus-inf":
        x[1] = -np.inf
        x[2, 0, 0] = np.inf
    if v == "empty":
        return put(np.zeros((3, 0, 2))), (1,)
    return put(x, "F"), ((0, 2) if v == "two-axes" else (1,))


def _ce_inputs(put, rng, v):
    """(x, target, weight, ignore_index, smoothing) for a cross-entropy variant."""
    n, c = {"empty": (0, 5), "one": (1, 1), "wide": (70, 1000)}.get(v.split("-")[0], (9, 7))
    x = normal(rng, (n, c), 4)
    t = rng.integers(0, c, n)
    if n > 3:
        t[1] = 3 if "ignore" in v else t[1]
        t[2] = c + 4 if "bad" in v else t[2]  # out of range: NaN row
    weight = put(rng.uniform(0.2, 2.0, c)) if "weight" in v else None
    return put(x, "strided" if "strided" in v else "C"), put(t), weight, (3 if "ignore" in v else -100), \
        (0.2 if "smooth" in v else 0.0)


CE_VARIANTS = ("plain", "weight", "ignore", "smooth", "weight-ignore-smooth", "bad", "bad-weight-smooth",
               "strided", "empty", "one", "wide-weight-ignore-smooth")
case("cross_entropy_forward", *CE_VARIANTS)(lambda put, rng, v: _ce_inputs(put, rng, v))


@case("cross_entropy_backward", *CE_VARIANTS)
def _ce_backward(put, rng, v):
    x, t, w, ignore, e = _ce_inputs(put, rng, v)
    n = x.shape[0]
    xn = np.asarray(x.get() if hasattr(x, "get") else x, dtype=np.float64)
    sumexp = np.exp(xn - xn.max(1, keepdims=True)).sum(1) if n else np.zeros(0)  # (the forward's)
    return x, t, put(sumexp), put(rng.uniform(0.5, 1.5, n)), w, ignore, e


BN = {"2d": ((6, 5), "C"), "4d": ((4, 3, 5, 7), "C"), "channels_last": ((4, 3, 5, 7), "channels_last"),
      "F": ((4, 3, 5, 7), "F")}


@case("batch_norm_forward", *(f"{k}-{m}" for k in BN for m in ("train", "eval", "train-noaffine")))
def _bn_forward(put, rng, v):
    key, mode = v.split("-", 1)
    shape, layout = BN[key]
    c = shape[1]
    w, b = (None, None) if "noaffine" in mode else (put(normal(rng, c)), put(normal(rng, c)))
    x = put(normal(rng, shape, 2) + 1, layout)
    if mode == "eval":
        return x, w, b, 1e-5, put(normal(rng, c)), put(rng.uniform(0.5, 2, c))
    return x, w, b, 1e-5


@case("batch_norm_backward", *(f"{k}-{m}" for k in BN for m in ("train", "eval", "train-noweight")))
def _bn_backward(put, rng, v):
    key, mode = v.split("-", 1)
    shape, layout = BN[key]
    c = shape[1]
    return (put(normal(rng, shape), layout), put(normal(rng, shape, 2), layout),
            None if "noweight" in mode else put(normal(rng, c)), put(normal(rng, c)), put(rng.uniform(0.5, 2, c)),
            mode != "eval")


@case("layer_norm_forward", "affine", "plain", "strided", "empty")
def _ln_forward(put, rng, v):
    m, n = (0, 4) if v == "empty" else (9, 13)
    w, b = (put(normal(rng, n)), put(normal(rng, n))) if v == "affine" else (None, None)
    return put(normal(rng, (m, n), 2) + 1, "strided" if v == "strided" else "C"), w, b, 1e-5


@case("layer_norm_backward", "affine", "plain", "empty")
def _ln_backward(put, rng, v):
    m, n = (0, 4) if v == "empty" else (9, 13)
    x = normal(rng, (m, n), 2) + 1
    mean, rstd = x.mean(1), 1 / np.sqrt(x.var(1) + 1e-5)
    return put(normal(rng, (m, n))), put(x), put(normal(rng, n)) if v == "affine" else None, put(mean), put(rstd)


case("channels_last", "C", "channels_last", "F")(lambda put, rng, v: (put(normal(rng, (2, 3, 4, 5)), v),))
case("is_channels_last", "C", "channels_last", "F")(lambda put, rng, v: (put(normal(rng, (2, 3, 4, 5)), v),))

# (N, H, W, C), kernel, stride, padding, dilation
CONV = {"3x3": ((2, 7, 8, 3), (3, 3), (1, 1), (1, 1), (1, 1)),
        "odd": ((3, 9, 6, 5), (3, 2), (2, 1), (1, 2), (1, 2)),
        "1ch": ((3, 9, 9, 1), (3, 3), (1, 1), (0, 0), (1, 1)),
        "1ch-pad": ((2, 5, 4, 1), (2, 3), (3, 2), (2, 1), (2, 1)),
        "empty": ((0, 5, 5, 2), (3, 3), (1, 1), (0, 0), (1, 1))}


def _conv_geometry(v):
    shape, k, s, p, d = CONV[v.replace("-ones", "")]
    out = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, ss, pp, dd in zip(shape[1:3], k, s, p, d))
    return shape, (k, s, p, d, out)


@case("im2col", *CONV, "3x3-ones", "1ch-ones")
def _im2col(put, rng, v):
    shape, geometry = _conv_geometry(v)
    return (put(normal(rng, shape)), *geometry, v.endswith("-ones"))


# more images than one piece of the CPU table's convolution (2048 output pixels): 56 + 14
CONV["pieces"] = ((70, 8, 8, 3), (3, 3), (1, 1), (0, 0), (1, 1))


def _conv_operands(put, rng, v):
    """x (N, H, W, C) and W2 (taps [+ 1 bias row], O = 5) of a convolution case."""
    shape, geometry = _conv_geometry(v)
    (kh, kw) = geometry[0]
    return put(normal(rng, shape)), put(normal(rng, (kh * kw * shape[3] + v.endswith("-ones"), 5))), geometry


@case("conv2d_forward", *CONV, "3x3-ones", "1ch-ones", "pieces-ones")
def _conv2d_forward(put, rng, v):
    x, wmat, geometry = _conv_operands(put, rng, v)
    return (x, wmat, *geometry)


# "-saved": the columns the reference's forward keeps (a table then reads them); otherwise None
# (each table unrolls x again); "-dx" / "-dw": only that gradient wanted
@case("conv2d_backward", *CONV, "3x3-ones", "3x3-ones-saved", "1ch-ones-saved", "pieces-ones", "odd-dx", "pieces-dw")
def _conv2d_backward(put, rng, v):
    base = v.replace("-saved", "").replace("-dx", "").replace("-dw", "")
    x, wmat, geometry = _conv_operands(put, rng, base)
    shape, out = x.shape, geometry[-1]
    g = put(normal(rng, (shape[0] * out[0] * out[1], wmat.shape[1])))
    saved = None
    if v.endswith("-saved"):
        saved = _reference("conv2d_forward", x, wmat, *geometry)[1]
        saved = put(saved, "T" if base.startswith("1ch") else "C")  # (the one-channel columns: a transposed view)
    return (g, x, wmat, saved, *geometry, not v.endswith("-dw"), not v.endswith("-dx"))


@case("col2im", *CONV)
def _col2im(put, rng, v):
    shape, geometry = _conv_geometry(v)
    (kh, kw), out = geometry[0], geometry[-1]
    cols = normal(rng, (shape[0] * out[0] * out[1], kh * kw * shape[3]))
    return (put(cols, "T" if v == "odd" else "C"), shape, *geometry)


# (N, C, H, W), kernel, stride, padding, dilation, ceil_mode
POOL = {"2x2": ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
        "2x2-odd": ((2, 3, 7, 9), (2, 2), (2, 2), (0, 0), (1, 1), False),
        "2x2-ceil": ((2, 3, 7, 9), (2, 2), (2, 2), (0, 0), (1, 1), True),
        "3x2-pad": ((2, 2, 7, 9), (3, 2), (2, 1), (1, 1), (1, 1), False),
        "3x3-ceil-pad": ((1, 2, 6, 7), (3, 3), (2, 2), (1, 1), (1, 1), True),
        "dilated": ((2, 2, 9, 8), (3, 2), (2, 2), (1, 1), (2, 3), True),
        "empty": ((0, 3, 5, 5), (2, 2), (2, 2), (0, 0), (1, 1), False)}


def _pool_out(shape, k, s, p, d, ceil):
    from minigrad.ops.conv import output_size
    return tuple(output_size(n, kk, ss, pp, dd, ceil) for n, kk, ss, pp, dd in zip(shape[2:], k, s, p, d))


def _pool_input(put, rng, v, layout):
    shape = POOL[v][0]
    x = rng.integers(-3, 3, shape).astype(np.float64)  # many ties
    if x.size:
        x[0, 0, 0, 1] = np.nan
    return put(x, layout)


POOL_VARIANTS = [f"{v}-{layout}" for v in POOL for layout in ("C", "channels_last", "F")]


@case("maxpool2d_forward", *POOL_VARIANTS)
def _maxpool_forward(put, rng, v):
    key, layout = v.rsplit("-", 1)
    shape, k, s, p, d, ceil = POOL[key]
    return _pool_input(put, rng, key, layout), k, s, p, d, _pool_out(shape, k, s, p, d, ceil)


@case("maxpool2d_backward", *POOL_VARIANTS)
def _maxpool_backward(put, rng, v):
    key, layout = v.rsplit("-", 1)
    shape, k, s, p, d, ceil = POOL[key]
    x = _pool_input(put, rng, key, layout)
    _, argmax = R.maxpool2d_forward(np.asarray(x.get() if hasattr(x, "get") else x), k, s, p, d,
                                    _pool_out(shape, k, s, p, d, ceil))
    if layout == "channels_last":  # as the channels-last forward returns it
        argmax = np.ascontiguousarray(argmax.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g = put(normal(rng, argmax.shape), layout)
    return g, (put(argmax, layout) if put.xp is not np else argmax), shape, k, s, p, d


@case("avgpool2d_forward", *(f"{v}-{i}" for v in POOL_VARIANTS if not v.startswith("dilated") for i in ("incl", "excl")))
def _avgpool_forward(put, rng, v):
    key, layout, include = v.rsplit("-", 2)
    shape, k, s, p, d, ceil = POOL[key]
    x = put(normal(rng, shape), layout)
    return x, k, s, p, _pool_out(shape, k, s, p, d, ceil), include == "incl"


@case("avgpool2d_backward", *(f"{v}-{i}" for v in POOL if v != "dilated" for i in ("incl", "excl")))
def _avgpool_backward(put, rng, v):
    key, include = v.rsplit("-", 1)
    shape, k, s, p, d, ceil = POOL[key]
    out = _pool_out(shape, k, s, p, d, ceil)
    return put(normal(rng, shape[:2] + out), "F"), shape, k, s, p, out, include == "incl"


DROPOUT = {"small": ((7, 13), 0.3, 5, 0), "odd": ((1001,), 0.5, 2**40 + 17, 12345), "keep-all": ((5, 3), 0.0, 1, 3),
           "drop-all": ((9,), 1.0, 1, 0), "one": ((1,), 0.2, 0, 2**33), "empty": ((0, 4), 0.5, 3, 7)}
case("dropout_mask", *DROPOUT)(lambda put, rng, v: (*DROPOUT[v][:1], *DROPOUT[v][1:], put.dtype))


@case("embedding_backward", "repeats", "empty")
def _embedding_backward(put, rng, v):
    m = 0 if v == "empty" else 40
    return put(normal(rng, (m, 6))), put(rng.integers(0, 11, m)), 11


@case("sum_of_squares", *SHAPES, "nonfinite")
def _sum_of_squares(put, rng, v):
    if v == "nonfinite":  # inf^2 = inf, then + NaN = NaN
        return (put(np.array([1.0, np.inf, -2.0, np.nan])),)
    return (_elementwise_input(put, rng, v, scale=1e3)(),)


MATMUL = {"2d": ((5, 7), (7, 3), "C", "C"), "transposed": ((6, 4), (4, 9), "T", "T"),
          "batched": ((2, 1, 4, 5), (3, 5, 2), "C", "strided"), "empty": ((0, 3), (3, 4), "C", "C"),
          "inner-empty": ((2, 0), (0, 3), "C", "C")}


@case("matmul", *MATMUL)
def _matmul(put, rng, v):
    sa, sb, la, lb = MATMUL[v]
    return put(normal(rng, sa), la), put(normal(rng, sb), lb)


@case("linear", "bias", "no-bias", "empty", "transposed")
def _linear(put, rng, v):
    m = 0 if v == "empty" else 6
    return (put(normal(rng, (m, 5)), "T" if v == "transposed" else "C"), put(normal(rng, (4, 5))),
            None if v == "no-bias" else put(normal(rng, 4)))


PARAM_SHAPES = [(3, 4), (5,), (), (2, 3)]


def _param_lists(put, rng, n_lists, layouts=("C", "C", "C", "F")):
    return [[put(normal(rng, s), layout if len(s) > 1 else "C") for s, layout in zip(PARAM_SHAPES, layouts)]
            for _ in range(n_lists)]


SGD = {"plain": (0.0, 0.0, 0.0, False, False), "momentum-first": (0.9, 0.0, 0.01, False, True),
       "momentum": (0.9, 0.1, 0.0, False, False), "nesterov": (0.8, 0.0, 0.05, True, False),
       "wd": (0.0, 0.0, 0.1, False, False)}


@case("sgd_step_", *SGD)
def _sgd(put, rng, v):
    momentum, dampening, wd, nesterov, first = SGD[v]
    params, grads, bufs = _param_lists(put, rng, 3)
    return params, grads, bufs if momentum else None, 0.1, wd, momentum, dampening, nesterov, first


RMSPROP = {"plain": (False, 0.0, 0.0), "centered": (True, 0.0, 0.0), "momentum-wd": (False, 0.9, 0.1),
           "centered-momentum": (True, 0.5, 0.0)}


@case("rmsprop_step_", *RMSPROP)
def _rmsprop(put, rng, v):
    centered, momentum, wd = RMSPROP[v]
    params, grads, square_avgs, grad_avgs, bufs = _param_lists(put, rng, 5)
    # a mean of squares (>= 0.1 here) and a mean small enough that v - a^2 stays > 0 after the step
    square_avgs = [put(0.1 + np.abs(normal(rng, s))) for s in PARAM_SHAPES]
    grad_avgs = [put(normal(rng, s, 0.05)) for s in PARAM_SHAPES]
    return (params, grads, square_avgs, grad_avgs if centered else None, bufs if momentum else None,
            0.01, 0.9, 1e-8, wd, momentum)


ADAGRAD = {"plain": (0.0, 0.0, 1), "decay-wd": (0.1, 0.05, 4)}


@case("adagrad_step_", *ADAGRAD)
def _adagrad(put, rng, v):
    lr_decay, wd, step = ADAGRAD[v]
    params, grads = _param_lists(put, rng, 2)
    sums = [put(0.1 + np.abs(normal(rng, s))) for s in PARAM_SHAPES]  # sums of squares: > 0
    return params, grads, sums, 0.1, lr_decay, wd, 1e-10, step


ADADELTA = {"plain": (1.0, 0.9, 0.0), "wd": (0.5, 0.5, 0.1)}


@case("adadelta_step_", *ADADELTA)
def _adadelta(put, rng, v):
    lr, rho, wd = ADADELTA[v]
    params, grads = _param_lists(put, rng, 2)
    square_avgs, acc_deltas = ([put(np.abs(normal(rng, s))) for s in PARAM_SHAPES] for _ in range(2))
    return params, grads, square_avgs, acc_deltas, lr, rho, 1e-6, wd


ADAM = {"adam": (False, False, 0.0, 1), "adam-wd": (False, False, 0.1, 3), "adamw": (False, True, 0.05, 7),
        "amsgrad": (True, False, 0.0, 2), "amsgrad-adamw": (True, True, 0.1, 1)}


@case("adam_step_", *ADAM)
def _adam(put, rng, v):
    amsgrad, decoupled, wd, step = ADAM[v]
    params, grads, m, vv, vmax = _param_lists(put, rng, 5)
    vv = [put.xp.asarray(a * a) for a in vv]  # second moments are >= 0
    vmax = [put.xp.asarray(a * a + b) for a, b in zip(vmax, vv)] if amsgrad else None
    return params, grads, m, vv, vmax, 1e-2, 0.9, 0.999, 1e-8, step, wd, decoupled


ATTENTION = {"plain": (None, False, 0.0), "causal": (None, True, 0.0), "mask-shared": ("shared", False, 0.0),
             "mask-per-batch-dropout": ("per-batch", False, 0.3), "causal-dropout": (None, True, 0.5),
             "empty": ("empty", False, 0.0)}


def _attention_inputs(put, rng, v):
    """(q, k, v, mask, is_causal, scale, dropout_p, seed, offset); a fully masked row in "mask-shared"."""
    kind, causal, p = ATTENTION[v]
    b, tq, tk, d, dv = (0, 3, 4, 2, 2) if kind == "empty" else (3, 5, 7, 4, 3)
    q, k, vv = put(normal(rng, (b, tq, d)), "strided"), put(normal(rng, (b, tk, d))), put(normal(rng, (b, tk, dv)))
    mask = None
    if kind == "shared":
        m = np.where(rng.random((1, tq, tk)) > 0.3, 0.0, -np.inf)
        m[0, 2] = -np.inf
        mask = put(m)
    elif kind == "per-batch":
        mask = put(normal(rng, (b, 1, tk)))
    return q, k, vv, mask, causal, 0.6, p, 2**40 + 3, 5


case("attention_forward", *ATTENTION)(_attention_inputs)


@case("attention_backward", *ATTENTION)
def _attention_backward(put, rng, v):
    q, k, vv, mask, *rest = _attention_inputs(put, rng, v)
    with np.errstate(invalid="ignore"):
        out, lse = R.attention_forward(*(a if a is None or isinstance(a, (bool, int, float)) else np.asarray(
            a.get() if hasattr(a, "get") else a) for a in (q, k, vv, mask, *rest)))
    g = normal(rng, out.shape)
    return (put(g), q, k, vv, put(out), put(lse), mask, *rest)


# Recurrent cells: B=5 rows, I=3 inputs, H=4 units; "proj": an LSTM state h of width 2 < H;
# "strided": non-contiguous x, h and weights; "nan": a NaN in row 0 of x; "empty": no rows;
# "no-dx": backward without the input's gradient (dx None).
CELL = {"plain": ("C", True, None), "no-bias": ("C", False, None), "strided": ("strided", True, None),
        "nan": ("C", True, None), "empty": ("C", True, None), "no-dx": ("C", True, None)}
CELL_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _cell_inputs(put, rng, kind, v):
    """x, h, [c], w_ih, w_hh, b_ih, b_hh for a cell of ``kind`` in variant ``v``."""
    layout, bias, _ = CELL.get(v, ("C", True, None))
    g, b, hidden = CELL_GATES[kind], 0 if v == "empty" else 5, 4
    p = 2 if v == "proj" else hidden
    x = normal(rng, (b, 3))
    if v == "nan":
        x[0, 1] = np.nan
    arrays = [put(x, layout), put(normal(rng, (b, p)), "T" if layout == "strided" else "C")]
    if kind == "lstm":
        arrays.append(put(normal(rng, (b, hidden))))
    arrays += [put(normal(rng, (g * hidden, 3)), layout), put(normal(rng, (g * hidden, p)), layout)]
    arrays += [put(normal(rng, g * hidden)), put(normal(rng, g * hidden))] if bias else [None, None]
    return arrays


def _reference(name, *args):
    """A reference result computed from (possibly device) arguments, as NumPy arrays."""
    host = [a.get() if hasattr(a, "get") else a for a in args]
    with np.errstate(invalid="ignore"):
        return getattr(R, name)(*host)


@case("rnn_cell_forward", *(f"{v}-{nl}" for v in CELL for nl in ("tanh", "relu")))
def _rnn_forward(put, rng, v):
    v, nonlinearity = v.rsplit("-", 1)
    return (*_cell_inputs(put, rng, "rnn", v), nonlinearity)


@case("rnn_cell_backward", *(f"{v}-{nl}" for v in CELL for nl in ("tanh", "relu")))
def _rnn_backward(put, rng, v):
    x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity = _rnn_forward(put, rng, v)
    h_new = _reference("rnn_cell_forward", x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    return put(normal(rng, h_new.shape)), x, h, put(h_new), w_ih, w_hh, nonlinearity, not v.startswith("no-dx")


case("lstm_cell_forward", *CELL, "proj")(lambda put, rng, v: _cell_inputs(put, rng, "lstm", v))


@case("lstm_cell_backward", *CELL, "proj")
def _lstm_backward(put, rng, v):
    x, h, c, w_ih, w_hh, b_ih, b_hh = _cell_inputs(put, rng, "lstm", v)
    hc, (gates, tanh_c) = _reference("lstm_cell_forward", x, h, c, w_ih, w_hh, b_ih, b_hh)
    return put(normal(rng, hc.shape)), x, h, c, (put(gates), put(tanh_c)), w_ih, w_hh, v != "no-dx"


case("gru_cell_forward", *CELL)(lambda put, rng, v: _cell_inputs(put, rng, "gru", v))


@case("gru_cell_backward", *CELL)
def _gru_backward(put, rng, v):
    x, h, w_ih, w_hh, b_ih, b_hh = _cell_inputs(put, rng, "gru", v)
    h_new, saved = _reference("gru_cell_forward", x, h, w_ih, w_hh, b_ih, b_hh)
    return put(normal(rng, h_new.shape)), x, h, put(saved), w_ih, w_hh, v != "no-dx"


# The step kernels write into their last arguments (compared after the call): "strided" reads
# strided inputs, "strided-out" also writes into strided outputs (numba follows the strides,
# the CUDA table falls back to the reference), "nan": a NaN among the products, "empty": no rows.
STEP = ("plain", "strided", "strided-out", "nan", "empty")


def _step_arrays(put, rng, v, inputs, outputs):
    """Inputs of the given shapes (normal, in ``v``'s layout; a NaN in the first for "nan") and
    zero-filled outputs of the given shapes; rows B = 5 (0 for "empty") replace the 'B's."""
    b = 0 if v == "empty" else 5
    fix = lambda shape: tuple(b if d == "B" else d for d in shape)  # noqa: E731
    ins = [normal(rng, fix(s)) for s in inputs]
    if v == "nan" and b:
        ins[0][0, 1] = np.nan
    layout = "strided" if v.startswith("strided") else "C"
    outs = [put(np.zeros(fix(s)), "strided" if v == "strided-out" else "C") for s in outputs]
    return [put(a, layout) for a in ins], outs


@case("rnn_step_forward", *(f"{v}-{nl}" for v in STEP for nl in ("tanh", "relu")))
def _rnn_step_forward(put, rng, v):
    v, nonlinearity = v.rsplit("-", 1)
    (xw, hw), (out,) = _step_arrays(put, rng, v, [("B", 4), ("B", 4)], [("B", 4)])
    return xw, hw, nonlinearity, out


@case("rnn_step_backward", *(f"{v}-{nl}" for v in STEP for nl in ("tanh", "relu")))
def _rnn_step_backward(put, rng, v):
    v, nonlinearity = v.rsplit("-", 1)
    (g, h_new), (da,) = _step_arrays(put, rng, v, [("B", 4), ("B", 4)], [("B", 4)])
    return g, h_new, nonlinearity, da


@case("lstm_step_forward", *STEP)
def _lstm_step_forward(put, rng, v):
    # the first argument is read (the input's product) and written (the gates): strided where
    # the outputs are, with the NaN of "nan" in the products
    (hw, c), outs = _step_arrays(put, rng, v, [("B", 16), ("B", 4)], [("B", 16), ("B", 4), ("B", 4), ("B", 4)])
    gates = outs[0]
    gates[...] = put(normal(rng, gates.shape))
    if v == "nan" and gates.shape[0]:
        gates[0, 1] = np.nan
    return (gates, hw, c, *outs[1:])


@case("lstm_step_backward", *STEP)
def _lstm_step_backward(put, rng, v):
    (gh, gc, c, gates, tanh_c), (da, dc) = _step_arrays(put, rng, v, [("B", 4), ("B", 4), ("B", 4), ("B", 16),
                                                                      ("B", 4)], [("B", 16), ("B", 4)])
    return gh, gc, c, gates, tanh_c, da, dc


@case("gru_step_forward", *STEP)
def _gru_step_forward(put, rng, v):
    (gi, gh, h), outs = _step_arrays(put, rng, v, [("B", 12), ("B", 12), ("B", 4)], [("B", 4), ("B", 16)])
    return (gi, gh, h, *outs)


@case("gru_step_backward", *STEP)
def _gru_step_backward(put, rng, v):
    (g, h, saved), outs = _step_arrays(put, rng, v, [("B", 4), ("B", 4), ("B", 16)], [("B", 12), ("B", 12), ("B", 4)])
    return (g, h, saved, *outs)


def test_every_kernel_has_cases():
    assert {name for name, _, _ in CASES.values()} == set(R.__all__)


def _arrays_in(value):
    """The arrays in a kernel's result or argument list, in order (for comparing)."""
    if isinstance(value, np.generic):  # NumPy hands a 0-d result back as a scalar
        return [np.asarray(value)]
    if value is None or isinstance(value, (bool, int, float, str, type)):
        return []
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _arrays_in(v)]
    return [value]


def _compare(impl, got, expected, dtype, what):
    if isinstance(expected, bool):
        assert got is expected, what
        return
    got_arrays, expected_arrays = _arrays_in(got), _arrays_in(expected)
    assert len(got_arrays) == len(expected_arrays), what
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    for a, b in zip(got_arrays, expected_arrays):
        a = impl.get(a)
        assert np.shape(a) == np.shape(b), what
        assert np.asarray(a).dtype == np.asarray(b).dtype, what
        if np.asarray(b).dtype.kind in "fc":
            np.testing.assert_allclose(a, b, err_msg=what, equal_nan=True, **tol)
        else:
            np.testing.assert_array_equal(a, b, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("key", sorted(CASES))
def test_kernel_matches_reference(impl, key, dtype):
    name, build, variant = CASES[key]
    ref_args = build(Put(np, dtype), np.random.default_rng(0), variant)
    dev_args = build(Put(impl.xp, dtype), np.random.default_rng(0), variant)
    with np.errstate(all="ignore"):  # NaN and inf inputs are part of the cases
        expected = getattr(R, name)(*ref_args)
        got = getattr(impl.module, name)(*dev_args)
    if expected is None:  # in place: compare what the kernels changed
        _compare(impl, dev_args, ref_args, dtype, key)
    elif name == "conv2d_forward":  # (y, what the table's own backward reads: tables differ there)
        _compare(impl, got[0], expected[0], dtype, key)
    else:
        _compare(impl, got, expected, dtype, key)
    if name in ("relu", "gelu", "leaky_relu", "sigmoid") and impl.xp is np and R.is_channels_last(dev_args[0]):
        assert R.is_channels_last(got), "elementwise kernels keep a channels-last layout on the CPU"
    if name == "maxpool2d_forward" and impl.module is C and R.is_channels_last(dev_args[0]) and C.use_numba() \
            and variant.startswith("2x2-") and not variant.startswith("2x2-ceil"):
        assert R.is_channels_last(got[0]), "the 2x2 max pool keeps a channels-last input channels-last"


def test_kernels_match_reference_with_numba_disabled(monkeypatch):
    """MINIGRAD_DISABLE_NUMBA=1: every override falls back to exactly the reference code."""
    monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", "1")
    assert not C.use_numba()
    for key, (name, build, variant) in sorted(CASES.items()):
        ref_args = build(Put(np, np.float32), np.random.default_rng(1), variant)
        cpu_args = build(Put(np, np.float32), np.random.default_rng(1), variant)
        with np.errstate(all="ignore"):
            expected = getattr(R, name)(*ref_args)
            got = getattr(C, name)(*cpu_args)
        got, expected = (cpu_args, ref_args) if expected is None else (got, expected)
        if name == "conv2d_forward":
            got, expected = got[0], expected[0]
        for a, b in zip(_arrays_in(got), _arrays_in(expected)):
            np.testing.assert_array_equal(a, b, err_msg=key)


# -- Philox: the published known answers, and the mask's statistics ----------------------------

# Random123's known-answer vectors for Philox4x32-10 (Salmon et al. 2011, the kat_vectors file).
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", PHILOX_KAT)
def test_philox_known_answers(counter, key, expected):
    words = R._philox4x32(tuple(np.array([c], dtype=np.uint64) for c in counter), key)
    assert tuple(int(w[0]) for w in words) == expected


@pytest.mark.parametrize("table", ["reference", "cpu_kernels", "cuda"])
def test_dropout_mask_without_like_is_numpy_in_every_table(table):
    """The contract: ``like=None`` gives a NumPy array, whatever devices this machine has (the
    CUDA table once returned CuPy whenever a GPU existed); ``like=`` a device array gives one on
    its device, with the same values.  CI runs this with and without the emulated device."""
    if table == "cuda":
        _emulated_cuda()  # skips without a compiler for the emulator
    module = importlib.import_module(f"minigrad.backend.{table}")
    mask = module.dropout_mask((5, 3), 0.4, 7, 2, np.float32)
    assert type(mask) is np.ndarray and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, R.dropout_mask((5, 3), 0.4, 7, 2, np.float32))
    if mg.cuda_available() and table != "cpu_kernels":  # (cpu_kernels serves NumPy arrays only)
        like = backend.to_device(np.zeros(1, np.float32), "cuda")
        on_device = module.dropout_mask((5, 3), 0.4, 7, 2, np.float32, like=like)
        assert backend.device_of(on_device) == backend.CUDA
        np.testing.assert_array_equal(backend.to_device(on_device, "cpu"), mask)


def test_dropout_mask_follows_the_counter_layout(impl):
    """Element i uses block offset + i // 4 and word i % 4, kept iff (word >> 8) 2^-24 >= p."""
    seed, offset, p = 0x1234_5678_9ABC_DEF0, 77, 0.4
    mask = impl.get(impl.module.dropout_mask((3, 7), p, seed, offset, np.float64)).reshape(-1)
    for i in range(21):
        block = offset + i // 4
        words = R._philox4x32(tuple(np.array([c], dtype=np.uint64)
                                    for c in (block & 0xFFFFFFFF, block >> 32, 0, 0)),
                              (seed & 0xFFFFFFFF, seed >> 32))
        u = (int(words[i % 4][0]) >> 8) * 2.0 ** -24
        assert mask[i] == (1 / (1 - p) if u >= p else 0.0)


def test_dropout_mask_statistics_and_offsets():
    n, p = 200_000, 0.3
    mask = C.dropout_mask((n,), p, 7, 0, np.float32)
    kept = mask != 0
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert np.all(mask[kept] == np.float32(1 / (1 - p)))
    # consecutive calls: the second starts where the first's blocks ended
    first, second = C.dropout_mask((8,), p, 7, 0, np.float64), C.dropout_mask((8,), p, 7, 2, np.float64)
    np.testing.assert_array_equal(np.concatenate([first, second]), C.dropout_mask((16,), p, 7, 0, np.float64))


def test_backend_hands_out_philox_offsets():
    mg.manual_seed(5)
    assert backend.philox_seed_offset(10) == (5, 0)
    assert backend.philox_seed_offset(1) == (5, 3)  # 10 numbers took ceil(10 / 4) = 3 blocks
    assert backend.philox_seed_offset(0) == (5, 4)
    mg.manual_seed(5)
    assert backend.philox_seed_offset(4) == (5, 0)
    mg.manual_seed(-1)
    assert backend.philox_seed_offset(1) == (2**64 - 1, 0)


# -- errors: inconsistent inputs raise ValueError naming the kernel ------------------------------

BAD_CALLS = {
    "relu_backward": lambda k, P: k.relu_backward(P((3,)), P((4,))),
    "sigmoid_backward": lambda k, P: k.sigmoid_backward(P((70000,)), P((70001,))),
    "gelu_backward": lambda k, P: k.gelu_backward(P((2, 3)), P((3, 2)), "none"),
    "softmax_backward": lambda k, P: k.softmax_backward(P((2, 3)), P((2, 4)), 1),
    "cross_entropy_forward": lambda k, P: k.cross_entropy_forward(P((3, 4)), P((2,), np.int64), None, -100, 0.0),
    "cross_entropy_backward": lambda k, P: k.cross_entropy_backward(P((3, 4)), P((3,), np.int64), P((2,)),
                                                                    P((3,)), None, -100, 0.0),
    "batch_norm_backward": lambda k, P: k.batch_norm_backward(P((4, 3)), P((5, 3)), None, P((3,)), P((3,)), True),
    "layer_norm_backward": lambda k, P: k.layer_norm_backward(P((4, 3)), P((4, 2)), None, P((4,)), P((4,))),
    "col2im": lambda k, P: k.col2im(P((10, 9)), (1, 4, 4, 1), (3, 3), (1, 1), (0, 0), (1, 1), (2, 2)),
    "conv2d_forward": lambda k, P: k.conv2d_forward(P((1, 4, 4, 2)), P((17, 3)), (3, 3), (1, 1), (0, 0), (1, 1),
                                                    (2, 2)),
    "conv2d_backward": lambda k, P: k.conv2d_backward(P((5, 4)), P((1, 4, 4, 2)), P((18, 4)), None, (3, 3), (1, 1),
                                                      (0, 0), (1, 1), (2, 2), True, True),
    "maxpool2d_backward": lambda k, P: k.maxpool2d_backward(P((1, 1, 2, 2)), P((1, 1, 3, 2), np.int32),
                                                            (1, 1, 4, 4), (2, 2), (2, 2), (0, 0), (1, 1)),
    "avgpool2d_backward": lambda k, P: k.avgpool2d_backward(P((1, 2, 2, 2)), (1, 1, 4, 4), (2, 2), (2, 2),
                                                            (0, 0), (2, 2), True),
    "embedding_backward": lambda k, P: k.embedding_backward(P((3, 2)), np.array([0, 1, 11]), 11),
    "attention_forward": lambda k, P: k.attention_forward(P((2, 3, 4)), P((2, 5, 4)), P((2, 5, 3)), P((2, 3, 4)),
                                                          False, 1.0, 0.0, 0, 0),
    "attention_backward": lambda k, P: k.attention_backward(P((2, 3, 2)), P((2, 3, 4)), P((2, 5, 4)), P((2, 5, 3)),
                                                            P((2, 3, 3)), P((2, 3)), None, False, 1.0, 0.0, 0, 0),
    "rnn_cell_forward": lambda k, P: k.rnn_cell_forward(P((2, 3)), P((2, 4)), P((4, 3)), P((4, 5)), None, None,
                                                        "tanh"),
    "rnn_cell_backward": lambda k, P: k.rnn_cell_backward(P((2, 4)), P((2, 3)), P((2, 4)), P((3, 4)), P((4, 3)),
                                                          P((4, 4)), "relu"),
    "lstm_cell_forward": lambda k, P: k.lstm_cell_forward(P((2, 3)), P((2, 4)), P((2, 5)), P((16, 3)), P((16, 4)),
                                                          None, None),
    "lstm_cell_backward": lambda k, P: k.lstm_cell_backward(P((2, 2, 4)), P((2, 3)), P((2, 4)), P((2, 4)),
                                                            (P((2, 16)), P((2, 5))), P((16, 3)), P((16, 4))),
    "gru_cell_forward": lambda k, P: k.gru_cell_forward(P((2, 3)), P((2, 4)), P((12, 3)), P((12, 4)), P((12,)),
                                                        P((11,))),
    "gru_cell_backward": lambda k, P: k.gru_cell_backward(P((2, 4)), P((2, 3)), P((2, 4)), P((2, 12)), P((12, 3)),
                                                          P((12, 4))),
    "rnn_step_forward": lambda k, P: k.rnn_step_forward(P((2, 4)), P((2, 4)), "tanh", P((2, 3))),
    "rnn_step_backward": lambda k, P: k.rnn_step_backward(P((2, 4)), P((3, 4)), "relu", P((2, 4))),
    "lstm_step_forward": lambda k, P: k.lstm_step_forward(P((2, 16)), P((2, 16)), P((2, 4)), P((2, 4)), P((2, 4)),
                                                          P((2, 5))),
    "lstm_step_backward": lambda k, P: k.lstm_step_backward(P((2, 4)), P((2, 4)), P((2, 4)), P((2, 16)),
                                                            P((2, 5)), P((2, 16)), P((2, 4))),
    "gru_step_forward": lambda k, P: k.gru_step_forward(P((2, 12)), P((2, 9)), P((2, 4)), P((2, 4)), P((2, 16))),
    "gru_step_backward": lambda k, P: k.gru_step_backward(P((2, 4)), P((2, 4)), P((2, 16)), P((2, 12)),
                                                          P((2, 12)), P((2, 3))),
    "matmul": lambda k, P: k.matmul(P((2, 3)), P((4, 5))),
    "linear": lambda k, P: k.linear(P((2, 3)), P((4, 5)), None),
    "sgd_step_": lambda k, P: k.sgd_step_([P((1000,))], [P((1,))], None, 0.1, 0.0, 0.0, 0.0, False, False),
    "rmsprop_step_": lambda k, P: k.rmsprop_step_([P((3,))], [P((3,))], [P((4,))], None, None,
                                                  0.01, 0.99, 1e-8, 0.0, 0.0),
    "adagrad_step_": lambda k, P: k.adagrad_step_([P((3,))], [P((3,))], [P((4,))], 0.1, 0.0, 0.0, 1e-10, 1),
    "adadelta_step_": lambda k, P: k.adadelta_step_([P((3,))], [P((3,))], [P((3,))], [P((2,))],
                                                    1.0, 0.9, 1e-6, 0.0),
    "adam_step_": lambda k, P: k.adam_step_([P((3,))], [P((3,)).astype(np.float32)], [P((3,))], [P((3,))], None,
                                            0.1, 0.9, 0.999, 1e-8, 1, 0.0, False),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_inconsistent_inputs_raise(impl, name):
    def put(shape, dtype=np.float64):  # every array on the device under test (labels: 1)
        return impl.xp.ones(shape, dtype=dtype)

    with pytest.raises(ValueError, match=name):
        BAD_CALLS[name](impl.module, put)


def test_optimizer_kernels_name_the_bad_entry():
    x = [np.ones(3), np.ones(1000)]
    with pytest.raises(ValueError, match=r"sgd_step_: grads\[1\] has shape \(1,\) and dtype float64, but "
                                         r"params\[1\] has shape \(1000,\)"):
        C.sgd_step_(x, [np.ones(3), np.ones(1)], None, 0.1, 0.0, 0.0, 0.0, False, False)
    assert np.all(x[1] == 1)  # nothing was written
    with pytest.raises(ValueError, match=r"adam_step_: exp_avg_sqs\[0\] has shape \(3,\) and dtype float32"):
        C.adam_step_(x[:1], [np.ones(3)], [np.ones(3)], [np.ones(3, np.float32)], None,
                     0.1, 0.9, 0.999, 1e-8, 1, 0.0, False)
    with pytest.raises(ValueError, match="sgd_step_: momentum needs a list of bufs"):
        C.sgd_step_(x, x, None, 0.1, 0.0, 0.9, 0.0, False, True)
