"""Tensor (minigrad/tensor.py): creation functions (linspace too), dtypes, conversions, seeding
and the random functions (randperm, rand_like, randn_like, multinomial), attributes, contiguous,
view_as, expand_as, type_as."""
import math

import numpy as np
import pytest

import minigrad as mg


# -- creation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make, expected", [
    (lambda: mg.tensor([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)),
    (lambda: mg.tensor(2.5), np.array(2.5, np.float32)),
    (lambda: mg.zeros(2, 3), np.zeros((2, 3), np.float32)),
    (lambda: mg.zeros((2, 3)), np.zeros((2, 3), np.float32)),
    (lambda: mg.ones(4), np.ones(4, np.float32)),
    (lambda: mg.ones(()), np.ones((), np.float32)),
    (lambda: mg.full((2, 2), 7.0), np.full((2, 2), 7.0, np.float32)),
    (lambda: mg.full(3, 7), np.full(3, 7, np.int64)),
    (lambda: mg.full(2, True), np.full(2, True)),
    (lambda: mg.arange(5), np.arange(5, dtype=np.int64)),
    (lambda: mg.arange(1, 7, 2), np.arange(1, 7, 2, dtype=np.int64)),
    (lambda: mg.arange(0.0, 1.0, 0.25), np.arange(0.0, 1.0, 0.25, dtype=np.float32)),
    (lambda: mg.eye(3), np.eye(3, dtype=np.float32)),
    (lambda: mg.eye(2, 3), np.eye(2, 3, dtype=np.float32)),
    (lambda: mg.zeros_like(mg.ones(2, dtype=mg.float64)), np.zeros(2)),
    (lambda: mg.ones_like(mg.zeros(2, 2)), np.ones((2, 2), np.float32)),
    (lambda: mg.ones_like(mg.arange(3)), np.ones(3, np.int64)),
    (lambda: mg.zeros(0, 3), np.zeros((0, 3), np.float32)),
])
def test_creation_functions(make, expected):
    t = make()
    assert isinstance(t, mg.Tensor)
    assert t.dtype == expected.dtype and t.shape == expected.shape
    np.testing.assert_array_equal(t.numpy(), expected)
    assert not t.requires_grad and t.is_leaf


def test_empty_has_shape_and_dtype():
    e = mg.empty(2, 3)
    assert e.shape == (2, 3) and e.dtype == np.float32
    assert mg.empty((4,), dtype=mg.float64).dtype == np.float64


def test_creation_with_requires_grad_and_dtype():
    for t in (mg.zeros(2, requires_grad=True), mg.ones(2, dtype=mg.float64, requires_grad=True),
              mg.rand(2, requires_grad=True), mg.randn(2, requires_grad=True),
              mg.tensor([1.0], requires_grad=True), mg.eye(2, requires_grad=True)):
        assert t.requires_grad and t.is_leaf and t.grad is None


def test_tensor_copies_but_from_numpy_shares():
    a = np.array([1.0, 2.0])
    t, shared = mg.tensor(a), mg.from_numpy(a)
    a[0] = 9.0
    assert t.tolist() == [1.0, 2.0]
    assert shared.tolist() == [9.0, 2.0] and shared.dtype == np.float64
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray, got list"):
        mg.from_numpy([1.0])
    u = mg.tensor(t)  # from a Tensor: a copy, too
    t.array[0] = 5.0
    assert u.tolist() == [1.0, 2.0]


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
# -- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], np.float32), (1.5, np.float32), ([1, 2], np.int64), (3, np.int64),
    ([True, False], np.bool_), (np.array([1.0, 2.0]), np.float64),
    (np.array([1, 2], dtype=np.int32), np.int32), (np.float32(1.0), np.float32),
])
def test_dtype_defaults(data, dtype):
    """Python floats become float32; NumPy arrays keep their dtype (float64 stays float64)."""
    assert mg.tensor(data).dtype == dtype


def test_default_dtype_can_be_changed_and_restored():
    assert mg.get_default_dtype() == np.float32
    mg.set_default_dtype(mg.float64)
    try:
        assert mg.tensor([1.0]).dtype == np.float64 and mg.zeros(2).dtype == np.float64
    finally:
        mg.set_default_dtype(mg.float32)
    assert mg.tensor([1.0]).dtype == np.float32
    with pytest.raises(TypeError, match="expected a floating dtype"):
        mg.set_default_dtype(np.int64)


def test_astype_float_double():
    t = mg.tensor([1.5, -2.0])
    assert t.double().dtype == np.float64 and t.double().float().dtype == np.float32
    assert t.astype(np.int64).tolist() == [1, -2]
    assert t.long().dtype == np.int64 and t.int().dtype == np.int32
    assert t.bool().tolist() == [True, True]
    assert mg.tensor([1, 0]).float().tolist() == [1.0, 0.0]
    assert t.float() is t  # already float32: no copy, no op
    assert t.to(dtype=mg.float64).dtype == np.float64 and t.to("cpu") is t


# -- leaving minigrad -------------------------------------------------------------------------


def test_numpy_item_tolist_array_len():
    t = mg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(t.numpy(), np.ndarray) and t.numpy().dtype == np.float32
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert mg.tensor(2.5).item() == 2.5 and isinstance(mg.tensor(2.5).item(), float)
    assert mg.tensor([7]).item() == 7 and isinstance(mg.tensor([7]).item(), int)
    with pytest.raises(ValueError, match=r"item\(\): only one-element tensors.*\(2, 2\)"):
        t.item()
    a = np.asarray(t)
    assert a.shape == (2, 2) and a.dtype == np.float32
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert len(t) == 2 and len(mg.zeros(5, 1)) == 5
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(mg.tensor(1.0))
    assert float(mg.tensor(1.5)) == 1.5 and int(mg.tensor(3)) == 3


def test_repr():
    assert repr(mg.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert repr(mg.tensor([1, 2])) == "tensor([1, 2], dtype=int64)"
    assert repr(mg.tensor([1.0], dtype=mg.float64)) == "tensor([1.], dtype=float64)"
    x = mg.tensor([1.0], requires_grad=True)
    assert repr(x) == "tensor([1.], requires_grad=True)"
    assert repr(x * 2) == "tensor([2.], grad_fn=<Mul>)"
    assert repr(mg.tensor(3.0)) == "tensor(3.)"


# -- randomness -------------------------------------------------------------------------------


RANDOM = {
    "rand": lambda: mg.rand(3, 4),
    "randn": lambda: mg.randn(3, 4),
    "randint": lambda: mg.randint(0, 10, size=(3, 4)),
    "rand64": lambda: mg.rand(5, dtype=mg.float64),
    "uniform_": lambda: mg.empty(4).uniform_(-1, 1),
    "normal_": lambda: mg.empty(4).normal_(0, 2),
}


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_manual_seed_makes_every_random_function_repeatable(name):
    make = RANDOM[name]
    mg.manual_seed(123)
    a = make().numpy().copy()
    b = make().numpy().copy()
    mg.manual_seed(123)
    np.testing.assert_array_equal(make().numpy(), a)
    np.testing.assert_array_equal(make().numpy(), b)
    assert not np.array_equal(a, b)  # successive draws differ
    mg.manual_seed(124)
    assert not np.array_equal(make().numpy(), a)


def test_random_distributions_and_dtypes():
    mg.manual_seed(0)
    u = mg.rand(10_000)
    assert u.dtype == np.float32 and 0.0 <= u.numpy().min() and u.numpy().max() < 1.0
    assert abs(u.numpy().mean() - 0.5) < 0.02
    n = mg.randn(10_000, dtype=mg.float64)
    assert n.dtype == np.float64 and abs(n.numpy().mean()) < 0.05 and abs(n.numpy().std() - 1) < 0.05
    i = mg.randint(5, size=(1000,))
    assert i.dtype == np.int64 and set(np.unique(i.numpy())) == set(range(5))
    assert mg.randint(3, 4, ()).shape == () and mg.randint(3, 4, ()).item() == 3


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
# -- attributes -------------------------------------------------------------------------------


def test_shape_ndim_size_dtype_device_is_leaf():
    x = mg.zeros(2, 3, 4, requires_grad=True)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.dim() == 3
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4 and x.numel() == 24
    assert x.dtype == np.float32
    assert x.device == "cpu" and x.device == mg.Device("cpu") and str(x.device) == "cpu"
    assert x.is_leaf and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf and y.grad_fn.name == "Mul"
    s = mg.tensor(1.0)
    assert s.shape == () and s.ndim == 0 and s.numel() == 1 and s.size() == ()


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        mg.zeros(2, device="tpu")


def test_data_is_a_detached_tensor_sharing_memory_as_in_pytorch():
    """``.data`` is a Tensor off the tape that shares memory: PyTorch's init idioms write
    through it (``m.weight.data.normal_(0, 0.02)``, ``p.data.zero_()``); ``.array`` is the raw
    array."""
    w = mg.nn.Parameter(mg.ones(2, 3))
    d = w.data
    assert isinstance(d, mg.Tensor) and not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.array, w.array)
    w.data.zero_()
    assert not w.array.any()
    w.data.fill_(2.0)
    w.data.copy_(mg.tensor([1.0, 2.0, 3.0]))   # broadcast over rows
    np.testing.assert_array_equal(w.numpy(), [[1, 2, 3], [1, 2, 3]])
    w.data.normal_(0, 0.02)
    assert w.array.std() > 0 and np.abs(w.array).max() < 1.0
    assert w.requires_grad and w.is_leaf      # still the same trainable leaf


def test_a_write_through_data_is_caught_by_a_record_that_saved_the_tensor():
    """Unlike PyTorch, ``.data`` shares the version counter: editing a saved input through it
    before backward raises instead of giving a gradient for values that are gone."""
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    w.data.mul_(3)
    with pytest.raises(RuntimeError, match="modified"):
        y.backward()


def test_assigning_data_replaces_the_values_and_invalidates_saved_records():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    w.data = mg.tensor([5.0, 6.0, 7.0])     # any shape, as in PyTorch
    assert w.shape == (3,) and w.requires_grad
    with pytest.raises(RuntimeError, match="modified"):
        y.backward()
    with pytest.raises(TypeError, match="data: expected a Tensor or an array"):
        w.data = [1, 2]


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
