"""The numba kernels of backend/cpu_kernels.py beyond the contract (tests/test_kernels_contract.py
holds every kernel to reference.py on small inputs): the float32 math they are built from
(exp, expm1, the row maximum), their accuracy against float64 at the extremes of the range,
odd sizes, non-contiguous and channels-last inputs, the parallel variants, and results that do
not depend on the number of threads.

Error bounds are stated in units of u = 2^-24 (float32's unit roundoff: a correctly rounded
result is within u of the exact value, relative).  They follow from the operations each
kernel performs, not from what one CPU measured: FMA contraction or its absence, AVX2 or
AVX-512 change the last bit, never the bound.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.backend import cpu_kernels as C
from minigrad.backend import reference as R
from tests.strategies import relayout

U = 2.0 ** -24                # float32 unit roundoff
TINY = 2.0 ** -149            # float32's smallest subnormal (the absolute resolution below 2^-126)
numba_only = pytest.mark.skipif(not mg.backend.numba_enabled() or C.numba is None,
                                reason="numba kernels off (MINIGRAD_DISABLE_NUMBA)")


def _rel_err(got, exact):
    """|got - exact| / |exact| (0 where both are 0), got float32, exact float64."""
    got = got.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(got == exact, 0.0, np.abs(got - exact) / np.abs(exact))


@pytest.fixture
def parallel_kernels(monkeypatch):
    """Every launch takes the parallel (prange) variant, however small (when numba has threads)."""
    monkeypatch.setattr(C, "_PARALLEL_WORK", 0)


# -- the float32 building blocks -----------------------------------------------------------------


@numba_only
def test_exp_f32_within_two_ulps_over_the_whole_range():
    """exp(t) = 2^k p(r): the Taylor remainder is below 0.07 u, k ln 2 is subtracted in two exact
    parts, the 7 multiply-adds of p round each (their errors shrink by |r| <= 0.35 per step, at
    most 1.6 u in all) and the final product by 2^k is exact (or rounds once into a subnormal):
    at most 2 ulps (4 u relative) for normal results, a unit of 2^-149 for subnormal ones."""
    t = np.concatenate([-np.geomspace(1e-30, 103.9, 30001), np.geomspace(1e-30, 88.7, 30001), [0.0]])
    t = t.astype(np.float32)
    got = np.array([C._exp_f32(v) for v in t], dtype=np.float32)
    exact = np.exp(t.astype(np.float64))
    normal = exact >= 2.0 ** -126
    assert _rel_err(got[normal], exact[normal]).max() <= 4 * U
    assert np.abs(got[~normal] - exact[~normal]).max() <= TINY
    specials = np.array([0.0, -0.0, -np.inf, np.inf, np.nan, -104.5, -1e30, 88.8, 1e30], dtype=np.float32)
    got = [C._exp_f32(v) for v in specials]
    assert got[:2] == [1.0, 1.0] and got[2] == 0.0 and got[3] == np.inf and math.isnan(got[4])
    assert got[5:7] == [0.0, 0.0] and got[7:] == [np.inf, np.inf]
    assert C._exp_f32(np.float32(-103.0)) > 0  # the subnormal range is not flushed to zero


@numba_only
def test_expm1_f32_is_accurate_near_zero_and_saturates_at_minus_one():
    """exp(t) - 1 = 2^k (exp(r) - 1) + (2^k - 1): for |t| < 0.35 (k = 0) the polynomial alone,
    so tiny t keep their relative accuracy (no 1 - 1 cancellation); elsewhere |result| >= 0.29
    and the two terms add without cancellation.  Within 2 ulps (4 u)."""
    t = np.concatenate([-np.geomspace(1e-38, 88, 40001), [0.0, -0.0]]).astype(np.float32)
    got = np.array([C._expm1_nonpositive_f32(v) for v in t], dtype=np.float32)
    exact = np.expm1(t.astype(np.float64))
    assert _rel_err(got, exact).max() <= 4 * U
    assert C._expm1_nonpositive_f32(np.float32(-1e30)) == -1.0
    assert C._expm1_nonpositive_f32(np.float32(-np.inf)) == -1.0
    assert math.isnan(C._expm1_nonpositive_f32(np.float32(np.nan)))


@numba_only
def test_row_max_skips_nan_and_handles_infinities():
    """maxnum skips NaN (the kernels let NaN through their sums instead)."""
    row = np.array([1.0, np.nan, 7.0, -np.inf, 3.0], dtype=np.float32)
    assert C._row_max(row) == 7.0
    assert C._row_max(np.array([np.nan, np.nan], dtype=np.float32)) != C._row_max(np.array([1.0], np.float32))
    assert C._row_max(np.array([-np.inf, -np.inf], dtype=np.float32)) == -np.inf
    assert C._row_max(np.array([2.0, np.inf], dtype=np.float32)) == np.inf
    x = np.random.default_rng(0).standard_normal(1037).astype(np.float32)
    assert C._row_max(x) == x.max()


# -- sigmoid and tanh ----------------------------------------------------------------------------

EXTREMES = np.array([0.0, -0.0, 1e-40, -1e-40, 1e-20, -1e-20, 1e-7, -1e-7, 0.3, -0.3, 1, -1, 9, -9, 17, -17,
                     40, -40, 87, -87, 88.5, -88.5, 95, -95, 103, -103, 104.5, -104.5, 1e4, -1e4, 3e38, -3e38,
                     np.inf, -np.inf, np.nan], dtype=np.float32)


def _check_within_10u(got, x, exact):
    """got (float32, x's shape) within 10 u of the float64 ``exact`` (plus 2^-149 where the result
    is subnormal), NaN exactly where x is NaN and the sign of every result x's or exact's."""
    assert got.dtype == np.float32 and got.shape == x.shape
    finite = ~np.isnan(exact)
    err = np.abs(got.astype(np.float64)[finite] - exact[finite])
    assert np.all(err <= 10 * U * np.abs(exact[finite]) + TINY)
    assert np.array_equal(np.signbit(got[finite]), np.signbit(exact[finite]))
    assert np.array_equal(np.isnan(got), np.isnan(x))
    return got


def _check_sigmoid(x):
    """Against float64: e = exp(-|x|) within 4 u, 1 + e and the division round once each (u),
    and e's error reaches 1 + e scaled by e / (1 + e) <= 1: at most 6 u for x >= 0 and 10 u for
    x < 0 (where e also divides), plus 2^-149 absolute where the result is subnormal."""
    return _check_within_10u(C.sigmoid(x), x, R.sigmoid(x.astype(np.float64)))


def _check_tanh(x):
    """Against float64: m = expm1(-2|x|) within 4 u, 2 + m rounds once (u) and receives m's
    error scaled by |m| / (2 + m) <= 1, the division rounds once: at most 10 u; the sign is x's
    (tanh(-0) = -0, which np.tanh gives too)."""
    return _check_within_10u(C.tanh(x), x, np.tanh(x.astype(np.float64)))


@pytest.mark.parametrize("check", [_check_sigmoid, _check_tanh])
def test_sigmoid_tanh_at_the_extremes_of_float32(check):
    check(EXTREMES)
    dense = np.linspace(-110, 110, 200_001, dtype=np.float32)  # every regime, and the parallel variant
    check(dense)


@pytest.mark.parametrize("check", [_check_sigmoid, _check_tanh])
@pytest.mark.parametrize("size", [1, 15, 16, 17, 65535, 65536, 70001])
def test_sigmoid_tanh_odd_sizes(check, size, parallel_kernels):
    check(np.random.default_rng(size).standard_normal(size).astype(np.float32) * 20)


@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7),
                    elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
       layout=st.sampled_from(["C", "F", "strided", "channels_last"]))
def test_sigmoid_tanh_any_values_shapes_and_layouts(x, layout):
    """Any float32 values (NaN, inf, subnormals, the largest finite), any shape and memory
    layout: the bounds above, the output in the input's layout when it is channels-last."""
    if layout == "channels_last":
        if x.ndim != 4:
            return
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    else:
        x = relayout(x, layout)
    for check in (_check_sigmoid, _check_tanh):
        out = check(x)
        if layout == "channels_last" and mg.backend.numba_enabled():
            assert R.is_channels_last(out) or out.size <= 1


@pytest.mark.parametrize("name, derivative", [("sigmoid", lambda y: y * (1 - y)), ("tanh", lambda y: 1 - y * y)])
def test_sigmoid_tanh_backward_float32(name, derivative, parallel_kernels):
    """g f'(y) in one pass: three roundings (each product and 1 - y, or y y and 1 - y y; with
    a fused multiply-add one fewer) relative to their operands: |error| <= 3 u |g| (|y| + 1)^2."""
    rng = np.random.default_rng(3)
    y = getattr(R, name)(rng.standard_normal(70001).astype(np.float32) * 4)
    g = rng.standard_normal(70001).astype(np.float32)
    got = getattr(C, f"{name}_backward")(g, y)
    exact = g.astype(np.float64) * derivative(y.astype(np.float64))
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= 3 * U * np.abs(g) * (np.abs(y) + 1.0) ** 2)


# -- the softmax family and cross-entropy --------------------------------------------------------


def _logit_rows(rng, rows, cols, scale):
    return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4, 1e20, 3e38])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (3, 1025), (70, 1001)])
def test_softmax_rows_against_float64(shape, scale, parallel_kernels):
    """With d = m - x >= 0 (m the row maximum): softmax p = exp(x - m) / s.  x - m rounds once
    (u d absolute, which exp turns into u d relative), exp adds 4 u; s (summed in float64)
    inherits the p-weighted mean of those errors, D = sum p d u + 4 u; 1/s and the product
    round once each: |p - exact| <= (u d + u D + 10 u) exact + 2^-149.
    log_softmax = (x - m) - log s: x - m and log s round once each (u d, u log s), their
    difference once (u (d + log s)), log s inherits s's error (4 u + u D):
    |error| <= 2 u (d + log s) + u D + 5 u.  Results beyond float32's range are -inf."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(-1, 1, shape) * scale).astype(np.float32)
    x64 = x.astype(np.float64)
    d = x64.max(axis=1, keepdims=True) - x64
    with np.errstate(over="ignore", invalid="ignore"):
        p = C.softmax(x, 1)
        exact = R.softmax(x64, 1)
        big_d = (exact * d).sum(axis=1, keepdims=True)
        assert np.all(np.abs(p - exact) <= (U * d + U * big_d + 10 * U) * exact + TINY)
        logp = C.log_softmax(x, 1)
        exact_log = R.log_softmax(x64, 1)
    log_s = -(exact_log + d)
    finite = np.abs(exact_log) <= np.finfo(np.float32).max
    bound = 2 * U * (d + log_s) + U * big_d + 5 * U
    assert np.all(np.abs(logp - exact_log)[finite] <= bound[finite])
    assert np.all(logp[~finite] <= -np.finfo(np.float32).max)  # -inf, or rounded to the largest float


def test_softmax_family_nan_inf_and_all_minus_inf_rows():
    """A row holding NaN gives NaN everywhere; a row of all -inf gives NaN (PyTorch's result);
    +inf in a row gives NaN (inf - inf); -inf entries alone get probability 0."""
    x = np.array([[1.0, np.nan, 2.0], [-np.inf, -np.inf, -np.inf], [0.0, np.inf, 1.0], [0.0, -np.inf, 0.0]],
                 dtype=np.float32)
    with np.errstate(invalid="ignore"):
        for fn in (C.softmax, C.log_softmax, R.softmax, R.log_softmax):
            out = fn(x, 1)
            assert np.all(np.isnan(out[:3]))
        np.testing.assert_allclose(C.softmax(x, 1)[3], [0.5, 0.0, 0.5], rtol=1e-7)
        assert C.log_softmax(x, 1)[3, 1] == -np.inf


def test_softmax_backward_kernels_against_float64(parallel_kernels):
    """y (g - sum g y) and g - exp(y) sum g: a float64 sum, then two roundings per element."""
    rng = np.random.default_rng(1)
    x = _logit_rows(rng, 70, 1001, 5.0)
    g = rng.standard_normal(x.shape).astype(np.float32)
    for kernel, fn, scale in ((C.softmax_backward, R.softmax, lambda g, y: np.abs(y) * (np.abs(g) + 1)),
                              (C.log_softmax_backward, R.log_softmax,
                               lambda g, y: np.abs(g) + np.exp(y) * np.abs(g).sum(1, keepdims=True))):
        y = fn(x, 1)
        got = kernel(g, y, 1)
        ref = getattr(R, kernel.__name__)(g.astype(np.float64), y.astype(np.float64), 1)
        assert got.dtype == np.float32
        assert np.all(np.abs(got - ref) <= 8 * U * scale(g.astype(np.float64), y.astype(np.float64)) + TINY)


@pytest.mark.parametrize("layout", ["F", "strided"])
def test_softmax_other_axes_and_layouts_use_the_reference(layout):
    x = relayout(np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32), layout)
    for axis in (0, 1):
        np.testing.assert_allclose(C.softmax(x, axis), R.softmax(x, axis), rtol=1e-6)
        np.testing.assert_allclose(C.log_softmax(x, axis), R.log_softmax(x, axis), rtol=1e-6, atol=1e-6)


@numba_only  # (reference.py's version: tests/test_numerics.py)
@pytest.mark.parametrize("magnitude", [1e4, 1e20, 3e38])
def test_cross_entropy_gradient_from_the_row_maximum(magnitude):
    """Logits [-a, a, a], target 0: p = (0, 1/2, 1/2) exactly, so the gradient row is
    (-1, 1/2, 1/2) / N.  exp(x - lse) with lse rounded at a's spacing got 0.16663 (for a = 1e4
    and N = 3) instead of 1/6: the kernel uses exp(x - max) / sum."""
    x = np.array([[-magnitude, magnitude, magnitude]] * 3, dtype=np.float32)
    t = np.zeros(3, dtype=np.int64)
    losses, lse = C.cross_entropy_forward(x, t, None, -100, 0.0)
    exact = 2.0 * magnitude + math.log(2)  # log(1 + 1) - (x_0 - m)
    if exact > float(np.finfo(np.float32).max):
        assert np.all(np.isinf(losses))
    else:
        assert np.all(np.abs(losses.astype(np.float64) - exact) <= 2 * U * exact)
    dx = C.cross_entropy_backward(x, t, lse, np.full(3, 1 / 3, dtype=np.float32), None, -100, 0.0)
    np.testing.assert_allclose(dx, np.array([[-1, 0.5, 0.5]] * 3) / 3, rtol=4 * U, atol=0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_wide_rows_against_float64(smoothing, weighted, parallel_kernels):
    """Rows of 1000 classes (the loop runs at every width now), ignored and bad labels."""
    rng = np.random.default_rng(4)
    n, c = 70, 1000
    x = _logit_rows(rng, n, c, 8.0)
    t = rng.integers(0, c, n)
    t[3], t[5] = -100, c + 2
    w = rng.uniform(0.5, 2.0, c).astype(np.float32) if weighted else None
    grow = rng.uniform(0.5, 1.5, n).astype(np.float32)
    with np.errstate(invalid="ignore"):
        losses, lse = C.cross_entropy_forward(x, t, w, -100, smoothing)
        dx = C.cross_entropy_backward(x, t, lse, grow, w, -100, smoothing)
        w64 = None if w is None else w.astype(np.float64)
        ref_losses, ref_lse = R.cross_entropy_forward(x.astype(np.float64), t, w64, -100, smoothing)
        ref_dx = R.cross_entropy_backward(x.astype(np.float64), t, ref_lse, grow.astype(np.float64), w64, -100,
                                          smoothing)
    np.testing.assert_array_equal(np.isnan(losses), np.isnan(ref_losses))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-5)  # x - m rounding: u |x - m| ~ 4e-6
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-6)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(ref_dx))
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-7)
    assert np.all(dx[3] == 0)


# -- batch norm and layer norm -------------------------------------------------------------------


def _bn_input(rng, shape, layout, offset):
    x = (rng.standard_normal(shape) * 2 + offset).astype(np.float32)
    return relayout(x, "C") if layout == "C" else np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@numba_only  # (reference.py computes the statistics in x's dtype)
@pytest.mark.parametrize("layout", ["C", "channels_last"])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_batch_norm_against_float64_far_from_zero_means(layout, offset, parallel_kernels):
    """The numba kernels' statistics from shifted float64 sums stay accurate for a mean 500 standard deviations
    from 0 (E[x^2] - E[x]^2 would lose every digit in float32); the output keeps x's layout."""
    rng = np.random.default_rng(5)
    x = _bn_input(rng, (6, 5, 9, 11), layout, offset)
    w, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    y, mean, invstd = C.batch_norm_forward(x, w, b, 1e-5)
    x64 = x.astype(np.float64)
    ref_y, ref_mean, ref_invstd = R.batch_norm_forward(x64, w.astype(np.float64), b.astype(np.float64), 1e-5)
    assert y.strides == x.strides
    np.testing.assert_allclose(mean, ref_mean, rtol=2 * U)
    np.testing.assert_allclose(invstd, ref_invstd, rtol=8 * U)
    # x - mean rounds at |x|'s spacing (offset 1000: 6e-5 absolute), times invstd ~ 0.5
    np.testing.assert_allclose(y, ref_y, rtol=0, atol=4 * U * (offset + 10) * float(np.max(np.abs(w))) + 1e-6)
    g = _bn_input(rng, x.shape, layout, 0.0)
    for training in (True, False):
        dx, dw, db = C.batch_norm_backward(g, x, w, mean, invstd, training)
        ref = R.batch_norm_backward(g.astype(np.float64), x64, w.astype(np.float64), mean.astype(np.float64),
                                    invstd.astype(np.float64), training)
        assert dx.strides == x.strides and dx.dtype == np.float32
        np.testing.assert_allclose(dx, ref[0], rtol=0, atol=1e-4 * np.abs(ref[0]).max())
        np.testing.assert_allclose(dw, ref[1], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(db, ref[2], rtol=1e-5, atol=1e-4)


@numba_only
def test_batch_and_layer_norm_do_not_depend_on_the_thread_count(monkeypatch):
    """Partial sums over fixed chunks, added in a fixed order: serial and parallel variants
    give the same bits."""
    rng = np.random.default_rng(6)
    x_planes = rng.standard_normal((4, 3, 40, 50)).astype(np.float32)
    x_cols = _bn_input(rng, (4, 3, 40, 50), "channels_last", 2.0)
    rows = rng.standard_normal((700, 33)).astype(np.float32)
    w3, w33 = rng.standard_normal(3).astype(np.float32), rng.standard_normal(33).astype(np.float32)

    def run():
        out = []
        for x in (x_planes, x_cols):
            y, mean, invstd = C.batch_norm_forward(x, w3, None, 1e-5)
            out += [y, mean, invstd, *C.batch_norm_backward(x, x, w3, mean, invstd, True)]
        y, mean, rstd = C.layer_norm_forward(rows, w33, None, 1e-5)
        out += [y, mean, rstd, *C.layer_norm_backward(rows, rows, w33, mean, rstd)]
        out += [C.softmax(rows, 1), C.cross_entropy_backward(rows, np.arange(700) % 33, np.zeros(700, np.float32),
                                                             np.ones(700, np.float32), None, -100, 0.0)]
        return out

    serial = run()
    monkeypatch.setattr(C, "_PARALLEL_WORK", 0)
    for a, b in zip(serial, run()):
        np.testing.assert_array_equal(a, b)


@numba_only
def test_pooling_and_unrolling_do_not_depend_on_the_thread_count(monkeypatch):
    """Max and average pooling (both layouts, both window paths), im2col (one and several
    channels) and col2im: each task writes its own outputs, so serial and parallel variants
    give the same bits."""
    rng = np.random.default_rng(8)
    planes = rng.standard_normal((3, 5, 9, 8)).astype(np.float32)
    planes[0, 0, 0, :2] = np.nan
    cl = R.channels_last(planes).transpose(0, 3, 1, 2)  # the same values, channels-last in memory
    square = ((2, 2), (2, 2), (0, 0), (1, 1), (4, 4))
    odd = ((3, 2), (2, 1), (1, 1), (1, 2), (5, 8))
    conv = ((3, 3), (2, 1), (1, 0), (1, 1), (5, 6))

    def run():
        out = []
        for x in (planes, cl):
            for window in (square, odd):
                y, arg = C.maxpool2d_forward(x, *window)
                dx = C.maxpool2d_backward(np.ones_like(y) * 0.5 + y, arg, x.shape, *window[:4])
                out += [y, arg, dx]
        y = C.avgpool2d_forward(planes, (3, 2), (2, 1), (1, 1), (5, 9), False)
        out += [y, C.avgpool2d_backward(y, planes.shape, (3, 2), (2, 1), (1, 1), (5, 9), True)]
        for x in (R.channels_last(planes), R.channels_last(planes[:, :1])):
            cols = C.im2col(np.ascontiguousarray(x), *conv, ones_column=True)
            out += [cols, C.col2im(np.ascontiguousarray(cols[:, :-1]), x.shape, *conv)]
        return out

    serial = run()
    monkeypatch.setattr(C, "_PARALLEL_WORK", 0)
    for a, b in zip(serial, run(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (70, 1001), (300, 128)])
def test_layer_norm_against_float64(shape, parallel_kernels):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 3 + 5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    w, b = rng.standard_normal(shape[1]).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)
    y, mean, rstd = C.layer_norm_forward(x, w, b, 1e-5)
    ref = R.layer_norm_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1e-5)
    for got, exact in zip((y, mean, rstd), ref):
        np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)
    dx, dw, db = C.layer_norm_backward(g, x, w, mean, rstd)
    ref = R.layer_norm_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                mean.astype(np.float64), rstd.astype(np.float64))
    for got, exact in zip((dx, dw, db), ref):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(exact).max()))


@numba_only
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_numba_layer_norm_kernels_match_reference(monkeypatch, parallel, dtype, affine):
    monkeypatch.setattr(C, "_PARALLEL_WORK", 0 if parallel else 1 << 62)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((150, 37)) * 3 + 2).astype(dtype)  # 150 rows: three partial-sum chunks
    w, b = (rng.standard_normal(37).astype(dtype) for _ in range(2)) if affine else (None, None)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    got, ref = C.layer_norm_forward(x, w, b, 1e-5), R.layer_norm_forward(x, w, b, 1e-5)
    for a, r in zip(got, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, r, **tol)
    g = rng.standard_normal(x.shape).astype(dtype)
    for a, r in zip(C.layer_norm_backward(g, x, w, *ref[1:]), R.layer_norm_backward(g, x, w, *ref[1:])):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, r, **tol)


# -- dropout and the optimizer updates -----------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 4, 5, 70001])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_mask_is_the_reference_bit_for_bit(size, p, parallel_kernels):
    """The vectorised Philox and the integer threshold give exactly the reference's mask."""
    for dtype in (np.float32, np.float64):
        np.testing.assert_array_equal(C.dropout_mask((size,), p, 2**40 + 5, 77, dtype),
                                      R.dropout_mask((size,), p, 2**40 + 5, 77, dtype))


def test_optimizer_updates_parallel_variants_match_the_reference(parallel_kernels):
    """SGD, Adam and RMSprop: the same operations in the same order as the reference, per element."""
    rng = np.random.default_rng(8)

    def lists(k):
        return [[rng.standard_normal(70001).astype(np.float32) for _ in range(2)] for _ in range(k)]

    params, grads, m, v = lists(4)
    v = [a * a for a in v]
    ours = [[a.copy() for a in lst] for lst in (params, grads, m, v)]
    R.adam_step_(params, grads, m, v, None, 1e-2, 0.9, 0.999, 1e-8, 3, 0.01, True)
    C.adam_step_(*ours, None, 1e-2, 0.9, 0.999, 1e-8, 3, 0.01, True)
    for a, b in zip(params + m + v, ours[0] + ours[2] + ours[3]):
        np.testing.assert_allclose(b, a, rtol=4 * U, atol=1e-7)
    params, grads, bufs = lists(3)
    ours = [[a.copy() for a in lst] for lst in (params, grads, bufs)]
    R.sgd_step_(params, grads, bufs, 0.1, 0.01, 0.9, 0.1, True, False)
    C.sgd_step_(*ours, 0.1, 0.01, 0.9, 0.1, True, False)
    for a, b in zip(params + bufs, ours[0] + ours[2]):
        np.testing.assert_allclose(b, a, rtol=4 * U, atol=1e-7)
    for centered, momentum in ((False, 0.0), (True, 0.9)):
        params, grads, avgs, bufs = lists(4)
        squares = [0.1 + a * a for a in lists(1)[0]]
        avgs = [0.05 * a for a in avgs]
        ref_lists = [params, grads, squares, avgs if centered else None, bufs if momentum else None]
        ours = [None if lst is None else [a.copy() for a in lst] for lst in ref_lists]
        R.rmsprop_step_(*ref_lists, 0.01, 0.9, 1e-8, 0.01, momentum)
        C.rmsprop_step_(*ours, 0.01, 0.9, 1e-8, 0.01, momentum)
        for ref_list, our_list in zip(ref_lists, ours):
            for a, b in zip(ref_list or [], our_list or []):
                np.testing.assert_allclose(b, a, rtol=4 * U, atol=1e-7)
