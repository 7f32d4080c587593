"""sort, argsort, topk: stable orders (ties keep their positions, ascending and
descending), NaN placement, the gradient of a permutation (first and second derivatives
against finite differences), errors, and PyTorch parity."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from tests.coverage import covers
from tests.helpers import leaf, t
from tests.strategies import relayout

pytestmark = pytest.mark.usefixtures("on_device")


@st.composite
def distinct_arrays(draw, min_dims=1, max_dims=3):
    """Values at least 0.01 apart (so the order survives gradcheck's 1e-6 steps), any layout."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=4))
    n = int(np.prod(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.permutation(n).reshape(shape) * 0.01 + rng.uniform(-1, 1)
    return relayout(a, draw(st.sampled_from(["C", "F", "strided"])))


@covers("Gather", twice=True)
@given(distinct_arrays(), st.data())
def test_sort_values_indices_and_gradient(a, data):
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    descending = data.draw(st.booleans())
    x = leaf(a)
    values, indices = mg.sort(x, dim, descending)
    order = np.argsort(-a if descending else a, axis=dim, kind="stable")
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(a, order, dim))
    assert indices.dtype == np.int64 and not indices.requires_grad
    np.testing.assert_array_equal(x.argsort(dim, descending).numpy(), order)
    # the gradient of a permutation: each g goes back to where its value came from
    g = np.random.default_rng(0).standard_normal(a.shape)
    values.backward(t(g))
    expected = np.zeros_like(a)
    np.put_along_axis(expected, order, g, dim)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    assert mg.gradcheck(lambda t: mg.sort(t, dim, descending).values ** 2, x)
    assert mg.gradgradcheck(lambda t: mg.sort(t, dim, descending).values ** 2, x)


@covers("Gather", twice=True)
@given(distinct_arrays(), st.data())
def test_topk_picks_the_k_largest_or_smallest(a, data):
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    k = data.draw(st.integers(0, a.shape[dim]))
    largest = data.draw(st.booleans())
    x = leaf(a)
    values, indices = x.topk(k, dim, largest)
    order = np.argsort(-a if largest else a, axis=dim, kind="stable")
    expected = np.take(order, np.arange(k), axis=dim)
    np.testing.assert_array_equal(indices.numpy(), expected)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(a, expected, dim))
    fn = lambda t: mg.topk(t, k, dim, largest).values * t.sum()  # noqa: E731 (not linear)
    assert mg.gradcheck(fn, x) and mg.gradgradcheck(fn, x)


def test_ties_keep_their_order_and_nan_is_largest():
    a = np.array([2.0, 1.0, 2.0, np.nan, 1.0, 2.0])
    x = t(a)
    assert x.argsort().tolist() == [1, 4, 0, 2, 5, 3]                   # NaN last ascending
    assert x.argsort(descending=True).tolist() == [3, 0, 2, 5, 1, 4]    # first descending, ties in order
    assert x.topk(3).indices.tolist() == [3, 0, 2]
    assert mg.sort(t(np.array([3, 1, 2]))).values.tolist() == [1, 2, 3]  # integers too
    assert mg.sort(t(np.array([True, False, True]))).indices.tolist() == [1, 0, 2]
    assert mg.sort(t(np.array([3, 1, 2], dtype=np.uint8)), descending=True).values.tolist() == [3, 2, 1]


def test_tied_values_share_nothing_each_copy_gets_its_own_gradient():
    x = leaf([1.0, 1.0, 0.0])
    v, i = mg.sort(x, descending=True)
    (v * t(np.array([10.0, 20.0, 30.0]))).sum().backward()
    assert i.tolist() == [0, 1, 2] and x.grad.tolist() == [10.0, 20.0, 30.0]


def test_sort_and_topk_errors_and_0d():
    x = t(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"topk: k must be an int in \[0, 3\]"):
        x.topk(4)
    with pytest.raises(ValueError, match="sort: axis 2 is out of range"):
        mg.sort(x, 2)
    v, i = mg.sort(t(np.array(5.0)))
    assert v.shape == () and v.item() == 5.0 and i.item() == 0
    assert mg.topk(t(np.array(5.0)), 1).values.item() == 5.0


@pytest.mark.torch
@pytest.mark.parametrize("descending", [False, True])
def test_sort_and_topk_match_torch(descending):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, (3, 7)).astype(np.float64)  # many ties: the stable order is PyTorch's
    a[1, 2] = np.nan
    x, t = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ours, theirs = mg.sort(x, 1, descending), torch.sort(t, stable=True, dim=1, descending=descending)
    np.testing.assert_array_equal(ours.values.numpy(), theirs.values.detach().numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    np.testing.assert_array_equal(mg.argsort(x, 0, descending).numpy(), torch.argsort(t, dim=0, descending=descending, stable=True).numpy())
    g = rng.standard_normal(a.shape)
    ours.values.backward(mg.tensor(g))
    theirs.values.backward(torch.tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    b = rng.permutation(21).reshape(3, 7).astype(np.float64)  # (topk's order among ties is unspecified)
    for k, largest in [(3, True), (1, False), (7, True)]:
        ours, theirs = mg.topk(mg.tensor(b), k, 1, largest), torch.topk(torch.tensor(b), k, 1, largest)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
