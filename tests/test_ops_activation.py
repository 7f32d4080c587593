"""Activations: relu, leaky_relu, sigmoid, tanh, gelu, silu, softmax, log_softmax
(minigrad/ops/activation.py), GELUDerivative (gelu' as an op), and nn.GELU/SiLU."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.ops.activation import GELUDerivative
from tests.bounds import LIBM_ULPS, assert_within
from tests.conftest import DEVICES
from tests.coverage import covers
from tests.helpers import t
from tests.strategies import arrays, shapes


np_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np_erf(x / math.sqrt(2)))


@st.composite
def with_axis(draw, max_dims=3, max_side=4, allow_empty=False, **kw):
    x = draw(arrays(shapes(0, max_dims, max_side=max_side, allow_empty=allow_empty), **kw))
    n = max(x.ndim, 1)
    return x, draw(st.integers(-n, n - 1))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -- forward ---------------------------------------------------------------------------------


U64 = 2.0 ** -53  # float64's unit roundoff
LIBM = 2 * LIBM_ULPS * U64  # two libm-grade implementations (exp, tanh, erf) differ by up to 8 ulp


@pytest.mark.parametrize("device", DEVICES)
@given(x=arrays(shapes(0, 3, allow_empty=True), low=-30, high=30))
def test_elementwise_forward(device, x):
    """Against NumPy and math.erf, which need not be the libm the device uses (NumPy's SIMD
    exp, glibc's, CUDA's): the bounds allow two libm-grade results (8 ulp apart) plus the
    formula's roundings, relative to the magnitude of its terms."""
    v = t(x, device=device)
    np.testing.assert_array_equal(mg.relu(v).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(mg.leaky_relu(v, 0.2).numpy(), np.where(x > 0, x, 0.2 * x), rtol=U64)  # one product
    # sigmoid, silu: exp and up to three roundings on each side (no cancellation)
    np.testing.assert_allclose(v.sigmoid().numpy(), 1 / (1 + np.exp(-x)), rtol=LIBM + 6 * U64)
    np.testing.assert_allclose(v.tanh().numpy(), np.tanh(x), rtol=LIBM)
    np.testing.assert_allclose(mg.silu(v).numpy(), x / (1 + np.exp(-x)), rtol=LIBM + 8 * U64)
    # gelu = 0.5 x (1 + erf(x / sqrt 2)): 1 + erf cancels for x << 0, so the error is
    # relative to 0.5 |x| (1 + |erf|) ~ |x|, not to gelu: an erf 8 ulp off moves gelu by
    # 0.5 |x| LIBM; the tanh form likewise, with u = sqrt(2/pi) (x + 0.044715 x^3) rounded
    # (relative 4 U64) moving tanh by (1 - t^2) |u| 4 U64
    assert_within(mg.gelu(v).numpy(), np_gelu(x), np.abs(x) * (LIBM + 6 * U64))
    t_ = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
    u_ = np.abs(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
    assert_within(mg.gelu(v, approximate="tanh").numpy(), np_gelu(x, "tanh"),
                  np.abs(x) * (LIBM + 6 * U64 + (1 - t_ * t_) * u_ * 8 * U64))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"])
def test_elementwise_backward_values(device, name):
    """Each backward is g * f'(x), f' written out here from the textbook formula."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 7)) * 3
    g = rng.standard_normal((5, 7))
    s = 1 / (1 + np.exp(-x))
    phi = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    derivative = {
        "relu": (x > 0) * 1.0,
        "leaky_relu": np.where(x > 0, 1.0, 0.1),
        "sigmoid": s * (1 - s),
        "tanh": 1 - np.tanh(x) ** 2,
        "gelu": 0.5 * (1 + np_erf(x / math.sqrt(2))) + x * phi,
        "gelu_tanh": 0.5 * (1 + np.tanh(u)) + 0.5 * x * (1 - np.tanh(u) ** 2) * math.sqrt(2 / math.pi)
        * (1 + 3 * 0.044715 * x ** 2),
        "silu": s * (1 + x * (1 - s)),
    }[name]
    fn = {"relu": mg.relu, "leaky_relu": lambda v: mg.leaky_relu(v, 0.1), "sigmoid": mg.sigmoid,
          "tanh": mg.tanh, "gelu": mg.gelu, "gelu_tanh": lambda v: mg.gelu(v, approximate="tanh"),
          "silu": mg.silu}[name]
    v = t(x, requires_grad=True, device=device)
    fn(v).backward(t(g, device=device))
    np.testing.assert_allclose(v.grad.numpy(), g * derivative, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_silu_extremes_and_nan(dtype):
    x = mg.tensor([-1e4, -40.0, 0.0, 40.0, 1e4, np.nan], dtype=dtype, requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        y = mg.gelu(x)
        z = mg.gelu(x, approximate="tanh")
        w = mg.silu(x)
    for out in (y, z, w):
        assert out.dtype == dtype
        np.testing.assert_allclose(out.numpy()[:5], [0.0, 0.0, 0.0, 40.0, 1e4], atol=1e-12)
        assert np.isnan(out.numpy()[5])  # NaN is never masked
    (y + w).sum().backward()
    np.testing.assert_allclose(x.grad.numpy()[:5], [0.0, 0.0, 1.0, 2.0, 2.0], atol=1e-12)
    assert np.isnan(x.grad.numpy()[5])


def _fit_erf():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "tools" / "fit_erf.py"
    spec = importlib.util.spec_from_file_location("fit_erf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _erf_fit_relative_error(p, q, points=200_001):
    """The largest relative error of x P(s) / Q(s) against erf(x) on [0, XMAX], in float64."""
    fit_erf = _fit_erf()
    x = np.linspace(0, fit_erf.XMAX, points)[1:]
    s = x * x / fit_erf.XMAX ** 2
    approx = x * np.polyval(np.asarray(p)[::-1], s) / np.polyval(np.asarray(q)[::-1], s)
    return np.max(np.abs(approx / np_erf(x) - 1))


def test_float32_erf_coefficients_meet_their_error_bound():
    """cpu_kernels' float32 GELU uses a fitted rational erf (tools/fit_erf.py).  What matters
    is its error, not the coefficients' last digits (a refit on another machine's LAPACK
    differs by ~3e-11 relative and is as good), so this checks the bound that makes the
    float32 result within one ulp:

    the float64 evaluation x P(s) / Q(s) has relative error r < 2^-25 against erf, so
    rounding it to float32 (0.5 ulp) adds at most r / 2^-24 < 0.5 ulp (a float32 ulp of v is
    at least |v| 2^-24): the result is within one ulp.  Beyond XMAX = 3.9 the kernel returns
    +-1, off by erfc(3.9) = 3.5e-8 < 2^-24 = one ulp of values just below 1.  The reference
    erf is libm's float64 erf (accurate to ~1e-16, far below these bounds).  The script's
    own fit is held to the same bound, so it keeps reproducing coefficients this good."""
    from minigrad.backend import cpu_kernels

    fit_erf = _fit_erf()
    assert _erf_fit_relative_error(cpu_kernels._ERF_P, cpu_kernels._ERF_Q) < 2.0 ** -25
    assert _erf_fit_relative_error(*fit_erf.fit()) < 2.0 ** -25
    assert math.erfc(fit_erf.XMAX) < 2.0 ** -24
    abs_error, ulps = fit_erf.max_error(np.asarray(cpu_kernels._ERF_P), np.asarray(cpu_kernels._ERF_Q),
                                        points=400_001)
    assert ulps <= 1.0 and abs_error < 2.0 ** -24


@pytest.mark.skipif(not mg.backend.numba_enabled(), reason="numba kernels off (MINIGRAD_DISABLE_NUMBA)")
def test_polynomial_exp_of_the_gelu_backward():
    """exp(t), t <= 0, as (Taylor polynomial of exp(t / 256))^256: relative error below 2e-8
    down to t = -104, then exactly 0 (so -inf * exp(-inf) stays NaN), which is what float32
    rounds exp(t) to there; above, float32's subnormals (exp(-103) = 1.4e-45) are kept."""
    from minigrad.backend import cpu_kernels

    t = np.concatenate([-np.geomspace(1e-12, 104, 4001), [0.0]])
    got = np.array([cpu_kernels._exp_nonpositive(v) for v in t])
    assert (np.abs(got - np.exp(t)) / np.exp(t)).max() < 2e-8
    assert cpu_kernels._exp_nonpositive(-104.5) == 0.0 and cpu_kernels._exp_nonpositive(-np.inf) == 0.0
    assert np.float32(np.exp(-104.0)) == 0 and np.float32(cpu_kernels._exp_nonpositive(-103.0)) == np.float32(np.exp(-103.0)) > 0


@pytest.mark.skipif(not mg.backend.numba_enabled(), reason="numba kernels off (MINIGRAD_DISABLE_NUMBA)")
def test_float32_gelu_kernel_is_as_accurate_as_float32_allows():
    """The numba float32 GELU and its backward (rational erf, polynomial exp) against the
    float64 ones (math.erf, math.exp): absolute error within one float32 ulp of max(|exact|, 1).  That is the
    accuracy float32 allows for 0.5 x (1 + erf): in the negative tail 1 + erf cancels, so
    tiny outputs (gelu(-6) = -6e-9) carry absolute, not relative, error.  PyTorch 2.13's
    float32 GELU is within 2.2 ulps by this measure; the previous kernel (math.erf in
    float64 per element) within 0.5."""
    from minigrad.backend import cpu_kernels

    x = np.concatenate([np.linspace(-8, 8, 200_001), [-np.inf, np.inf, np.nan]]).astype(np.float32)
    g = np.ones_like(x)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    for got, exact in ((cpu_kernels.gelu(x), cpu_kernels.gelu(x64)),
                       (cpu_kernels.gelu_backward(g, x), cpu_kernels.gelu_backward(g64, x64))):
        assert got.dtype == np.float32
        finite = np.isfinite(exact)
        scale = np.spacing(np.maximum(np.abs(exact[finite]), 1).astype(np.float32))
        assert (np.abs(got[finite] - exact[finite]) / scale).max() <= 1
        np.testing.assert_array_equal(got[~finite], exact[~finite])  # inf and NaN as in float64


@given(with_axis(allow_empty=True, low=-30, high=30))
def test_softmax_forward(c):
    x, axis = c
    if x.ndim == 0:
        axis = None
    expected = np_softmax(x, axis) if x.size else x
    np.testing.assert_allclose(mg.softmax(t(x), axis if axis is not None else -1).numpy(), expected, rtol=1e-13)
    np.testing.assert_allclose(t(x).log_softmax(dim=axis if axis is not None else 0).numpy(),
                               np.log(expected) if x.size else x, rtol=1e-12, atol=1e-13)


def test_sigmoid_large_inputs():
    x = mg.tensor([-1000.0, -745.0, -40.0, 0.0, 40.0, 1000.0], dtype=mg.float64)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = x.sigmoid().numpy()
    assert np.all(np.isfinite(s))
    # exp(-745) is a subnormal (~1 ulp of the subnormal range, 2^-1074): there a libm errs
    # absolutely, by a few of those ulps; elsewhere relatively, within LIBM plus 3 roundings
    np.testing.assert_allclose(s, [0.0, np.exp(-745.0), np.exp(-40.0) / (1 + np.exp(-40.0)), 0.5, 1.0, 1.0],
                               rtol=LIBM + 6 * U64, atol=LIBM_ULPS * 2.0 ** -1074)
    assert s[2] > 0  # tiny values keep their relative precision instead of rounding to 0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s32 = mg.tensor([-100.0, 100.0]).sigmoid()
    # exp(-100) = 3.7e-44 is subnormal in float32 (spacing 2^-149 = 1.4e-45): a few of those,
    # or 0 from the CUDA C, which CuPy compiles with -ftz=true (float32 results below 2^-126
    # flush to zero on a GPU, and so in its emulator: docs/emulator.md)
    assert s32.dtype == np.float32
    flushes = mg.backend.kernels(s32.array).__name__.endswith(".cuda")
    expected = 0.0 if flushes else pytest.approx(np.exp(-100.0), abs=LIBM_ULPS * 2.0 ** -149)
    assert s32.tolist() == [expected, 1.0]


@pytest.mark.parametrize("dtype", [mg.float32, mg.float64])
def test_softmax_stable_at_1e4(dtype):
    x = mg.tensor([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4 - 1], [-1e4, -1e4, -1e4]], dtype=dtype)
    s, ls = x.softmax(1).numpy(), x.log_softmax(1).numpy()
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(ls))
    e = np.exp(-1.0)
    expected_log = np.array([[0.0, -1e4, -2e4],
                             [-np.log(2 + e)] * 2 + [-1 - np.log(2 + e)],
                             [-np.log(3.0)] * 3])
    rtol = 1e-6 if dtype == mg.float32 else 1e-14
    np.testing.assert_allclose(ls, expected_log, rtol=rtol)
    np.testing.assert_allclose(s, np.exp(expected_log), rtol=rtol, atol=1e-30)
    # the gradients too
    xg = mg.tensor(x.numpy(), requires_grad=True)
    (xg.log_softmax(1) * mg.tensor(np.arange(9.0).reshape(3, 3), dtype=dtype)).sum().backward()
    assert np.all(np.isfinite(xg.grad.numpy()))


def test_relu_gradient_at_zero_is_zero():
    x = mg.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])
    y = mg.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    mg.leaky_relu(y, 0.1).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0.1, 0.1, 1.0])


def test_zero_dim():
    x = mg.tensor(0.5, dtype=mg.float64, requires_grad=True)
    assert x.softmax().item() == 1.0 and x.log_softmax().item() == 0.0
    fn = lambda v: v.relu() * v.sigmoid() + mg.leaky_relu(-v) + v.tanh() + v.softmax() + v.log_softmax()
    assert mg.gradcheck(fn, x)


# -- gradients -------------------------------------------------------------------------------

KINK = dict(kinks=(0.0,), margin=0.05)  # keep relu / leaky_relu away from their kink


@covers("ReLU", "LeakyReLU", twice=True)
@given(arrays(shapes(0, 3, max_side=3), **KINK), st.floats(0.01, 0.5))
def test_relu_grad(x, slope):
    fn = lambda v: mg.relu(v) * v + mg.leaky_relu(v, negative_slope=slope) * v
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


@pytest.mark.parametrize("numba_on", ["0", "1"])
def test_relu_kernels_large_arrays_match_numpy(monkeypatch, numba_on):
    """Large contiguous arrays take the one-pass numba kernels; they give NumPy's numbers,
    NaN and -0.0 included, forward and backward."""
    monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", "0" if numba_on == "1" else "1")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((130, 700)).astype(np.float32)  # 91,000 elements: above the threshold
    x[0, :4] = [np.nan, -0.0, 0.0, -np.inf]
    xt = mg.tensor(x, requires_grad=True)
    y = mg.relu(xt)
    np.testing.assert_array_equal(y.numpy(), np.maximum(x, 0))
    g = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(mg.tensor(g))
    np.testing.assert_array_equal(xt.grad.numpy(), np.where(x > 0, g, 0))
    assert xt.grad.dtype == np.float32


@covers("Sigmoid", "Tanh", twice=True)
@given(arrays(shapes(0, 3, max_side=3), low=-6, high=6))
def test_sigmoid_tanh_grad(x):
    fn = lambda v: (mg.sigmoid(v), mg.tanh(v))
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


@covers("GELU", "SiLU", twice=True)
@given(arrays(shapes(0, 3, max_side=3), low=-5, high=5), st.sampled_from(["none", "tanh"]))
def test_gelu_silu_grad(x, approximate):
    fn = lambda v: (mg.gelu(v, approximate=approximate), mg.silu(v))
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


@covers("GELUDerivative", twice=True)
@given(arrays(shapes(0, 2, max_side=3), low=-4, high=4), st.sampled_from(["none", "tanh"]))
def test_gelu_derivative_op_grad(x, approximate):
    """gelu' is an op (its forward is the gelu_backward kernel with g = 1, since erf is a
    kernel); its backward gelu'' is written with ops, so it differentiates again: third
    derivatives of gelu."""
    fn = lambda v: GELUDerivative.apply(v, approximate=approximate)  # noqa: E731
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


def test_third_derivatives_of_sigmoid_and_gelu():
    """d3/dx3 through the backward ops, against the closed forms:
    d3 sigmoid = s (1 - s) (1 - 6 s + 6 s^2),   d3 gelu = d/dx [phi (2 - x^2)] = phi (x^3 - 4 x)."""
    x0 = np.array([-1.3, 0.2, 0.9])
    s = 1 / (1 + np.exp(-x0))
    phi = np.exp(-x0 ** 2 / 2) / math.sqrt(2 * math.pi)
    x = mg.tensor(x0, requires_grad=True)
    for fn, expected in [(mg.sigmoid, s * (1 - s) * (1 - 6 * s + 6 * s * s)), (mg.gelu, phi * (x0 ** 3 - 4 * x0))]:
        (d1,) = mg.grad(fn(x).sum(), x, create_graph=True)
        (d2,) = mg.grad(d1.sum(), x, create_graph=True)
        (d3,) = mg.grad(d2.sum(), x)
        np.testing.assert_allclose(d3.numpy(), expected, rtol=1e-12)


@covers("Softmax", "LogSoftmax", twice=True)
@given(with_axis(max_side=3))
def test_softmax_grad(c):
    x, axis = c
    fn = lambda v: (mg.softmax(v, axis), mg.log_softmax(v, dim=axis))
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


def test_softmax_backward_formula():
    """dL/dx = s * (g - sum(g * s)) (the Jacobian-vector product), checked with numbers."""
    x = mg.tensor([1.0, 2.0, 0.5], dtype=mg.float64, requires_grad=True)
    g = np.array([0.3, -1.0, 2.0])
    x.softmax().backward(mg.tensor(g))
    s = np_softmax(x.numpy(), 0)
    jacobian = np.diag(s) - np.outer(s, s)
    np.testing.assert_allclose(x.grad.numpy(), jacobian @ g, rtol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), s * g - s * np.sum(g * s), rtol=1e-14)


# -- errors ----------------------------------------------------------------------------------


def test_gelu_errors_and_layers():
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'erf'"):
        mg.gelu(mg.randn(3), approximate="erf")
    with pytest.raises(ValueError, match="GELU: approximate"):
        nn.GELU("fast")
    x = mg.randn(3, 4)
    np.testing.assert_array_equal(nn.GELU()(x).numpy(), mg.gelu(x).numpy())
    np.testing.assert_array_equal(nn.GELU("tanh")(x).numpy(), mg.gelu(x, approximate="tanh").numpy())
    np.testing.assert_array_equal(nn.SiLU()(x).numpy(), mg.silu(x).numpy())
    assert repr(nn.GELU()) == "GELU()" and repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.SiLU()) == "SiLU()"
    from minigrad.nn import functional as F
    assert F.gelu is mg.gelu  # (F.silu adds PyTorch's inplace flag around mg.silu)
    np.testing.assert_array_equal(F.silu(x).numpy(), mg.silu(x).numpy())


def test_axis_errors():
    x = mg.randn(2, 3)
    with pytest.raises(ValueError, match="softmax: axis 2 is out of range for a tensor with 2 dimensions"):
        x.softmax(2)
    with pytest.raises(ValueError, match="log_softmax: axis -3 is out of range"):
        mg.log_softmax(x, dim=-3)
    with pytest.raises(TypeError, match=r"softmax: axis must be an int, got \(0, 1\)"):
        x.softmax((0, 1))
    with pytest.raises(TypeError, match="either axis or dim"):
        x.softmax(0, dim=1)


# -- parity with PyTorch ---------------------------------------------------------------------


def test_torch_parity():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5)) * 5
    g = rng.standard_normal((3, 4, 5))
    cases = [
        ("softmax", lambda v: mg.softmax(v, 1), lambda v: torch.softmax(v, 1), g),
        ("log_softmax", lambda v: mg.log_softmax(v, -1), lambda v: torch.log_softmax(v, -1), g),
        ("logsumexp", lambda v: mg.logsumexp(v, (0, 2)), lambda v: torch.logsumexp(v, (0, 2)), g[0, :, 0]),
        ("var", lambda v: mg.var(v, dim=1, keepdim=True), lambda v: torch.var(v, dim=1, keepdim=True), g[:, :1]),
        ("var0", lambda v: mg.var(v, correction=0), lambda v: torch.var(v, correction=0), np.array(0.7)),
        ("sigmoid", mg.sigmoid, torch.sigmoid, g),
        ("tanh", mg.tanh, torch.tanh, g),
        ("leaky_relu", lambda v: mg.leaky_relu(v, 0.3), lambda v: torch.nn.functional.leaky_relu(v, 0.3), g),
        ("gelu", mg.gelu, torch.nn.functional.gelu, g),
        ("gelu_tanh", lambda v: mg.gelu(v, approximate="tanh"),
         lambda v: torch.nn.functional.gelu(v, approximate="tanh"), g),
        ("silu", mg.silu, torch.nn.functional.silu, g),
    ]
    for name, ours, theirs, upstream in cases:
        a = mg.tensor(x, requires_grad=True)
        b = torch.tensor(x, requires_grad=True)
        za, zb = ours(a), theirs(b)
        np.testing.assert_allclose(za.numpy(), zb.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=name)
        za.backward(mg.tensor(upstream))
        zb.backward(torch.tensor(upstream))
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "gelu_tanh", "silu", "softmax", "log_softmax"])
def test_torch_parity_second_derivatives(name):
    """Hessian-vector products through the backward ops match PyTorch's double backward."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    ours, theirs = {
        "sigmoid": (mg.sigmoid, torch.sigmoid), "tanh": (mg.tanh, torch.tanh),
        "gelu": (mg.gelu, F.gelu),
        "gelu_tanh": (lambda v: mg.gelu(v, approximate="tanh"), lambda v: F.gelu(v, approximate="tanh")),
        "silu": (mg.silu, F.silu),
        "softmax": (lambda v: mg.softmax(v, 1), lambda v: torch.softmax(v, 1)),
        "log_softmax": (lambda v: mg.log_softmax(v, 1), lambda v: torch.log_softmax(v, 1)),
    }[name]
    rng = np.random.default_rng(11)
    x, g, v = (rng.standard_normal((3, 5)) * 2 for _ in range(3))
    a = mg.tensor(x, requires_grad=True)
    ga = mg.tensor(g, requires_grad=True)
    (da,) = mg.grad(ours(a), a, ga, create_graph=True)
    ha = mg.grad(da, [a, ga], mg.tensor(v))
    b = torch.tensor(x, requires_grad=True)
    gb = torch.tensor(g, requires_grad=True)
    (db,) = torch.autograd.grad(theirs(b), b, gb, create_graph=True)
    hb = torch.autograd.grad(db, [b, gb], torch.tensor(v))
    for mine, ref in zip(ha, hb):
        np.testing.assert_allclose(mine.numpy(), ref.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
