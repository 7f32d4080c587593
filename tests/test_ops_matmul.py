"""matmul (NumPy's @ with all rank combinations) and the fused linear (minigrad/ops/matmul.py)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from tests.bounds import assert_within, sum_error
from tests.conftest import DEVICES
from tests.coverage import covers
from tests.helpers import t
from tests.strategies import arrays

# (a shape, b shape) for every rank combination NumPy's matmul allows, with broadcast batches
RANK_CASES = [
    ((3,), (3,)),              # vector . vector -> scalar
    ((3,), (3, 2)),            # vector @ matrix
    ((2, 3), (3,)),            # matrix @ vector
    ((2, 3), (3, 4)),          # matrix @ matrix
    ((2, 2, 3), (3, 4)),       # batch @ matrix (broadcast)
    ((2, 3), (2, 3, 4)),       # matrix @ batch
    ((2, 1, 2, 3), (3, 3, 2)),  # broadcast batch dims (2, 1) x (3,) -> (2, 3)
    ((3,), (2, 3, 2)),         # vector @ batch
    ((2, 2, 3), (3,)),         # batch @ vector
    ((1, 3), (3, 1)),          # size-1 dims
    ((2, 0), (0, 3)),          # empty inner dimension: zeros
    ((0, 3), (3, 2)),          # empty rows
]


@st.composite
def matmul_pair(draw):
    """Two operands for one of the rank cases, with sides resized and random layouts."""
    sa, sb = draw(st.sampled_from(RANK_CASES[:-2]))
    m, n, p = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # new sizes: inner n, rows m, columns p (batch sizes stay as listed)
    sa = sa[:-2] + (m, n) if len(sa) >= 2 else (n,)
    sb = sb[:-2] + (n, p) if len(sb) >= 2 else (n,)
    return draw(arrays(sa)), draw(arrays(sb))


def np_sum_to(g, shape):
    """Sum a broadcast gradient back down to ``shape`` (plain NumPy reference)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1), keepdims=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sa,sb", RANK_CASES)
def test_matmul_rank_combinations(sa, sb, device):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    ta, tb = mg.tensor(a, requires_grad=True, device=device), mg.tensor(b, requires_grad=True, device=device)
    out = ta @ tb
    expected = a @ b
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(expected.shape)
    out.backward(mg.tensor(g, device=device))
    assert ta.grad.shape == sa and tb.grad.shape == sb
    # reference in plain NumPy: promote vectors to matrices, g @ b^T and a^T @ g, sum batches
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g[..., None] if b.ndim == 1 else g
    g2 = g2[..., None, :] if a.ndim == 1 else g2
    ga = np_sum_to(g2 @ np.swapaxes(b2, -1, -2), a2.shape)
    gb = np_sum_to(np.swapaxes(a2, -1, -2) @ g2, b2.shape)
    np.testing.assert_allclose(ta.grad.numpy(), ga.reshape(sa), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad.numpy(), gb.reshape(sb), rtol=1e-12, atol=1e-12)


@given(matmul_pair())
def test_matmul_forward(pair):
    a, b = pair
    np.testing.assert_allclose(mg.matmul(t(a), t(b)).numpy(), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t(a).matmul(t(b)).numpy(), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((a @ t(b)).numpy(), a @ b, rtol=1e-12, atol=1e-12)  # __rmatmul__


@covers("MatMul", twice=True)
@given(matmul_pair())
def test_matmul_grad(pair):
    a, b = pair
    assert mg.gradcheck(mg.matmul, t(a), t(b))
    assert mg.gradgradcheck(mg.matmul, t(a), t(b))


def test_matmul_grad_one_side():
    a = mg.randn(2, 3, dtype=mg.float64)
    b = mg.randn(3, dtype=mg.float64, requires_grad=True)
    (a @ b).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), a.numpy().sum(0))
    assert a.grad is None


@pytest.mark.parametrize("sa,sb,msg", [
    ((2, 3), (4, 5), r"matmul: shapes \(2, 3\) and \(4, 5\) cannot be multiplied: the last dimension "
                     r"of the first \(3\) must equal the second-to-last dimension of the second \(4\)"),
    ((3,), (4,), r"matmul: shapes \(3,\) and \(4,\) .* must equal the only dimension of the second \(4\)"),
    ((2, 2, 3), (3, 3, 1), r"matmul: shapes \(2, 2, 3\) and \(3, 3, 1\) .*batch dimensions \(2,\) and \(3,\)"),
    ((), (3,), r"matmul: shapes \(\) and \(3,\) cannot be multiplied: both operands need at least one"),
])
def test_matmul_errors(sa, sb, msg):
    with pytest.raises(ValueError, match=msg):
        mg.zeros(*sa) @ mg.zeros(*sb)


# -- linear ----------------------------------------------------------------------------------


@st.composite
def linear_case(draw, bias=None):
    lead = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = draw(arrays(lead + (n_in,)))
    w = draw(arrays((n_out, n_in)))
    use_bias = draw(st.booleans()) if bias is None else bias
    return x, w, (draw(arrays((n_out,))) if use_bias else None)


@pytest.mark.parametrize("device", DEVICES)
@given(c=linear_case())
def test_linear_forward(device, c):
    x, w, b = c
    expected = x @ w.T + (0 if b is None else b)
    out = mg.linear(mg.tensor(x, device=device), mg.tensor(w, device=device),
                    None if b is None else mg.tensor(b, device=device))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@covers("Linear", twice=True)
@given(linear_case())
def test_linear_grad(c):
    x, w, b = c
    args = (t(x), t(w)) if b is None else (t(x), t(w), t(b))
    assert mg.gradcheck(mg.linear, *args)
    assert mg.gradgradcheck(mg.linear, *args)


def test_linear_matches_matmul_graph():
    rng = np.random.default_rng(1)
    x = mg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = mg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = mg.tensor(rng.standard_normal(2), requires_grad=True)
    g = mg.tensor(rng.standard_normal((4, 2)))
    mg.linear(x, w, b).backward(g)
    grads = [v.grad.numpy() for v in (x, w, b)]
    for v in (x, w, b):
        v.grad = None
    (x @ w.T + b).backward(g)
    # the same products, summed by other GEMM calls (g^T x against (x^T g)^T): within
    # 2 gamma_4 of the sums of |terms| (tests/bounds.py)
    xa, wa, ga = (np.abs(v.numpy()) for v in (x, w, g))
    bounds = (sum_error(ga @ wa, 2), sum_error(ga.T @ xa, 4), sum_error(ga.sum(0), 4))
    for v, expected, err in zip((x, w, b), grads, bounds):
        assert_within(v.grad.numpy(), expected, err)


def test_linear_skips_grad_of_data():
    x = mg.randn(5, 3)  # data: no grad wanted
    w = mg.randn(2, 3, requires_grad=True)
    mg.linear(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (2, 3)
    np.testing.assert_allclose(w.grad.numpy(), np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-5)


def test_linear_float32_and_empty_batch():
    x, w, b = mg.randn(0, 3), mg.randn(2, 3), mg.randn(2)
    out = mg.linear(x, w, b)
    assert out.shape == (0, 2) and out.dtype == np.float32
    assert mg.linear(mg.randn(2, 4, 3), w).shape == (2, 4, 2)


def test_linear_errors():
    with pytest.raises(ValueError, match=r"linear: input of shape \(4, 3\), weight of shape \(2, 5\) do not fit"):
        mg.linear(mg.randn(4, 3), mg.randn(2, 5))
    with pytest.raises(ValueError, match=r"linear: .*weight of shape \(2, 3\) and bias of shape \(3,\)"):
        mg.linear(mg.randn(4, 3), mg.randn(2, 3), mg.randn(3))
    with pytest.raises(ValueError, match=r"linear: input of shape \(4, 3\), weight of shape \(3,\)"):
        mg.linear(mg.randn(4, 3), mg.randn(3))
