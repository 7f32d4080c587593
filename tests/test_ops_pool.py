"""Pooling: forward and gradient against plain loop references (-inf padding, overlapping
windows, ties, NaN, dilation, ceil mode, count_include_pad), gradcheck, the numba kernels
against reference.py, PyTorch parity."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.backend import cpu_kernels as K
from minigrad.backend import reference as R

from .conftest import DEVICES
from .coverage import covers
from .strategies import relayout


def out_len(n, k, s, p, d, ceil):
    """PyTorch's output length; in ceil mode the last window must start inside the input or
    the left padding."""
    span = n + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil else span // s) + 1
    return o - 1 if ceil and (o - 1) * s >= n + p else o


def pool_reference(x, k, s, p, kind, d=(1, 1), ceil=False, include_pad=True):
    """Loops over windows; returns the output and, per output, the inputs its gradient goes to."""
    n, c, h, w = x.shape
    oh, ow = out_len(h, k[0], s[0], p[0], d[0], ceil), out_len(w, k[1], s[1], p[1], d[1], ceil)
    y = np.zeros((n, c, oh, ow))
    route = {}  # (n, c, oy, ox) -> list of (input position, weight)
    for b in range(n):
        for ch in range(c):
            for oy in range(oh):
                for ox in range(ow):
                    y0, x0 = oy * s[0] - p[0], ox * s[1] - p[1]
                    cells = [(y0 + i * d[0], x0 + j * d[1]) for i in range(k[0]) for j in range(k[1])]
                    inside = [(r, q) for r, q in cells if 0 <= r < h and 0 <= q < w]
                    if kind == "max":
                        best = None  # padding is -inf: only real cells compete; first max wins
                        for r, q in inside:
                            v = x[b, ch, r, q]
                            if best is None or v > x[b, ch][best] or (np.isnan(v) and not np.isnan(x[b, ch][best])):
                                best = (r, q)
                        y[b, ch, oy, ox] = x[b, ch][best]
                        route[b, ch, oy, ox] = [(best, 1.0)]
                    else:
                        if include_pad:  # the window clipped to the padded input
                            div = (min(y0 + k[0], h + p[0]) - y0) * (min(x0 + k[1], w + p[1]) - x0)
                        else:
                            div = len(inside)
                        y[b, ch, oy, ox] = sum(x[b, ch, r, q] for r, q in inside) / div
                        route[b, ch, oy, ox] = [(rq, 1.0 / div) for rq in inside]
    return y, route


def grad_reference(route, g, shape):
    dx = np.zeros(shape)
    for (b, ch, oy, ox), targets in route.items():
        for (r, q), wgt in targets:
            dx[b, ch, r, q] += wgt * g[b, ch, oy, ox]
    return dx


def every_window_sees_input(shape, k, s, p, d, ceil):
    h, w = shape[2:]
    for size, kk, ss, pp, dd in zip((h, w), k, s, p, d):
        o = out_len(size, kk, ss, pp, dd, ceil)
        if o < 1 or any(all(not 0 <= q * ss - pp + i * dd < size for i in range(kk)) for q in range(o)):
            return False
    return True


@st.composite
def pool_cases(draw, max_side=7, ties=False, dilation=False, options=False):
    """x, kernel, stride (or None), padding, dilation, ceil_mode, count_include_pad."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) if dilation else (1, 1)
    ceil = draw(st.booleans()) if options else False
    include = draw(st.booleans()) if options else True
    lo_h, lo_w = max(1, d[0] * (kh - 1) + 1 - 2 * ph), max(1, d[1] * (kw - 1) + 1 - 2 * pw)
    h = draw(st.integers(lo_h, max(lo_h, max_side)))  # (a dilated kernel may need more than max_side)
    w = draw(st.integers(lo_w, max(lo_w, max_side)))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    assume(every_window_sees_input((n, c, h, w), (kh, kw), stride or (kh, kw), (ph, pw), d, ceil))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if ties:  # few distinct values: many ties inside windows
        x = rng.integers(-2, 2, (n, c, h, w)).astype(np.float64)
    else:
        x = rng.standard_normal((n, c, h, w))
    x = relayout(x, draw(st.sampled_from(["C", "F", "strided"])))
    return x, (kh, kw), stride, (ph, pw), d, ceil, include


@pytest.mark.parametrize("device", DEVICES)
@given(case=pool_cases(ties=True, dilation=True, options=True))
def test_max_pool_forward_and_grad_match_loops(device, case):
    x, k, stride, p, d, ceil, _ = case
    xt = mg.tensor(x, device=device, requires_grad=True)
    y, indices = mg.max_pool2d(xt, k, stride, p, d, ceil_mode=ceil, return_indices=True)
    ref, route = pool_reference(x, k, k if stride is None else stride, p, "max", d, ceil)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    winners = np.array([r * x.shape[3] + q for (r, q), _ in (route[key][0] for key in sorted(route))])
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices.numpy().reshape(-1), winners)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(mg.tensor(g, device=device))
    np.testing.assert_allclose(xt.grad.numpy(), grad_reference(route, g, x.shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(case=pool_cases(options=True))
def test_avg_pool_forward_and_grad_match_loops(device, case):
    x, k, stride, p, _, ceil, include = case
    xt = mg.tensor(x, device=device, requires_grad=True)
    y = mg.avg_pool2d(xt, k, stride, p, ceil_mode=ceil, count_include_pad=include)
    ref, route = pool_reference(x, k, k if stride is None else stride, p, "avg", ceil=ceil, include_pad=include)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(mg.tensor(g, device=device))
    np.testing.assert_allclose(xt.grad.numpy(), grad_reference(route, g, x.shape), rtol=1e-12, atol=1e-12)


@covers("MaxPool2d")
@given(pool_cases(max_side=6, dilation=True, options=True))
def test_max_pool2d_gradcheck(case):
    x, k, stride, p, d, ceil, _ = case
    # distinct values well apart so finite differences never cross a tie
    x = x + np.arange(x.size).reshape(x.shape) * 0.05
    assert mg.gradcheck(lambda t: mg.max_pool2d(t, k, stride, p, d, ceil), mg.tensor(x, requires_grad=True))


@covers("AvgPool2d")
@given(pool_cases(max_side=6, options=True))
def test_avg_pool2d_gradcheck(case):
    x, k, stride, p, _, ceil, include = case
    assert mg.gradcheck(lambda t: mg.avg_pool2d(t, k, stride, p, ceil, include), mg.tensor(x, requires_grad=True))


def test_ceil_mode_output_sizes_follow_pytorchs_rule():
    x = mg.randn(1, 1, 5, 5)
    assert mg.max_pool2d(x, 2).shape == (1, 1, 2, 2)
    assert mg.max_pool2d(x, 2, ceil_mode=True).shape == (1, 1, 3, 3)       # a last window of 1x1
    assert mg.max_pool2d(x, 3, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)  # (5+2-3)/2 -> 2, +1
    # (6 + 2 - 2) / 4 rounds up to 2 windows, but the third would start at 8 >= 6 + 1: dropped
    assert mg.max_pool2d(mg.randn(1, 1, 6, 6), 2, 4, 1, ceil_mode=True).shape == (1, 1, 2, 2)
    y = mg.avg_pool2d(mg.ones(1, 1, 5, 5), 2, ceil_mode=True)
    np.testing.assert_array_equal(y.numpy(), np.ones((1, 1, 3, 3)))  # edge windows divide by what they cover
    y = mg.avg_pool2d(mg.ones(1, 1, 3, 3), 3, 1, 1, count_include_pad=False)
    np.testing.assert_array_equal(y.numpy(), np.ones((1, 1, 3, 3)))
    y = mg.avg_pool2d(mg.ones(1, 1, 3, 3), 3, 1, 1)  # count_include_pad: the corners see 4 of 9
    np.testing.assert_allclose(y.numpy()[0, 0], [[4 / 9, 6 / 9, 4 / 9], [6 / 9, 1, 6 / 9], [4 / 9, 6 / 9, 4 / 9]])


@covers("AdaptiveAvgPool2d")
@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, (1, 1), (2, 3), 3, (4, 1)]),
       st.sampled_from(["C", "F", "strided"]))
def test_adaptive_avg_pool2d(h, w, out, layout):
    x = relayout(np.random.default_rng(h * 7 + w).standard_normal((2, 3, h, w)), layout)
    y = mg.adaptive_avg_pool2d(mg.tensor(x), out)
    oh, ow = (out, out) if isinstance(out, int) else out
    ref = np.zeros((2, 3, oh, ow))
    for p in range(oh):
        for q in range(ow):
            h0, h1 = (p * h) // oh, -(-((p + 1) * h) // oh)
            w0, w1 = (q * w) // ow, -(-((q + 1) * w) // ow)
            ref[:, :, p, q] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda t: mg.adaptive_avg_pool2d(t, out), mg.tensor(x, requires_grad=True))


def test_max_pool2d_padding_is_minus_infinity():
    x = -np.ones((1, 1, 2, 2)) * 5.0  # all negative: zero padding would win, -inf never does
    y = mg.max_pool2d(mg.tensor(x), 3, stride=1, padding=1)
    assert np.all(y.numpy() == -5.0)


def test_max_pool2d_ties_go_to_first_and_overlaps_accumulate():
    x = mg.tensor(np.array([[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]]), requires_grad=True)
    y = mg.max_pool2d(x, 2, stride=1)  # four overlapping windows; three of them hold ties
    y.backward(mg.ones(y.shape, dtype=np.float64))
    # window (0,0): first 1 is (0,0); (0,1): (0,1); (1,0): (1,0); (1,1): (1,1)
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    z = mg.tensor(np.array([[[[3.0, 1.0], [2.0, 0.0]]]]), requires_grad=True)
    # nine 2x2 windows over the -inf-padded 4x4: the 3 wins the four that contain it, the 1
    # and the 2 the two each that contain them but not the 3, the 0 only its corner window
    mg.max_pool2d(z, 2, stride=1, padding=1).sum().backward()
    np.testing.assert_array_equal(z.grad.numpy()[0, 0], [[4, 2], [2, 1]])


@pytest.mark.parametrize("disable", ["0", "1"])
def test_max_pool2d_nan_wins_and_gets_the_gradient(disable, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", disable)
    x = np.array([[[[1.0, np.nan, 5.0, 2.0], [np.nan, 0.0, 1.0, 1.0]]]])
    xt = mg.tensor(x, requires_grad=True)
    y = mg.max_pool2d(xt, 2)
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and y.numpy()[0, 0, 0, 1] == 5.0
    y.sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy()[0, 0], [[0, 1, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_kernels_numba_equals_reference(dtype):
    if not K.use_numba():
        pytest.skip("numba not installed or disabled")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 7, 9)).astype(dtype)
    x[0, 0, 1, 1] = np.nan
    x[1, 1, :2, :2] = 1.0  # a tie
    for k, s, p, d in [((3, 2), (2, 1), (1, 1), (1, 1)), ((2, 2), (2, 2), (0, 0), (1, 1)),
                       ((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 2), (1, 1), (2, 3))]:
        out = ((7 + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1, (9 + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1)
        o1, a1 = K.maxpool2d_forward(x, k, s, p, d, out)
        o2, a2 = R.maxpool2d_forward(x, k, s, p, d, out)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(a1, a2)
        g = rng.standard_normal(o1.shape).astype(dtype)
        np.testing.assert_allclose(K.maxpool2d_backward(g, a1, x.shape, k, s, p, d),
                                   R.maxpool2d_backward(g, a2, x.shape, k, s, p, d), rtol=1e-6)
        if d != (1, 1):
            continue
        for include in (True, False):
            np.testing.assert_allclose(K.avgpool2d_forward(x, k, s, p, out, include),
                                       R.avgpool2d_forward(x, k, s, p, out, include), rtol=1e-5)
            np.testing.assert_allclose(K.avgpool2d_backward(g, x.shape, k, s, p, out, include),
                                       R.avgpool2d_backward(g, x.shape, k, s, p, out, include), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(case=pool_cases(max_side=8, options=True, dilation=True))
def test_pool_matches_torch(kind, case):
    torch = pytest.importorskip("torch")
    x, k, stride, p, d, ceil, include = case
    xt, tx = mg.tensor(x, requires_grad=True), torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    if kind == "max":
        y, idx = mg.max_pool2d(xt, k, stride, p, d, ceil_mode=ceil, return_indices=True)
        ty, tidx = torch.nn.functional.max_pool2d(tx, k, stride, p, d, ceil_mode=ceil, return_indices=True)
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    else:
        y = mg.avg_pool2d(xt, k, stride, p, ceil_mode=ceil, count_include_pad=include)
        ty = torch.nn.functional.avg_pool2d(tx, k, stride, p, ceil_mode=ceil, count_include_pad=include)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(mg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_pooling_modules_take_pytorchs_arguments():
    x = mg.randn(2, 3, 9, 8)
    y, idx = nn.MaxPool2d(3, 2, 1, 2, return_indices=True, ceil_mode=True)(x)
    ry, ridx = mg.max_pool2d(x, 3, 2, 1, 2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), ry.numpy())
    np.testing.assert_array_equal(idx.numpy(), ridx.numpy())
    np.testing.assert_array_equal(nn.AvgPool2d(3, 2, 1, True, False)(x).numpy(),
                                  mg.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False).numpy())
    assert repr(nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)) == \
        "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)"


def test_pool_errors():
    x = mg.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input .* got shape \(4, 4\)"):
        mg.max_pool2d(mg.randn(4, 4), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel of size \(5, 5\) is larger than the padded input"):
        mg.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half the kernel size"):
        mg.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"max_pool2d: stride must be >= 1"):
        mg.max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding must be >= 0"):
        mg.avg_pool2d(x, 2, padding=-1)
    with pytest.raises(TypeError, match=r"max_pool2d: kernel_size must be an int or a pair"):
        mg.max_pool2d(x, 2.0)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected a 4-D input"):
        mg.adaptive_avg_pool2d(mg.randn(3, 4), 1)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be >= 1"):
        mg.adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel of size \(3, 3\) \(dilated: \(5, 5\)\) is larger"):
        mg.max_pool2d(mg.randn(1, 1, 3, 3), 3, dilation=2)
    with pytest.raises(ValueError, match=r"max_pool2d: dilation must be >= 1"):
        mg.max_pool2d(x, 2, dilation=0)
    # padding 1 with taps 3 apart: the first window's taps are at -1 and 2, so it sees row 2;
    # with taps 4 apart (-1, 3) and 3 rows, the first window would see only padding
    assert mg.max_pool2d(mg.randn(1, 1, 3, 3), 2, 1, 1, 3).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"a window would lie entirely in the padding"):
        mg.max_pool2d(mg.randn(1, 1, 3, 5), 2, 1, 1, (4, 1))


def test_pools_are_once_differentiable():
    x = mg.randn(1, 1, 4, 4, dtype=np.float64, requires_grad=True)
    for fn in (lambda t: mg.max_pool2d(t, 2), lambda t: mg.avg_pool2d(t, 2),
               lambda t: mg.adaptive_avg_pool2d(t, 1)):
        (gx,) = mg.grad((fn(x) ** 2).sum(), [x], create_graph=True)
        with pytest.raises(RuntimeError, match="once-differentiable"):
            gx.sum().backward()


@pytest.mark.parametrize("fn", [lambda t: mg.max_pool2d(t, 2), lambda t: mg.avg_pool2d(t, 3, 1, 1),
                                lambda t: mg.adaptive_avg_pool2d(t, (2, 3))])
def test_pools_empty_batch(fn):
    x = mg.randn(0, 2, 5, 6, requires_grad=True)
    y = fn(x)
    assert y.shape[:2] == (0, 2)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 5, 6)
