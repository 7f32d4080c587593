"""Reductions (minigrad/ops/reduce.py): sum, mean, var, max, min, argmax, argmin, logsumexp,
cumsum, norm, all and any: forward against NumPy, first and second derivatives against finite
differences, ties, the gradient at 0 of norm, dtypes, errors, and PyTorch parity."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from tests.bounds import assert_within, sum_error
from tests.coverage import covers
from tests.helpers import check_grads, leaf, t
from tests.strategies import arrays, layouts, relayout, shapes


@st.composite
def axes_for(draw, ndim):
    """None, an int, or a tuple of distinct axes; negative ones mixed in."""
    if ndim == 0:
        return draw(st.sampled_from([None, 0, -1, ()]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    picked = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in picked)


@st.composite
def case(draw, max_dims=3, max_side=4, allow_empty=False, **kw):
    x = draw(arrays(shapes(0, max_dims, max_side=max_side, allow_empty=allow_empty), **kw))
    return x, draw(axes_for(x.ndim)), draw(st.booleans())


@st.composite
def distinct(draw, max_dims=3, max_side=3):
    """Values with no ties (gaps of 0.25 >> eps): max/min are differentiable there."""
    shape = draw(shapes(0, max_dims, max_side=max_side))
    n = int(np.prod(shape))
    values = np.array(draw(st.permutations(range(n)))) * 0.25 - n * 0.1
    return relayout(values.reshape(shape), draw(layouts()))


def np_axis(axis):
    return tuple(axis) if isinstance(axis, (tuple, list)) else axis


pytestmark = pytest.mark.usefixtures("on_device")  # every test on every device


# -- forward against NumPy -------------------------------------------------------------------


@given(case(allow_empty=True))
def test_sum_mean_forward(c):
    """Against NumPy's sums, which add in another order than a GPU's (or another CPU
    kernel's): within 2 gamma_n sum |x| (tests/bounds.py), n the number of terms per sum."""
    x, axis, keepdims = c
    n = int(np.prod([x.shape[a] for a in mg.ops.normalize_axis(axis, x.ndim, "sum")]))
    abs_sum = np.sum(np.abs(x), axis=np_axis(axis), keepdims=keepdims)
    assert_within(mg.sum(t(x), axis, keepdims).numpy(), np.sum(x, axis=np_axis(axis), keepdims=keepdims),
                  sum_error(abs_sum, n), "sum")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty slice is nan
        expected = np.mean(x, axis=np_axis(axis), keepdims=keepdims)
        err = sum_error(abs_sum, n + 1) / max(n, 1)  # (the division: one more rounding)
    assert_within(t(x).mean(axis, keepdims).numpy(), expected, err, "mean")


@given(case(), st.sampled_from([0, 1, 2]))
def test_var_forward(c, correction):
    x, axis, keepdims = c
    axes = mg.ops.normalize_axis(axis, x.ndim, "var")
    n = int(np.prod([x.shape[a] for a in axes]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = mg.var(t(x), axis, correction=correction, keepdims=keepdims).numpy()
        if n - correction > 0:
            expected = np.var(x, axis=np_axis(axis), ddof=correction, keepdims=keepdims)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        else:  # PyTorch: the denominator is clamped at 0 -> inf, or nan where all equal
            assert np.all(np.isinf(got) | np.isnan(got))


@given(case())
def test_max_min_forward(c):
    x, axis, keepdims = c
    np.testing.assert_array_equal(mg.amax(t(x), axis, keepdims).numpy(),
                                  np.amax(x, axis=np_axis(axis), keepdims=keepdims))
    np.testing.assert_array_equal(t(x).amin(axis, keepdims).numpy(),
                                  np.amin(x, axis=np_axis(axis), keepdims=keepdims))
    if isinstance(axis, int) and x.ndim:  # PyTorch's max(x, dim): (values, indices)
        values, indices = mg.max(t(x), axis, keepdims)
        np.testing.assert_array_equal(values.numpy(), np.amax(x, axis=axis, keepdims=keepdims))
        np.testing.assert_array_equal(indices.numpy(), np.argmax(x, axis=axis, keepdims=keepdims))
        assert t(x).min(dim=axis).indices.dtype == np.int64


@given(arrays(shapes(0, 3)), st.data())
def test_argmax_argmin_forward(x, data):
    axis = data.draw(st.none() | st.integers(-max(x.ndim, 1), max(x.ndim, 1) - 1)) if x.ndim else None
    for fn, ref in ((mg.argmax, np.argmax), (mg.argmin, np.argmin)):
        got = fn(t(x), axis)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got.numpy(), ref(x, axis=axis))
    if axis is not None:
        np.testing.assert_array_equal(t(x).argmax(dim=axis, keepdim=True).numpy(),
                                      np.argmax(x, axis=axis, keepdims=True))


@given(case(allow_empty=True, low=-50, high=50))
def test_logsumexp_forward(c):
    x, axis, keepdims = c
    with np.errstate(divide="ignore"):
        expected = np.log(np.sum(np.exp(x), axis=np_axis(axis), keepdims=keepdims))
    # atol: the naive reference rounds log(exp(1e-300)) to 0, minigrad keeps x (more exact)
    np.testing.assert_allclose(mg.logsumexp(t(x), axis, keepdims).numpy(), expected,
                               rtol=1e-12, atol=1e-13)


def test_logsumexp_is_stable():
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4 - 2.0]])
    got = mg.tensor(x).logsumexp(dim=1).numpy()
    expected = np.array([1e4 + np.log1p(np.exp(-1.0)), -1e4 + np.log(2 + np.exp(-2.0))])
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert mg.tensor([-np.inf, -np.inf]).logsumexp().item() == -np.inf
    assert mg.tensor([np.inf, 0.0]).logsumexp().item() == np.inf


def test_float32_stays_float32():
    x = mg.randn(3, 4)
    for out in (x.sum(0), x.mean(), x.var(1), x.max(0).values, x.min(), x.logsumexp(-1), x.std()):
        assert out.dtype == np.float32


def test_dim_and_keepdim_aliases():
    x = mg.tensor(np.arange(24.0).reshape(2, 3, 4))
    for name in ("sum", "mean", "var", "max", "min", "logsumexp"):
        a = getattr(mg, name)(x, axis=(0, -1), keepdims=True)
        b = getattr(x, name)(dim=(0, -1), keepdim=True)
        assert a.shape == b.shape == (1, 3, 1)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(TypeError, match="either axis or dim"):
        x.max(axis=0, dim=1)


def test_empty_dims():
    x = mg.zeros(2, 0, 3)
    assert x.sum(1).shape == (2, 3) and np.all(x.sum(1).numpy() == 0)
    assert x.sum().item() == 0
    assert x.amax(2).shape == (2, 0)  # the reduced axis is not empty: fine
    assert x.max(2).values.shape == x.max(2).indices.shape == (2, 0)
    np.testing.assert_array_equal(x.logsumexp(1).numpy(), np.full((2, 3), -np.inf))
    with pytest.raises(ValueError, match=r"max: cannot reduce over an empty axis \(shape \(2, 0, 3\)"):
        x.max(1)
    with pytest.raises(ValueError, match="min: cannot reduce over an empty axis"):
        x.min()
    with pytest.raises(ValueError, match=r"argmax: .*empty tensor \(shape \(2, 0, 3\)\)"):
        x.argmax()


def test_zero_dim():
    x = mg.tensor(2.5, dtype=mg.float64, requires_grad=True)
    for name in ("sum", "mean", "max", "min", "logsumexp"):
        out = getattr(x, name)()
        assert out.shape == () and out.item() == 2.5
        out = getattr(x, name)(dim=0, keepdim=True)
        assert (out.values if name in ("max", "min") else out).shape == ()
    assert x.argmax().item() == 0
    assert mg.gradcheck(lambda v: v.max() * v.logsumexp(), x)


def test_var_degrees_of_freedom():
    x = mg.tensor([1.0, 2.0, 4.0])
    assert x.var().item() == pytest.approx(7 / 3)
    assert x.var(correction=0).item() == pytest.approx(14 / 9)
    assert x.var(unbiased=False).item() == pytest.approx(14 / 9)
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        assert x.var(correction=3).item() == np.inf
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        assert np.isnan(mg.tensor([3.0]).var().item())
    with pytest.raises(TypeError, match="var: needs a floating-point tensor"):
        mg.tensor([1, 2]).var()


# -- ties ------------------------------------------------------------------------------------


def test_max_min_split_ties_evenly():
    x = mg.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0.5, 0.5])
    y = mg.tensor([[2.0, 2.0, 2.0, 5.0], [0.0, 1.0, 0.0, 0.0]], requires_grad=True)
    (y.amin(dim=1) * mg.tensor([6.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[2, 2, 2, 0], [1, 0, 1, 1]])


def test_max_along_a_dim_sends_the_gradient_to_the_returned_index_as_pytorch():
    y = mg.tensor([[2.0, 2.0, 2.0, 5.0], [0.0, 1.0, 0.0, 0.0]], requires_grad=True)
    values, indices = y.min(dim=1)
    assert indices.tolist() == [0, 0] and values.tolist() == [2.0, 0.0]
    (values * mg.tensor([6.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[6, 0, 0, 0], [3, 0, 0, 0]])
    a, b = mg.tensor([1.0, 5.0]), mg.tensor([3.0, 2.0])
    assert mg.max(a, b).tolist() == [3.0, 5.0] and a.min(b).tolist() == [1.0, 2.0]  # elementwise


@pytest.mark.torch
def test_max_min_with_dim_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).integers(0, 3, (4, 5, 3)).astype(np.float64)  # many ties
    for name in ("max", "min"):
        for dim in (0, 1, -1):
            for keepdim in (False, True):
                v, i = getattr(mg.tensor(x), name)(dim, keepdim)
                tv, ti = getattr(torch.tensor(x), name)(dim, keepdim)
                np.testing.assert_array_equal(v.numpy(), tv.numpy())
                assert i.shape == tuple(ti.shape) and i.dtype == np.int64
                # every returned index points at an extreme (which one of a tie: the first)
                picked = np.take_along_axis(x, i.numpy() if keepdim else np.expand_dims(i.numpy(), dim), dim)
                np.testing.assert_array_equal(picked.squeeze(dim) if not keepdim else picked, v.numpy())


# -- gradients -------------------------------------------------------------------------------


@covers("Sum", "Mean", twice=True)
@given(case(max_side=3))
def test_sum_mean_grad(c):
    x, axis, keepdims = c
    fn = lambda v: mg.sum(v * v, axis, keepdims) + mg.mean(v * v, axis=axis, keepdims=keepdims)
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


@covers("Var", twice=True)
@given(case(max_side=3), st.sampled_from([0, 1]))
def test_var_grad(c, correction):
    x, axis, keepdims = c
    axes = mg.ops.normalize_axis(axis, x.ndim, "var")
    if int(np.prod([x.shape[a] for a in axes])) <= correction:
        # too few elements for that correction (the variance is inf): use 3+ elements instead
        axis, x = None, np.concatenate([x.ravel(), [0.5, -1.25]])
    fn = lambda v: mg.var(v, axis, correction=correction, keepdims=keepdims)
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


@covers("Max", "Min", twice=True)
@given(distinct(), st.data())
def test_max_min_grad(x, data):
    axis = data.draw(axes_for(x.ndim))
    keepdims = data.draw(st.booleans())
    fn = lambda v: mg.amax(v * v, axis, keepdims) * mg.amin(v, dim=axis, keepdim=keepdims)
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))
    if isinstance(axis, int):  # the (values, indices) form: a gather, differentiable twice
        fn = lambda v: mg.max(v * v, axis, keepdims).values * mg.min(v, dim=axis, keepdim=keepdims).values
        assert mg.gradcheck(fn, t(x))
        assert mg.gradgradcheck(fn, t(x))


@covers("LogSumExp", twice=True)
@given(case(max_side=3))
def test_logsumexp_grad(c):
    x, axis, keepdims = c
    fn = lambda v: mg.logsumexp(v, axis, keepdims)
    assert mg.gradcheck(fn, t(x))
    assert mg.gradgradcheck(fn, t(x))


def test_logsumexp_grad_is_softmax_at_large_logits():
    x = mg.tensor([[1e4, 1e4 - np.log(3.0)]], dtype=mg.float64, requires_grad=True)
    x.logsumexp(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.75, 0.25]], rtol=1e-12)


def test_argmax_is_not_differentiable():
    x = mg.randn(3, 4, requires_grad=True)
    out = x.argmax(1)
    assert out.dtype == np.int64 and not out.requires_grad


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sum", "mean", "var", "max", "min", "logsumexp", "argmax", "argmin"])
def test_axis_out_of_range(name):
    x = mg.randn(2, 3)
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range for a tensor with 2 dimensions"):
        getattr(x, name)(2)
    with pytest.raises(ValueError, match=rf"{name}: axis -3 is out of range"):
        getattr(mg, name)(x, dim=-3)


def test_repeated_axis():
    with pytest.raises(ValueError, match=r"sum: axis \(0, -2\) repeats a dimension"):
        mg.randn(2, 3).sum((0, -2))


def test_argmax_keepdims_without_axis():
    x = mg.tensor([[1.0, 5.0], [7.0, 2.0]])
    out = x.argmax(keepdims=True)
    assert out.shape == (1, 1) and out.item() == 2
    with pytest.raises(TypeError, match="argmin: axis must be an int or None"):
        x.argmin((0, 1))


def test_std_sum_dtype_and_integer_means():
    x = mg.tensor([1.0, 2.0, 4.0])
    assert x.std().item() == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert x.std(correction=0).item() == pytest.approx(np.std([1, 2, 4]))
    assert mg.gradcheck(lambda v: v.std(), mg.tensor([1.0, 2.0, 4.0], dtype=np.float64, requires_grad=True))
    i = mg.tensor([1, 2, 3], dtype=np.int32)
    assert i.sum().dtype == np.int64 and (i > 1).sum().dtype == np.int64  # as PyTorch
    assert (i > 1).sum().item() == 2
    assert i.sum(dtype=np.float64).dtype == np.float64
    assert x.sum(dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="mean: needs a floating-point tensor"):
        i.mean()
    assert i.mean(dtype=np.float32).item() == 2.0


def test_size_is_pytorchs_method():
    x = mg.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(0) == 2 and x.size(-1) == 4 and x.numel() == 24
    with pytest.raises(IndexError, match=r"size: dim 3 is out of range for a tensor of shape \(2, 3, 4\)"):
        x.size(3)


# -- cumsum -------------------------------------------------------------------------------------


@covers("CumSum", twice=True)
@given(arrays(shapes(min_dims=1, max_dims=3)), st.data())
def test_cumsum_matches_numpy_and_its_gradient_is_the_reversed_cumsum(a, data):
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    x = leaf(a)
    np.testing.assert_allclose(x.cumsum(dim).numpy(), np.cumsum(a, axis=dim), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mg.cumsum(x, dim=dim).numpy(), np.cumsum(a, axis=dim), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(0).standard_normal(a.shape)
    x.cumsum(dim).backward(t(g))
    expected = np.flip(np.cumsum(np.flip(g, dim), axis=dim), dim)  # sum_{i >= j} g_i
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
    check_grads(lambda t: mg.cumsum(t, dim) * t, a)  # a product: the second derivative is not 0


def test_cumsum_dtypes_0d_and_errors():
    assert mg.cumsum(mg.tensor([1, 2, 3], dtype=np.int32), 0).dtype == np.int64  # as PyTorch
    assert mg.cumsum(mg.tensor([True, True, False]), 0).tolist() == [1, 2, 2]
    assert mg.cumsum(mg.tensor([1, 2]), 0, dtype=np.float64).dtype == np.float64
    assert mg.cumsum(mg.tensor(2.5), 0).item() == 2.5 and mg.cumsum(mg.tensor(2.5), 0).shape == ()
    with pytest.raises(TypeError, match="cumsum: missing the dim"):
        mg.cumsum(mg.ones(3))
    with pytest.raises(ValueError, match="cumsum: axis 2 is out of range"):
        mg.cumsum(mg.ones(3, 4), 2)
    with pytest.raises(TypeError, match="cumsum: dim must be an int"):
        mg.cumsum(mg.ones(3, 4), (0, 1))


# -- norm ---------------------------------------------------------------------------------------

P_VALUES = [1, 2, 3, 1.5, 0.5, math.inf, -math.inf, 0, "fro"]


def _np_norm(a, p, axis, keepdims):
    if p == "fro":
        p = 2
    b = np.abs(a)
    if p == math.inf:
        return b.max(axis=axis, keepdims=keepdims)
    if p == -math.inf:
        return b.min(axis=axis, keepdims=keepdims)
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=keepdims).astype(a.dtype)
    return (b ** p).sum(axis=axis, keepdims=keepdims) ** (1 / p)


@covers("Norm", twice=True)
@given(arrays(shapes(min_dims=1, max_dims=3), min_abs=0.2), st.sampled_from(P_VALUES), st.data())
def test_norm_matches_numpy_and_finite_differences(a, p, data):
    axis = data.draw(st.sampled_from([None] + list(range(-a.ndim, a.ndim)) + [tuple(range(a.ndim))]))
    keepdim = data.draw(st.booleans())
    x = leaf(a)
    out = mg.norm(x, p, dim=axis, keepdim=keepdim)
    np.testing.assert_allclose(out.numpy(), _np_norm(a, p, axis, keepdim), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.norm(p, axis, keepdim).numpy(), out.numpy())
    if p in (math.inf, -math.inf):
        # a tie for the largest |x| (drawn values repeat) is a kink: no derivative to check there
        b = np.abs(a)
        extreme = b.max(axis=axis, keepdims=True) if p > 0 else b.min(axis=axis, keepdims=True)
        if ((b == extreme).sum(axis=axis) > 1).any():
            return
    if p == 0:
        assert not out.requires_grad  # a count has no gradient (PyTorch's is 0 too)
        return
    check_grads(lambda t: mg.norm(t, p, dim=axis, keepdim=keepdim), a)


def test_norm_gradient_at_zero_is_zero_as_in_pytorch():
    for p in (2, 3, 1.5, 0.5, 1):
        x = mg.zeros(4, dtype=np.float64, requires_grad=True)
        mg.norm(x, p).backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros(4))
    x = mg.tensor([0.0, 1.0, -2.0], dtype=np.float64, requires_grad=True)
    mg.norm(x, 0.5).backward()  # a zero element of a non-zero vector: 0 too (|0|^(p-1) is not used)
    assert x.grad.numpy()[0] == 0.0 and np.isfinite(x.grad.numpy()).all()
    x = mg.zeros(2, 3, dtype=np.float64, requires_grad=True)
    (g,) = mg.grad(mg.norm(x, dim=1).sum(), x, create_graph=True)
    assert np.array_equal(g.numpy(), np.zeros((2, 3)))
    assert not np.isnan(mg.grad(g.sum(), x, allow_unused=True)[0].numpy()).any()


def test_norm_float32_errors_and_fro():
    x = mg.randn(3, 4)
    assert x.norm().dtype == np.float32
    np.testing.assert_allclose(x.norm().item(), np.sqrt((x.numpy().astype(np.float64) ** 2).sum()), rtol=1e-6)
    assert x.norm(dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="norm: p='nuc' is not supported"):
        x.norm("nuc")
    with pytest.raises(ValueError, match="norm: p must be a number"):
        x.norm(float("nan"))
    with pytest.raises(TypeError, match="norm: expected a floating-point tensor, got dtype int64"):
        mg.norm(mg.tensor([1, 2]))
    assert callable(mg.norm)  # the function, not the module that once leaked through


@pytest.mark.torch
@pytest.mark.parametrize("p", [2, 1, 3, 0.5, -1.5, math.inf, -math.inf, 0, "fro"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), ((0, 2), True), (-1, True)])
def test_norm_matches_torch(p, dim, keepdim):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(3).standard_normal((3, 4, 5))
    a[0, 1, 2] = 0.0
    x, t = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ours, theirs = mg.norm(x, p, dim, keepdim), torch.norm(t, p, dim, keepdim)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)
    if p != 0:
        g = np.random.default_rng(4).standard_normal(ours.shape)
        ours.backward(mg.tensor(g))
        theirs.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_normalize_makes_unit_vectors_and_guards_zero():
    F = mg.nn.functional
    a = np.array([[3.0, 4.0], [0.0, 0.0]])
    x = leaf(a)
    y = F.normalize(x, dim=1)
    np.testing.assert_allclose(y.numpy(), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-15)  # 0 / max(0, eps) = 0
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    assert mg.gradgradcheck(lambda t: F.normalize(t, p=3, dim=0), leaf([[1.0, -2.0], [0.5, 3.0]]))
# -- all / any ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 1)])
def test_all_and_any_match_numpy(dim):
    a = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, 5.0]])
    x = t(a)
    for keepdim in (False, True):
        for name in ("all", "any"):
            got = getattr(x, name)(dim, keepdim)
            assert got.dtype == np.bool_ and not got.requires_grad
            np.testing.assert_array_equal(got.numpy(), getattr(np, name)(a != 0, axis=dim, keepdims=keepdim))
            np.testing.assert_array_equal(getattr(mg, name)(x, dim=dim, keepdim=keepdim).numpy(), got.numpy())
    assert mg.all(mg.zeros(0)).item() is True and mg.any(mg.zeros(0)).item() is False
    assert bool((x > -1).all()) and not bool((x > 4.5).all())
