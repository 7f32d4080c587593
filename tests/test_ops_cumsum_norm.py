"""cumsum, norm, all/any (issue 16): forward against NumPy, first and second derivatives against
finite differences, the gradient at 0 of norm, dtypes, errors, and PyTorch parity."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from tests.strategies import arrays, shapes

from .coverage import covers
from tests.helpers import check_grads, leaf, t

pytestmark = pytest.mark.usefixtures("on_device")  # every test on every device


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
