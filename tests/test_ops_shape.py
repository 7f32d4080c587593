"""Shape ops: forward against NumPy, first and second derivatives against finite
differences, repeated-index accumulation, views, non-contiguous inputs, and error messages."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.ops import shape as shape_ops
from minigrad.ops.shape import index_put, scatter_add
from tests.conftest import ON
from tests.coverage import covers
from tests.helpers import check_grads, leaf, t

# -- strategies -------------------------------------------------------------------------------


@st.composite
def float_arrays(draw, min_dims=0, max_dims=3, min_side=0, max_side=3, shape=None):
    """float64 arrays of a drawn (or given) shape; contiguous, a transposed view, or a strided
    slice of a bigger array, so ops meet non-contiguous memory too."""
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                                      min_side=min_side, max_side=max_side))
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if layout == "transposed" and len(shape) >= 2:
        a = rng.standard_normal(shape[::-1]).T
    elif layout == "strided" and len(shape) >= 1:
        a = rng.standard_normal(shape[:-1] + (2 * shape[-1],))[..., ::2]
    else:
        a = rng.standard_normal(shape)
    assert a.shape == tuple(shape)
    return a


pytestmark = pytest.mark.usefixtures("on_device")  # every test on every device


# -- reshape family ---------------------------------------------------------------------------


@covers("Reshape", twice=True)
@given(float_arrays(max_dims=4), st.data())
def test_reshape(a, data):
    target = data.draw(st.permutations(a.shape)).copy() if a.ndim else []
    if target and data.draw(st.booleans()) and a.size:
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    target = tuple(target)
    x = leaf(a)
    np.testing.assert_array_equal(mg.reshape(x, target).numpy(), a.reshape(target))
    np.testing.assert_array_equal(x.reshape(*target).numpy(), a.reshape(target))
    np.testing.assert_array_equal(x.view(-1).numpy(), a.reshape(-1))
    check_grads(lambda t: t.reshape(target[::-1] if -1 not in target else (-1,)), a)


def test_reshape_is_a_view_of_contiguous_data():
    a = np.arange(12.0)
    x = mg.from_numpy(a)
    assert np.shares_memory(x.reshape(3, 4).array, a)
    assert x.reshape(12) is x  # nothing to record


@covers("Reshape", twice=True)
@given(float_arrays(max_dims=4), st.data())
def test_flatten(a, data):
    x = leaf(a)
    if a.ndim == 0:
        assert x.flatten().shape == (1,)
        check_grads(lambda t: t.flatten(), a)
        return
    s = data.draw(st.integers(0, a.ndim - 1))
    e = data.draw(st.integers(s, a.ndim - 1))
    start = s - a.ndim if data.draw(st.booleans()) else s  # negative axes too
    end = e - a.ndim if data.draw(st.booleans()) else e
    merged = int(np.prod(a.shape[s:e + 1]))
    expected = a.reshape(a.shape[:s] + (merged,) + a.shape[e + 1:])
    out = mg.flatten(x, start, end)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(x.flatten().numpy(), a.reshape(-1))
    check_grads(lambda t: t.flatten(start, end), a)


@covers("Reshape", twice=True)
@given(float_arrays(max_dims=4, max_side=2), st.data())
def test_squeeze_unsqueeze(a, data):
    x = leaf(a)
    np.testing.assert_array_equal(x.squeeze().numpy(), np.squeeze(a))
    if a.ndim:
        axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
        # PyTorch semantics: an axis whose size is not 1 is kept, not an error
        expected = np.squeeze(a, axis) if a.shape[axis] == 1 else a
        np.testing.assert_array_equal(x.squeeze(axis).numpy(), expected)
        np.testing.assert_array_equal(mg.squeeze(x, dim=axis).numpy(), expected)
        axes = tuple(data.draw(st.sets(st.integers(0, a.ndim - 1))))
        ones = tuple(i for i in axes if a.shape[i] == 1)
        np.testing.assert_array_equal(x.squeeze(axes).numpy(), np.squeeze(a, ones))
    new = data.draw(st.integers(-a.ndim - 1, a.ndim))
    np.testing.assert_array_equal(x.unsqueeze(new).numpy(), np.expand_dims(a, new))
    np.testing.assert_array_equal(mg.unsqueeze(x, dim=new).numpy(), np.expand_dims(a, new))
    check_grads(lambda t: t.unsqueeze(new).squeeze(), a)


def test_squeeze_unsqueeze_0d():
    x = mg.tensor(3.0, dtype=np.float64)
    assert x.squeeze().shape == ()
    assert x.squeeze(0).shape == () and x.squeeze(-1).shape == ()
    assert x.unsqueeze(0).shape == (1,) and x.unsqueeze(-1).shape == (1,)


# -- permutations -----------------------------------------------------------------------------


@covers("Permute", twice=True)
@given(float_arrays(min_dims=1, max_dims=4), st.data())
def test_permute_transpose_T(a, data):
    x = leaf(a)
    axes = tuple(data.draw(st.permutations(range(a.ndim))))
    signed = tuple(ax - a.ndim if data.draw(st.booleans()) else ax for ax in axes)
    np.testing.assert_array_equal(x.permute(*signed).numpy(), a.transpose(axes))
    np.testing.assert_array_equal(mg.permute(x, signed).numpy(), a.transpose(axes))
    i = data.draw(st.integers(-a.ndim, a.ndim - 1))
    j = data.draw(st.integers(-a.ndim, a.ndim - 1))
    np.testing.assert_array_equal(x.transpose(i, j).numpy(), np.swapaxes(a, i, j))
    np.testing.assert_array_equal(x.T.numpy(), a.T)
    check_grads(lambda t: t.permute(axes), a)
    if a.ndim >= 2:
        check_grads(lambda t: t.T * 2.0, a)


def test_transpose_is_a_view_and_T_of_low_dims():
    a = np.arange(6.0).reshape(2, 3)
    x = mg.from_numpy(a)
    assert np.shares_memory(x.T.array, a) and np.shares_memory(x.transpose(0, 1).array, a)
    v = mg.tensor([1.0, 2.0])
    assert v.T is v and mg.tensor(1.0).T.shape == ()


# -- broadcasting -------------------------------------------------------------------------------


@covers("BroadcastTo", "SumTo", twice=True)
@given(float_arrays(max_dims=3), st.data())
def test_broadcast_to_and_sum_to(a, data):
    # grow some size-1 axes and add leading ones
    target = tuple(data.draw(st.integers(2, 3)) if n == 1 else n for n in a.shape)
    target = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2))) + target
    x = leaf(a)
    np.testing.assert_array_equal(mg.broadcast_to(x, target).numpy(), np.broadcast_to(a, target))
    np.testing.assert_array_equal(x.expand(*target).numpy(), np.broadcast_to(a, target))
    minus_one = target[:len(target) - a.ndim] + (-1,) * a.ndim  # -1 keeps x's own size
    np.testing.assert_array_equal(x.expand(minus_one).numpy(),
                                  np.broadcast_to(a, target[:len(target) - a.ndim] + a.shape))
    big = np.random.default_rng(1).standard_normal(target)
    lead = len(target) - a.ndim
    expected = big.sum(axis=tuple(range(lead))) if lead else big
    expected = expected.sum(axis=tuple(i for i, n in enumerate(a.shape) if n == 1), keepdims=True)
    np.testing.assert_allclose(mg.sum_to(mg.from_numpy(big), a.shape).numpy(), expected, atol=1e-12)
    if target != a.shape:
        check_grads(lambda t: mg.broadcast_to(t, target), a)
        check_grads(lambda t: mg.sum_to(t, a.shape), big)


# -- indexing -----------------------------------------------------------------------------------


@covers("Getitem", twice=True)
@given(float_arrays(max_dims=3, max_side=4), st.data())
def test_getitem_basic(a, data):
    index = data.draw(hnp.basic_indices(a.shape, allow_newaxis=True, allow_ellipsis=True))
    x = leaf(a)
    out = x[index]
    np.testing.assert_array_equal(out.numpy(), a[index])
    assert out.shape == np.asarray(a[index]).shape
    if out.ndim:
        assert np.shares_memory(out.array, x.array) or out.numel() == 0  # basic indexing: a view, no copy
    check_grads(lambda t: t[index], a)


@st.composite
def advanced_indices(draw, shape):
    """Integer arrays (as arrays, lists or tensors), possibly after a slice or with a mask."""
    kind = draw(st.sampled_from(["ints", "ints-after-slice", "mask", "mask-prefix", "int-and-slice"]))
    if kind == "ints":
        idx = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2,
                                                                                  max_side=4)))
        wrap = draw(st.sampled_from(["array", "list", "tensor"]))
        if wrap == "list":
            idx = tuple(i.tolist() for i in idx)
        elif wrap == "tensor":
            idx = tuple(t(i) for i in idx)
        return idx if len(idx) > 1 else idx[0]
    if kind == "ints-after-slice" and len(shape) >= 2:
        (idx,) = draw(hnp.integer_array_indices(shape[1:2]))
        return (slice(None, None, -1), idx)
    if kind == "mask":
        mask = draw(hnp.arrays(np.bool_, shape))
        return t(mask) if draw(st.booleans()) else mask
    if kind == "mask-prefix" and len(shape) >= 1:
        return (draw(hnp.arrays(np.bool_, shape[:1])), Ellipsis)
    if len(shape) >= 2:
        (idx,) = draw(hnp.integer_array_indices(shape[:1]))
        return (idx, slice(None, None, 2))
    (idx,) = draw(hnp.integer_array_indices(shape))
    return idx


def _as_numpy_index(index):
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(i.numpy() if isinstance(i, mg.Tensor) else i for i in items)
    return items if isinstance(index, tuple) else items[0]


@covers("Getitem", twice=True)
@given(float_arrays(min_dims=1, max_dims=3, min_side=1, max_side=3), st.data())
def test_getitem_advanced(a, data):
    index = data.draw(advanced_indices(a.shape))
    ref = _as_numpy_index(index)
    x = leaf(a)
    np.testing.assert_array_equal(x[index].numpy(), a[ref])
    # the gradient is NumPy's add.at of the upstream gradient: repeated picks add up
    g = np.random.default_rng(0).standard_normal(np.shape(a[ref]))
    x[index].backward(t(g))
    expected = np.zeros_like(a)
    np.add.at(expected, ref, g)
    np.testing.assert_allclose(x.grad.numpy(), expected, atol=1e-12)
    check_grads(lambda t: t[index], a)


@covers("ScatterAdd", twice=True)
@given(float_arrays(min_dims=1, max_dims=3, min_side=1, max_side=3), st.data())
def test_scatter_add(a, data):
    index = data.draw(st.one_of(advanced_indices(a.shape), hnp.basic_indices(a.shape)))
    ref = _as_numpy_index(index)
    picked = np.array(a[ref], dtype=np.float64)  # a copy; keeps 0-d as 0-d
    out = scatter_add(t(picked), index, a.shape)
    expected = np.zeros_like(a)
    np.add.at(expected, ref, picked)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    check_grads(lambda v: scatter_add(v, index, a.shape), picked)


def _unique_positions(shape, ref):
    """True when the index picks no position twice (a write's gradient is then well defined)."""
    count = np.zeros(shape)
    np.add.at(count, ref, 1)
    return count.max(initial=0) <= 1


@covers("IndexPut", twice=True)
@given(float_arrays(min_dims=1, max_dims=3, min_side=1, max_side=3), st.data())
def test_index_put(a, data):
    index = data.draw(st.one_of(advanced_indices(a.shape), hnp.basic_indices(a.shape)))
    ref = _as_numpy_index(index)
    picked_shape = np.shape(a[ref])
    assume(_unique_positions(a.shape, ref))
    broadcast = data.draw(st.booleans()) and len(picked_shape) >= 1
    v = np.random.default_rng(1).standard_normal(picked_shape[1:] if broadcast else picked_shape)
    out = index_put(t(a), index, t(v))
    expected = a.copy()
    expected[ref] = v
    np.testing.assert_array_equal(out.numpy(), expected)
    check_grads(lambda t, u: index_put(t, index, u), a, v)


def test_index_put_gradients_by_hand():
    x = mg.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    v = mg.tensor(5.0, dtype=np.float64, requires_grad=True)
    z = index_put(x, [0, 2], v)          # [5, 2, 5]
    (z * mg.tensor([1.0, 10.0, 100.0], dtype=np.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 10.0, 0.0])   # overwritten: no gradient
    assert v.grad.item() == 101.0                                      # broadcast: summed
    with pytest.raises(ValueError, match=r"setitem: a value of shape \(3,\) cannot be written"):
        index_put(x, [0, 2], mg.ones(3, dtype=np.float64))


def test_integers_mixed_with_index_arrays_place_dimensions_as_pytorch():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(a.copy())
    out = x[0, :, [0, 2]]          # PyTorch: select dim 0 first -> (3, 4)[:, [0, 2]] -> (3, 2)
    assert out.shape == (3, 2)     # (NumPy would give (2, 3))
    np.testing.assert_array_equal(out.numpy(), a[0][:, [0, 2]])
    assert x[:, 1, [0, 0, 3]].shape == (2, 3)
    assert x[[0, 1], :, [0, 2]].shape == (2, 3)  # two arrays apart: their dimension first, as both do
    np.testing.assert_array_equal(x[..., 2, [1, 3]].numpy(), a[..., 2, :][..., [1, 3]])
    out.sum().backward()
    expected = np.zeros_like(a)
    expected[0, :, [0, 2]] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    y = mg.zeros(2, 3, 4, dtype=np.float64)
    y[0, :, [0, 2]] = mg.tensor(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(y.numpy()[0][:, [0, 2]], np.arange(6.0).reshape(3, 2))
    check_grads(lambda t: t[1, :, [3, 1]], a)


@pytest.mark.torch
def test_mixed_indexing_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((3, 4, 5, 2))
    for index in [(0, slice(None), [0, 2]), (slice(None), 1, [0, 3], 0), (1, [0, 1], slice(None), [1, 0]),
                  (Ellipsis, 1, [1, 0]), ([2, 0], slice(None), 3), (None, 0, slice(1, 3), [4, 4, 0])]:
        ours = mg.from_numpy(a)[index].numpy()
        theirs = torch.from_numpy(a)[index].numpy()
        assert ours.shape == theirs.shape, index
        np.testing.assert_array_equal(ours, theirs)


def test_repeated_indices_accumulate():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 1.0, 0.0])

    m = mg.zeros(3, 2, requires_grad=True)
    rows = mg.tensor([2, 2, 2, 0])
    cols = [1, 1, 0, 0]
    (m[rows, cols] * mg.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [[1000, 0], [0, 0], [100, 11]])


def test_repeated_indices_second_derivative():
    # d/dx sum((x[i])^2) = 2 * count_i * x_i: the double backward gathers from the scatter
    x = mg.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    (g,) = mg.grad((x[[2, 2, 0]] ** 2).sum(), x, create_graph=True)
    np.testing.assert_array_equal(g.numpy(), [2.0, 0.0, 12.0])
    (h,) = mg.grad((g * mg.tensor([1.0, 1.0, 1.0], dtype=np.float64)).sum(), x)
    np.testing.assert_array_equal(h.numpy(), [2.0, 0.0, 4.0])


def test_getitem_index_forms():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = mg.from_numpy(a)
    np.testing.assert_array_equal(x[mg.tensor(1)].numpy(), a[1])
    np.testing.assert_array_equal(x[np.int64(-1), ::-2].numpy(), a[-1, ::-2])
    np.testing.assert_array_equal(x[[]].numpy(), a[[]])
    np.testing.assert_array_equal(x[..., [True, False, True, False]].numpy(), a[..., [True, False, True, False]])
    np.testing.assert_array_equal(x[x > 10].numpy(), a[a > 10])
    np.testing.assert_array_equal(x[None, 1, [0, 2], 1:].numpy(), a[None, 1, [0, 2], 1:])
    np.testing.assert_array_equal(x[:, [0, 1], [2, 3]].numpy(), a[:, [0, 1], [2, 3]])
    s = mg.tensor(5.0)
    assert s[()].shape == () and s[None].shape == (1,) and s[...].item() == 5.0
    labels = mg.tensor([3, 1, 2])
    assert labels[[0, 0]].dtype == np.int64 and not labels[[0, 0]].requires_grad
    rows = [row.tolist() for row in x[0]]  # iteration goes through getitem
    assert rows == a[0].tolist()


def test_getitem_size_zero():
    x = mg.zeros(0, 3, dtype=np.float64, requires_grad=True)
    y = x[:, 1:]
    assert y.shape == (0, 2)
    y.sum().backward()
    assert x.grad.shape == (0, 3)
    z = mg.zeros(3, dtype=np.float64, requires_grad=True)
    z[np.zeros(0, dtype=np.int64)].sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 0.0, 0.0])


def test_getitem_errors():
    x = mg.zeros(3, 4)
    with pytest.raises(IndexError, match=r"getitem: index 5 is out of bounds for axis 0 with size 3"):
        x[5]
    with pytest.raises(IndexError, match=r"getitem: index 7 is out of bounds for axis 1 with size 4"):
        x[:, [0, 7]]
    with pytest.raises(IndexError, match=r"getitem: index -4 is out of bounds for axis 0 with size 3"):
        x[mg.tensor([0, -4])]
    with pytest.raises(IndexError, match=r"getitem: boolean index did not match .* size of axis is 3 "
                                         r"but size of corresponding boolean axis is 2"):
        x[mg.tensor([True, False])]
    with pytest.raises(IndexError, match=r"getitem: too many indices .*shape \(3, 4\)"):
        x[0, 0, 0]
    with pytest.raises(TypeError, match=r"getitem: index arrays must hold integers or bools, got dtype float"):
        x[mg.tensor([0.0, 1.0])]
    with pytest.raises(TypeError, match=r"getitem: unsupported index 'a'"):
        x["a"]


def test_bounds_check_used_for_cupy_arrays():
    # CuPy wraps out-of-range indices silently, so getitem checks them itself there; the
    # check is backend-neutral, so exercise it on NumPy arrays.
    check = shape_ops._check_bounds
    check((3, 4), (np.array([0, 2, -3]), Ellipsis))
    check((3, 4), (np.array([True, False, True]), np.array([3])))
    with pytest.raises(IndexError, match=r"index 4 is out of bounds for axis 1 with size 4"):
        check((3, 4), (None, slice(None), np.array([1, 4])))
    with pytest.raises(IndexError, match=r"index -5 is out of bounds for axis 1 with size 4"):
        check((3, 4), (0, np.array([-5])))
    with pytest.raises(IndexError, match=r"index 3 is out of bounds for axis 0 with size 3"):
        check((3, 4), (Ellipsis, np.array([3]), slice(None)))


# -- repeat, index_select -----------------------------------------------------------------------


@pytest.mark.parametrize("shape, sizes", [((2, 3), (2, 1)), ((3,), (2, 2)), ((2, 1, 3), (1, 4, 2)), ((), (3,)),
                                          ((2, 3), (0, 2))])
def test_repeat_is_numpy_tile_and_sums_the_gradient_of_the_copies(shape, sizes):
    a = np.random.default_rng(4).standard_normal(shape)
    x = leaf(a)
    out = x.repeat(*sizes)
    np.testing.assert_array_equal(out.numpy(), np.tile(a, sizes))
    np.testing.assert_array_equal(mg.ops.repeat(x, sizes).numpy(), np.tile(a, sizes))
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(shape, float(np.prod(sizes))))
    assert mg.gradgradcheck(lambda t: t.repeat(*sizes) ** 2, leaf(a))
    with pytest.raises(ValueError, match="repeat: needs one non-negative int per dimension"):
        mg.ones(2, 3).repeat(2)
    same = x.repeat(*(1,) * x.ndim)  # nothing repeated: a copy all the same, as PyTorch's
    assert not np.shares_memory(same.array, x.array)
def test_index_select_gathers_and_accumulates(monkeypatch):
    a = np.random.default_rng(5).standard_normal((3, 4))
    x = leaf(a)
    idx = t(np.array([2, 0, 2]))
    np.testing.assert_array_equal(x.index_select(1, idx).numpy(), a[:, [2, 0, 2]])
    np.testing.assert_array_equal(mg.index_select(x, 0, [1]).numpy(), a[[1]])
    x.index_select(-1, idx).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.tile([1.0, 0.0, 2.0, 0.0], (3, 1)))
    assert mg.gradgradcheck(lambda t: t.index_select(0, mg.tensor([2, 2, 1])) ** 2, leaf(a))
    with pytest.raises(ValueError, match="index_select: index must be a 0-d or 1-D integer tensor"):
        x.index_select(0, mg.tensor([[0]]))
    if ON.name != "cpu":  # the GPU checks indices in a kernel (traps at the next sync); the host at once under
        monkeypatch.setenv("MINIGRAD_DEBUG", "1")  # MINIGRAD_DEBUG (tests/test_cuda_device.py has the trap)
    with pytest.raises(IndexError, match="3"):
        x.index_select(0, t(np.array([3])))
# -- indexing with lists and tuples -------------------------------------------------------------


@pytest.mark.torch
def test_list_and_tuple_indices_as_pytorch():
    torch = pytest.importorskip("torch")
    a = np.arange(24.0).reshape(2, 3, 4)
    x, theirs = t(a), torch.tensor(a)
    for index in [([0, 1], [2, 0]), ((0,), Ellipsis), ((1, 0), slice(None), [3, 3]), (Ellipsis, (0, 2)),
                  ([[0, 1], [1, 0]],), (0, [True, False, True]), [1, 0], ([0], 1, (2, 3))]:
        np.testing.assert_array_equal(x[index].numpy(), theirs[index].numpy(), err_msg=repr(index))
def test_list_and_tuple_indices_without_torch():
    a = np.arange(16.0).reshape(4, 4)
    x = leaf(a)
    np.testing.assert_array_equal(x[[0, 1], [2, 3]].numpy(), [2.0, 7.0])
    assert x[(0,), ...].shape == (1, 4) and x[(0, 2), :].shape == (2, 4)
    x[(0, 0), (1, 1)].sum().backward()  # a repeated position collects both gradients
    assert x.grad.numpy()[0, 1] == 2.0 and x.grad.numpy().sum() == 2.0
    y = t(np.zeros((3, 3)))
    y[[0, 2], (1, 2)] = 5.0
    assert y.numpy()[0, 1] == 5.0 and y.numpy()[2, 2] == 5.0 and y.numpy().sum() == 10.0
    for ambiguous in ([[0, 1], [2, 3]], [0, slice(None)], [mg.tensor(0), mg.tensor(1)]):
        with pytest.raises(TypeError, match="a list holding sequences, tensors, slices or None as the whole index is ambiguous"):
            x[ambiguous]
# -- joining, splitting, padding ----------------------------------------------------------------


@st.composite
def joinable(draw, same_shape=False):
    """2-3 arrays that agree on every axis except (unless same_shape) the join axis."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    count = draw(st.integers(1, 3))
    arrays = []
    for _ in range(count):
        s = list(shape)
        if not same_shape:
            s[axis] = draw(st.integers(0, 3))
        arrays.append(draw(float_arrays(shape=tuple(s))))
    return arrays, axis


@covers("Concatenate", twice=True)
@given(joinable())
def test_concatenate(case):
    arrays, axis = case
    xs = [leaf(a) for a in arrays]
    expected = np.concatenate(arrays, axis=axis)
    np.testing.assert_array_equal(mg.concatenate(xs, axis=axis).numpy(), expected)
    np.testing.assert_array_equal(mg.cat(xs, dim=axis).numpy(), expected)
    check_grads(lambda *ts: mg.cat(ts, axis), *arrays)


@covers("Stack", twice=True)
@given(joinable(same_shape=True), st.data())
def test_stack(case, data):
    arrays, _ = case
    axis = data.draw(st.integers(-arrays[0].ndim - 1, arrays[0].ndim))
    xs = [leaf(a) for a in arrays]
    np.testing.assert_array_equal(mg.stack(xs, axis).numpy(), np.stack(arrays, axis))
    np.testing.assert_array_equal(mg.stack(xs, dim=axis).numpy(), np.stack(arrays, axis))
    check_grads(lambda *ts: mg.stack(ts, axis), *arrays)


def test_stack_0d():
    xs = [mg.tensor(1.0, dtype=np.float64, requires_grad=True), mg.tensor(2.0, dtype=np.float64, requires_grad=True)]
    out = mg.stack(xs)
    assert out.shape == (2,)
    (out * mg.tensor([3.0, 4.0], dtype=np.float64)).sum().backward()
    assert xs[0].grad.item() == 3.0 and xs[1].grad.item() == 4.0


def _reference_split(a, size_or_sections, axis):
    n = a.shape[axis]
    if isinstance(size_or_sections, int):
        cuts = list(range(size_or_sections, n, size_or_sections))
    else:
        cuts = list(np.cumsum(size_or_sections)[:-1])
    return np.split(a, cuts, axis=axis)


@covers("Getitem", twice=True)
@given(float_arrays(min_dims=1, max_dims=3, max_side=4), st.data())
def test_split(a, data):
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    n = a.shape[axis]
    if data.draw(st.booleans()):
        spec = data.draw(st.integers(1, 4))
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
        spec = [b - e for b, e in zip(cuts + [n], [0] + cuts)]
    x = leaf(a)
    pieces = x.split(spec, axis)
    expected = _reference_split(a, spec, axis)
    assert len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        np.testing.assert_array_equal(p.numpy(), e)
        assert p.grad_fn is not None and p.grad_fn.name == "Getitem"  # each piece its own record
    check_grads(lambda t: mg.split(t, spec, dim=axis), a)


def test_split_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.arange(14.0).reshape(7, 2)
    for spec in (3, 7, 10, [2, 0, 5]):
        ours = mg.split(mg.from_numpy(a), spec)
        theirs = torch.split(torch.from_numpy(a), spec)
        assert [p.shape for p in ours] == [tuple(t.shape) for t in theirs]
        for p, t in zip(ours, theirs):
            np.testing.assert_array_equal(p.numpy(), t.numpy())


@st.composite
def pad_widths(draw, ndim):
    form = draw(st.sampled_from(["int", "pair", "per-axis"]))
    w = st.integers(0, 2)
    if form == "int":
        return draw(w)
    if form == "pair":
        return (draw(w), draw(w))
    return tuple((draw(w), draw(w)) for _ in range(ndim))


@covers("Pad", twice=True)
@given(float_arrays(max_dims=3), st.data())
def test_pad(a, data):
    width = data.draw(pad_widths(a.ndim))
    value = data.draw(st.sampled_from([0.0, -1.5]))
    x = leaf(a)
    ref_width = width if width != () else 0  # NumPy rejects () for a 0-d array; we accept it
    np.testing.assert_array_equal(mg.pad(x, width, value).numpy(),
                                  np.pad(a, ref_width, mode="constant", constant_values=value))
    check_grads(lambda t: mg.pad(t, width, value=value), a)


# -- torch parity for a mixed advanced index's gradient ----------------------------------------


def test_getitem_grad_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(3).standard_normal((4, 5, 3))
    index = (slice(None, None, -2), [4, 4, 0], 1)
    g = np.random.default_rng(4).standard_normal(a[index].shape)
    x = mg.tensor(a, requires_grad=True)
    x[index].backward(mg.tensor(g))
    t = torch.tensor(a, requires_grad=True)
    # torch has no negative slice steps: pick rows 3 and 1 explicitly (what a[::-2] picks)
    t[torch.tensor([3, 1])][:, [4, 4, 0], 1].backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), atol=1e-12)


# -- errors -------------------------------------------------------------------------------------


def test_shape_errors():
    x = mg.zeros(2, 3)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"squeeze: axis 2 is out of range for a tensor of shape \(2, 3\)"):
        x.squeeze(2)
    with pytest.raises(ValueError, match=r"unsqueeze: axis -4 is out of range"):
        x.unsqueeze(-4)
    with pytest.raises(ValueError, match=r"transpose: axis 2 is out of range for a tensor of shape \(2, 3\)"):
        x.transpose(0, 2)
    with pytest.raises(ValueError, match=r"permute: axes \(0, 0\) are not a permutation .*shape \(2, 3\)"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match=r"permute: got 3 axes"):
        x.permute(0, 1, 2)
    with pytest.raises(ValueError, match=r"flatten: start_dim 1 comes after end_dim 0"):
        x.flatten(1, 0)
    with pytest.raises(TypeError, match=r"squeeze: axis must be an int"):
        x.squeeze(1.0)
    with pytest.raises(TypeError, match=r"squeeze: pass either axis or dim"):
        mg.squeeze(x, 0, dim=0)
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast shape \(2, 3\) to \(4, 3\)"):
        x.expand(4, 3)
    # PyTorch semantics: squeezing an axis whose size is not 1 keeps it
    assert x.squeeze(0).shape == (2, 3)


def test_join_errors():
    a, b = mg.zeros(2, 3), mg.zeros(2, 4)
    with pytest.raises(ValueError, match=r"concatenate: expected a non-empty sequence"):
        mg.cat([])
    with pytest.raises(ValueError, match=r"concatenate: tensors must have the same shape except along "
                                         r"axis 0, got shapes \(2, 3\), \(2, 4\)"):
        mg.cat([a, b])
    with pytest.raises(ValueError, match=r"concatenate: .* got shapes \(2, 3\), \(3,\)"):
        mg.cat([a, mg.zeros(3)], axis=1)
    with pytest.raises(ValueError, match=r"concatenate: 0-d tensors cannot be concatenated"):
        mg.cat([mg.tensor(1.0), mg.tensor(2.0)])
    with pytest.raises(ValueError, match=r"concatenate: axis 2 is out of range"):
        mg.cat([a, a], axis=2)
    with pytest.raises(TypeError, match=r"concatenate: expected a sequence of tensors, got a single tensor"):
        mg.cat(a)
    with pytest.raises(ValueError, match=r"stack: expected a non-empty sequence"):
        mg.stack([])
    with pytest.raises(ValueError, match=r"stack: all tensors must have the same shape, got shapes \(2, 3\), \(2, 4\)"):
        mg.stack([a, b])
    with pytest.raises(ValueError, match=r"split: sections \[1, 1\] must be non-negative and add up to 3"):
        mg.split(a, [1, 1], axis=1)
    with pytest.raises(ValueError, match=r"split: split_size must be a positive int, got 0"):
        a.split(0)
    with pytest.raises(ValueError, match=r"pad: pad_width \(1, 2, 3\) does not fit a tensor of shape \(2, 3\)"):
        mg.pad(a, (1, 2, 3))
    with pytest.raises(ValueError, match=r"pad: pad_width -1 has negative entries"):
        mg.pad(a, -1)


def test_join_mixed_dtypes_give_grads_in_each_dtype():
    a = mg.ones(2, dtype=np.float32, requires_grad=True)
    b = mg.ones(3, dtype=np.float64, requires_grad=True)
    out = mg.cat([a, b])
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


@covers("Gather", twice=True)
def test_gather_matches_take_along_axis_and_scatters_its_gradient():
    a = np.random.default_rng(0).standard_normal((3, 4, 2))
    idx = np.array([[[0, 1], [3, 3]], [[2, 0], [1, 1]], [[3, 2], [0, 3]]])  # (3, 2, 2), along dim 1
    x = leaf(a.copy())
    out = x.gather(1, mg.tensor(idx))
    np.testing.assert_array_equal(out.numpy(), np.take_along_axis(a, idx, 1))
    out.sum().backward()
    expected = np.zeros_like(a)
    np.put_along_axis(expected, idx, 0, 1)
    for i in range(3):
        for j in range(2):
            for k in range(2):
                expected[i, idx[i, j, k], k] += 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    check_grads(lambda t: t.gather(-1, mg.tensor(idx[:, :, :1] % 2)), a)
    with pytest.raises(ValueError, match="gather: index must be an integer tensor with 3 dimensions"):
        x.gather(1, mg.tensor([0, 1]))


@pytest.mark.torch
def test_gather_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 4, 2))
    g = rng.standard_normal((3, 5, 2))
    idx = rng.integers(0, 4, (3, 5, 2))  # repeats: their gradients add up
    x, tx = leaf(a.copy()), torch.tensor(a, requires_grad=True)
    out, theirs = x.gather(1, t(idx)), torch.gather(tx, 1, torch.tensor(idx))
    np.testing.assert_array_equal(out.numpy(), theirs.detach().numpy())
    out.backward(t(g))
    theirs.backward(torch.tensor(g))
    # a position picked k times gets a sum of k values, added in either library's order
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=0, atol=10 * 2.0 ** -53 * np.abs(g).sum())


PAD_CASES = [(1, 2), (2, 1, 1, 2), (-1, 2), (1, -2, 0, 1), (0, 0), (3, 0, 0, 0, 1, 1)]


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", PAD_CASES)
def test_functional_pad_pytorch_convention_and_gradients(mode, pad):
    F = mg.nn.functional
    a = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) * 0.5 - 2
    widths = [(0, 0)] * (3 - len(pad) // 2) + [(pad[k], pad[k + 1]) for k in range(len(pad) - 2, -1, -2)]
    if mode == "reflect" and any(max(b, e) >= n for (b, e), n in zip(widths, a.shape)):
        with pytest.raises(ValueError, match="reflect padding .* must be less than the size"):
            F.pad(mg.from_numpy(a), pad, mode=mode)
        return
    out = F.pad(mg.from_numpy(a), pad, mode=mode, **({"value": 1.5} if mode == "constant" else {}))
    assert out.shape == tuple(n + b + e for n, (b, e) in zip(a.shape, widths))
    if all(b >= 0 and e >= 0 for b, e in widths):  # NumPy's pad is the same thing, axes in order
        np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
        kw = {"constant_values": 1.5} if mode == "constant" else {}
        np.testing.assert_array_equal(out.numpy(), np.pad(a, widths, mode=np_mode, **kw))
    check_grads(lambda t: F.pad(t, pad, mode=mode), a)


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_functional_pad_matches_torch(mode):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    g = np.random.default_rng(1).standard_normal
    # (torch pads only the last 2 dimensions of a 4-D input in the non-constant modes; minigrad
    #  pads any number of trailing dimensions in every mode)
    for pad in [(2, 1, 1, 2), (-1, 2, 1, 0), (1, -2, 0, 1), (2, 2, 3, 1)] + [(1, 2)] * (mode == "constant"):
        x = mg.tensor(a, requires_grad=True)
        t = torch.tensor(a, requires_grad=True)
        ours = mg.nn.functional.pad(x, pad, mode=mode)
        theirs = torch.nn.functional.pad(t, pad, mode=mode)
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
        up = g(ours.shape)
        ours.backward(mg.tensor(up))
        theirs.backward(torch.tensor(up))
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), atol=1e-12)


def test_functional_pad_errors():
    F = mg.nn.functional
    x = mg.zeros(2, 3)
    with pytest.raises(ValueError, match="pad must hold an even number of ints"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="at most 2 per dimension"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="mode must be one of"):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(ValueError, match=r"cropping \(-2, -2\) removes more than the 3 elements"):
        F.pad(x, (-2, -2))
    with pytest.raises(ValueError, match="circular padding"):
        F.pad(x, (4, 0), mode="circular")


def test_chunk_follows_pytorch():
    x = mg.arange(10.0)
    assert [p.shape[0] for p in x.chunk(3)] == [4, 4, 2]
    assert [p.shape[0] for p in mg.arange(4.0).chunk(3)] == [2, 2]   # fewer pieces, as PyTorch
    assert [p.shape for p in mg.zeros(2, 6).chunk(2, dim=1)] == [(2, 3), (2, 3)]
    with pytest.raises(ValueError, match="chunks must be a positive int"):
        x.chunk(0)
    a = np.random.default_rng(0).standard_normal((3, 5))
    check_grads(lambda t: t.chunk(2, 1)[1] * t.chunk(2, 1)[0][:, :2], a)


@pytest.mark.parametrize("diagonal", [-1, 0, 2])
def test_tril_triu_match_numpy_and_pass_gradients_where_kept(diagonal):
    a = np.random.default_rng(1).standard_normal((2, 4, 5))
    np.testing.assert_array_equal(mg.tril(mg.from_numpy(a), diagonal).numpy(), np.tril(a, diagonal))
    np.testing.assert_array_equal(mg.from_numpy(a).triu(diagonal).numpy(), np.triu(a, diagonal))
    x = leaf(a.copy())
    (mg.tril(x, diagonal) * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.tril(np.ones_like(a), diagonal))
    check_grads(lambda t: mg.triu(t, diagonal) * t, a)
    with pytest.raises(ValueError, match="tril: needs a tensor of at least 2 dimensions"):
        mg.tril(mg.zeros(3))
