"""The smaller PyTorch names of issue 16: floor/ceil/round/trunc, clamp with tensor bounds,
addcmul/addcdiv (and their in-place forms), repeat, index_select, contiguous, view_as,
expand_as, type_as, indexing with lists and tuples, and the creation functions linspace,
randperm, rand_like/randn_like and multinomial."""
import math

import numpy as np
import pytest

import minigrad as mg

from .coverage import covers
from tests.helpers import leaf


# -- rounding -------------------------------------------------------------------------------------


@covers("Floor", "Ceil", "Round", "Trunc", twice=True)
def test_rounding_matches_numpy_and_passes_zero_gradient(device):
    a = np.array([-2.5, -1.5, -0.7, -0.5, 0.0, 0.3, 0.5, 1.5, 2.5, 2.7])
    x = leaf(a, device)
    for name, ref in (("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc), ("round", np.round)):
        out = getattr(mg, name)(x)
        np.testing.assert_array_equal(out.numpy(), ref(a))  # round: halves to even, as PyTorch
        np.testing.assert_array_equal(getattr(x, name)().numpy(), ref(a))
        (g,) = mg.grad(out.sum(), x)
        np.testing.assert_array_equal(g.numpy(), np.zeros_like(a))  # piecewise constant
    np.testing.assert_array_equal(x.round(decimals=1).numpy(), np.round(a, 1))
    b = np.array([0.26, 1.11, -3.77])  # away from the jumps: finite differences see 0 too
    for fn in (mg.floor, mg.ceil, mg.trunc, mg.round, lambda t: mg.round(t, decimals=1)):
        assert mg.gradcheck(lambda t: fn(t) * t, leaf(b, device))
        assert mg.gradgradcheck(lambda t: fn(t) * t, leaf(b, device))


def test_rounding_integers_dtypes_and_in_place():
    i = mg.tensor([1, -2, 3])
    for fn in (mg.floor, mg.ceil, mg.round, mg.trunc):
        out = fn(i)
        assert out.dtype == np.int64 and out.tolist() == [1, -2, 3]
        assert not np.shares_memory(out.array, i.array)
    assert mg.floor(mg.tensor([1.5])).dtype == np.float32
    x = mg.tensor([1.7, -1.2])
    assert x.floor_() is x and x.tolist() == [1.0, -2.0]
    with pytest.raises(TypeError, match="round: decimals must be an int"):
        mg.round(x, 1.5)


@pytest.mark.torch
def test_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal(50) * 4
    a[:4] = [0.5, 1.5, -2.5, 2.5]
    for name in ("floor", "ceil", "round", "trunc"):
        np.testing.assert_array_equal(getattr(mg, name)(mg.tensor(a)).numpy(), getattr(torch, name)(torch.tensor(a)).numpy())
    np.testing.assert_array_equal(mg.round(mg.tensor(a), decimals=2).numpy(),
                                  torch.round(torch.tensor(a), decimals=2).numpy())


# -- clamp ------------------------------------------------------------------------------------------


def test_clamp_with_tensor_bounds_sends_the_gradient_where_each_value_came_from(device):
    x = leaf([-1.0, 0.5, 2.0, 0.3, 0.7], device)
    lo = leaf([0.0, 0.5, 0.0, 0.4, 0.0], device)
    hi = leaf([1.0, 1.0, 1.0, 0.2, 1.0], device)
    z = mg.clamp(x, lo, hi)
    np.testing.assert_array_equal(z.numpy(), [0.0, 0.5, 1.0, 0.2, 0.7])  # min > max: max
    z.backward(mg.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float64, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 2, 0, 0, 5])   # a tie with a bound: x's
    np.testing.assert_array_equal(lo.grad.numpy(), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(hi.grad.numpy(), [0, 0, 3, 4, 0])
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal(4) - 1, rng.standard_normal((3, 1)) + 1
    assert mg.gradcheck(lambda t, u, v: mg.clamp(t, u, v), leaf(a), leaf(b), leaf(c))  # broadcast
    assert mg.gradgradcheck(lambda t, u, v: mg.clamp(t, min=u, max=v) ** 2, leaf(a), leaf(b), leaf(c))
    np.testing.assert_array_equal(mg.tensor(a).clamp(max=mg.tensor(0.0)).numpy(), np.minimum(a, 0.0))


def test_clamp_numbers_dtypes_and_errors():
    assert mg.clamp(mg.tensor([1, 2, 3]), min=1.5).dtype == np.float32  # as PyTorch
    assert mg.clamp(mg.tensor([1, 2, 3]), min=2).tolist() == [2, 2, 3]
    assert mg.clamp is mg.clip and mg.tensor([5.0]).clamp(0, 1).item() == 1.0
    with pytest.raises(ValueError, match="clip: at least one of min and max"):
        mg.clamp(mg.ones(2))
    with pytest.raises(TypeError, match="clip: min and max must be numbers, tensors or None, got str"):
        mg.clamp(mg.ones(2), min="0")


@pytest.mark.torch
def test_clamp_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) - 0.5, rng.standard_normal(4) + 0.5
    ours = [leaf(v) for v in (a, b, c)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (a, b, c)]
    z1, z2 = mg.clamp(*ours), torch.clamp(*theirs)
    np.testing.assert_array_equal(z1.numpy(), z2.detach().numpy())
    g = rng.standard_normal((3, 4))
    z1.backward(mg.tensor(g))
    z2.backward(torch.tensor(g))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-15)


# -- addcmul / addcdiv -----------------------------------------------------------------------------


def test_addcmul_and_addcdiv(device):
    rng = np.random.default_rng(3)
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal(3) + 3
    x, t1, t2 = (mg.tensor(v, device=device) for v in (a, b, c))
    np.testing.assert_allclose(mg.addcmul(x, t1, t2, value=0.5).numpy(), a + 0.5 * b * c, rtol=1e-15)
    np.testing.assert_allclose(x.addcdiv(t1, t2, value=-2).numpy(), a - 2 * b / c, rtol=1e-15)
    assert mg.gradgradcheck(lambda u, v, w: mg.addcdiv(u, v, w, value=0.3), leaf(a), leaf(b), leaf(c))
    v = mg.tensor(a.copy(), device=device)
    assert v.mul_(0.9).addcmul_(t1, t1, value=0.1) is v  # Adam's second moment, PyTorch style
    np.testing.assert_allclose(v.numpy(), 0.9 * a + 0.1 * b * b, rtol=1e-15)
    v.addcdiv_(t1, t2)
    np.testing.assert_allclose(v.numpy(), 0.9 * a + 0.1 * b * b + b / c, rtol=1e-14)


def test_in_place_addcmul_is_recorded_when_gradients_flow():
    w = leaf([1.0, 2.0])
    h = w * 1.0
    h.addcmul_(w, w, value=3.0)  # h = w + 3 w^2: dh/dw = 1 + 6 w
    h.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [7.0, 13.0])


# -- repeat, index_select, contiguous, view_as, expand_as, type_as ------------------------------


@pytest.mark.parametrize("shape, sizes", [((2, 3), (2, 1)), ((3,), (2, 2)), ((2, 1, 3), (1, 4, 2)), ((), (3,)),
                                          ((2, 3), (0, 2))])
def test_repeat_is_numpy_tile_and_sums_the_gradient_of_the_copies(shape, sizes, device):
    a = np.random.default_rng(4).standard_normal(shape)
    x = leaf(a, device)
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


def test_index_select_gathers_and_accumulates(device, monkeypatch):
    a = np.random.default_rng(5).standard_normal((3, 4))
    x = leaf(a, device)
    idx = mg.tensor([2, 0, 2], device=device)
    np.testing.assert_array_equal(x.index_select(1, idx).numpy(), a[:, [2, 0, 2]])
    np.testing.assert_array_equal(mg.index_select(x, 0, [1]).numpy(), a[[1]])
    x.index_select(-1, idx).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.tile([1.0, 0.0, 2.0, 0.0], (3, 1)))
    assert mg.gradgradcheck(lambda t: t.index_select(0, mg.tensor([2, 2, 1])) ** 2, leaf(a))
    with pytest.raises(ValueError, match="index_select: index must be a 0-d or 1-D integer tensor"):
        x.index_select(0, mg.tensor([[0]]))
    if device != "cpu":  # the GPU checks indices in a kernel (traps at the next sync); the host at once under
        monkeypatch.setenv("MINIGRAD_DEBUG", "1")  # MINIGRAD_DEBUG (tests/test_cuda_device.py has the trap)
    with pytest.raises(IndexError, match="3"):
        x.index_select(0, mg.tensor([3], device=device))


def test_contiguous_view_as_expand_as_type_as():
    x = mg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    t = x.T
    assert not t.is_contiguous() and x.is_contiguous()
    c = t.contiguous()
    assert c.is_contiguous() and c.array.flags.c_contiguous and x.contiguous() is x
    np.testing.assert_array_equal(c.view(-1).numpy(), np.arange(6.0).reshape(2, 3).T.reshape(-1))
    (c * mg.tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(6.0).reshape(3, 2).T)
    assert x.view_as(mg.zeros(3, 2)).shape == (3, 2)
    assert mg.ones(3, 1).expand_as(mg.zeros(2, 3, 4)).shape == (2, 3, 4)
    y = mg.tensor([1, 2]).type_as(mg.zeros(1, dtype=np.float64))
    assert y.dtype == np.float64 and y.device == mg.zeros(1).device


# -- indexing with lists and tuples ---------------------------------------------------------------


@pytest.mark.torch
def test_list_and_tuple_indices_as_pytorch():
    torch = pytest.importorskip("torch")
    a = np.arange(24.0).reshape(2, 3, 4)
    x, t = mg.tensor(a), torch.tensor(a)
    for index in [([0, 1], [2, 0]), ((0,), Ellipsis), ((1, 0), slice(None), [3, 3]), (Ellipsis, (0, 2)),
                  ([[0, 1], [1, 0]],), (0, [True, False, True]), [1, 0], ([0], 1, (2, 3))]:
        np.testing.assert_array_equal(x[index].numpy(), t[index].numpy(), err_msg=repr(index))


def test_list_and_tuple_indices_without_torch():
    a = np.arange(16.0).reshape(4, 4)
    x = mg.tensor(a, requires_grad=True)
    np.testing.assert_array_equal(x[[0, 1], [2, 3]].numpy(), [2.0, 7.0])
    assert x[(0,), ...].shape == (1, 4) and x[(0, 2), :].shape == (2, 4)
    x[(0, 0), (1, 1)].sum().backward()  # a repeated position collects both gradients
    assert x.grad.numpy()[0, 1] == 2.0 and x.grad.numpy().sum() == 2.0
    y = mg.zeros(3, 3)
    y[[0, 2], (1, 2)] = 5.0
    assert y.numpy()[0, 1] == 5.0 and y.numpy()[2, 2] == 5.0 and y.numpy().sum() == 10.0
    for ambiguous in ([[0, 1], [2, 3]], [0, slice(None)], [mg.tensor(0), mg.tensor(1)]):
        with pytest.raises(TypeError, match="a list holding sequences, tensors, slices or None as the whole index is ambiguous"):
            x[ambiguous]


# -- creation functions ----------------------------------------------------------------------------


def test_linspace(device):
    np.testing.assert_allclose(mg.linspace(-1, 2, 7, device=device).numpy(), np.linspace(-1, 2, 7), rtol=1e-7)
    assert mg.linspace(0, 1, 5).dtype == np.float32
    assert mg.linspace(0, 1, 5, dtype=np.float64).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert mg.linspace(3, 3, 1).tolist() == [3.0] and mg.linspace(0, 1, 0).shape == (0,)
    with pytest.raises(ValueError, match="linspace: steps must be a non-negative int"):
        mg.linspace(0, 1, -1)


@pytest.mark.torch
def test_linspace_matches_torch_to_float32_rounding():
    """PyTorch computes start + i * step in float32: each value is off by at most about one
    rounding at the scale of the endpoints (ours are the exact values, rounded once)."""
    torch = pytest.importorskip("torch")
    for start, end, steps in [(0, 1, 11), (-3.5, 7.25, 100), (1e3, -1e3, 7)]:
        ours, theirs = mg.linspace(start, end, steps).numpy(), torch.linspace(start, end, steps).numpy()
        ulp = np.spacing(np.float32(max(abs(start), abs(end))))
        assert np.all(np.abs(ours - theirs) <= 2 * ulp)


def test_randperm_is_a_seeded_permutation_with_uniform_positions(device):
    mg.manual_seed(0)
    p = mg.randperm(10, device=device)
    assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(10))
    mg.manual_seed(0)
    assert mg.randperm(10, device=device).tolist() == p.tolist()
    assert mg.randperm(0).shape == (0,)
    # where does 0 land, over 4000 permutations of 4: each place with probability 1/4
    counts = np.bincount([mg.randperm(4).tolist().index(0) for _ in range(4000)], minlength=4)
    sigma = math.sqrt(4000 * 0.25 * 0.75)
    assert np.all(np.abs(counts - 1000) < 5 * sigma)
    with pytest.raises(ValueError, match="randperm: n must be a non-negative int"):
        mg.randperm(-2)


def test_rand_like_and_randn_like(device):
    t = mg.zeros(2000, 3, dtype=np.float64, device=device)
    u, z = mg.rand_like(t), mg.randn_like(t)
    assert u.shape == z.shape == t.shape and u.dtype == z.dtype == np.float64 and u.device == t.device
    assert 0 <= u.numpy().min() and u.numpy().max() < 1
    assert abs(z.numpy().mean()) < 5 / math.sqrt(6000) and abs(z.numpy().std() - 1) < 0.05
    assert mg.randn_like(t, dtype=np.float32).dtype == np.float32
    assert mg.rand_like(t, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="randn_like: random values need a floating dtype, got int64"):
        mg.randn_like(mg.tensor([1, 2]))


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_frequencies(replacement, device):
    """With replacement: each draw is category i with probability w_i / sum(w).  Without: the
    first draw is too; the second is proportional to the weights left (checked for one pair)."""
    mg.manual_seed(1)
    w = np.array([[1.0, 0.0, 3.0, 4.0], [0.0, 0.0, 2.0, 2.0]])
    n = 4000
    if replacement:
        draws = mg.multinomial(mg.tensor(w, device=device), n, replacement=True).numpy()
        assert draws.shape == (2, n) and draws.dtype == np.int64
        for row, weights in zip(draws, w):
            p = weights / weights.sum()
            counts = np.bincount(row, minlength=4)
            assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1e-9)
        return
    firsts, pairs = [], 0
    for _ in range(n):
        d = mg.multinomial(mg.tensor(w[0], device=device), 2).tolist()
        assert d[0] != d[1] and 1 not in d  # no repeats, and a zero weight is never drawn
        firsts.append(d[0])
        pairs += d == [3, 2]
    p = w[0] / w[0].sum()
    counts = np.bincount(firsts, minlength=4)
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1e-9)
    q = (4 / 8) * (3 / 4)  # P(first 3, then 2) = w3 / 8 * w2 / (8 - w3)
    assert abs(pairs - n * q) <= 5 * math.sqrt(n * q * (1 - q))


def test_multinomial_errors_and_method():
    w = mg.tensor([0.2, 0.8])
    assert w.multinomial(3, replacement=True).shape == (3,)
    assert sorted(mg.multinomial(w, 2).tolist()) == [0, 1]
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement"):
        mg.multinomial(w, 3)
    with pytest.raises(ValueError, match="multinomial: invalid distribution"):
        mg.multinomial(mg.tensor([0.0, 0.0]), 1)
    with pytest.raises(ValueError, match="multinomial: invalid distribution"):
        mg.multinomial(mg.tensor([1.0, -1.0, 2.0]), 1)
    with pytest.raises(TypeError, match="multinomial: expected a 1-D or 2-D floating-point tensor"):
        mg.multinomial(mg.tensor([1, 2]), 1)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        mg.multinomial(w, 0)


# -- F.normalize, and PyTorch parity of the compositions above ----------------------------------


def test_normalize_makes_unit_vectors_and_guards_zero():
    F = mg.nn.functional
    a = np.array([[3.0, 4.0], [0.0, 0.0]])
    x = leaf(a)
    y = F.normalize(x, dim=1)
    np.testing.assert_allclose(y.numpy(), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-15)  # 0 / max(0, eps) = 0
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    assert mg.gradgradcheck(lambda t: F.normalize(t, p=3, dim=0), leaf([[1.0, -2.0], [0.5, 3.0]]))


@pytest.mark.torch
def test_compositions_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal(4) + 3
    cases = [
        (lambda m, t: m.cumsum(t[0], 1), lambda t: torch.cumsum(t[0], 1)),
        (lambda m, t: t[0].repeat(2, 1, 3), lambda t: t[0].repeat(2, 1, 3)),
        (lambda m, t: t[0].index_select(1, m.tensor([3, 0, 3])), lambda t: t[0].index_select(1, torch.tensor([3, 0, 3]))),
        (lambda m, t: m.addcmul(t[0], t[1], t[2], value=0.5), lambda t: torch.addcmul(t[0], t[1], t[2], value=0.5)),
        (lambda m, t: m.addcdiv(t[0], t[1], t[2], value=-2), lambda t: torch.addcdiv(t[0], t[1], t[2], value=-2)),
        (lambda m, t: m.nn.functional.normalize(t[0], dim=0), lambda t: torch.nn.functional.normalize(t[0], dim=0)),
        (lambda m, t: t[0].T.contiguous().view_as(t[1]), lambda t: t[0].T.contiguous().view_as(t[1])),
        (lambda m, t: t[2][None].expand_as(t[0]) * t[0], lambda t: t[2][None].expand_as(t[0]) * t[0]),
    ]
    g = rng.standard_normal
    for ours_fn, theirs_fn in cases:
        ours = [leaf(v) for v in (a, b, c)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (a, b, c)]
        y1, y2 = ours_fn(mg, ours), theirs_fn(theirs)
        np.testing.assert_allclose(y1.numpy(), y2.detach().numpy(), rtol=1e-13, atol=1e-14)
        up = g(y1.shape)
        y1.backward(mg.tensor(up))
        y2.backward(torch.tensor(up))
        for o, t in zip(ours, theirs):
            if t.grad is not None:
                np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-13, atol=1e-14)
    for name in ("all", "any"):
        for dim in (None, 0, 1):
            m = a > 0.5
            ours = getattr(mg.tensor(m), name)() if dim is None else getattr(mg.tensor(m), name)(dim)
            theirs = getattr(torch.tensor(m), name)() if dim is None else getattr(torch.tensor(m), name)(dim)
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
