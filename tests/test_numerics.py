"""Numerical regressions, on every kernel table (numba "cpu", the readable
"reference", and the CUDA C under its CPU emulator): the softmax family computed from the row
maximum, integer max pooling, and the siblings the extreme-value test (tests/test_extremes.py)
found.  Each test failed before its fix."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import backend
from tests.tables import TABLES

U = 2.0 ** -24  # float32's unit roundoff


@pytest.fixture(params=TABLES)
def table(request):
    """The kernel table NumPy arrays go to (MINIGRAD_CPU_KERNELS), restored afterwards."""
    previous = backend.set_cpu_kernels(request.param)
    yield request.param
    backend.set_cpu_kernels(previous)


def test_cross_entropy_gradient_at_huge_equal_logits(table):
    """The row [-1e4, 1e4, 1e4] in float32 with target 0 (three such rows, mean):
    softmax = [0, 1/2, 1/2], so dL/dx = [-1, 1/2, 1/2] / 3 = [-0.33333, 0.16667, 0.16667], as
    PyTorch gives.  exp(x - lse) with lse = 1e4 + log 2 rounded to float32's spacing there
    (2^-10 ~ 1e-3) gave 0.16663; exp(x - max) / sum is exact up to a few roundings: the
    bound is 8 U relative (exp within 4 ulp, the division, the scaling by 1/3)."""
    x = mg.tensor([[-1e4, 1e4, 1e4]] * 3, dtype=mg.float32, requires_grad=True)
    F.cross_entropy(x, mg.tensor([0, 0, 0])).backward()
    np.testing.assert_allclose(x.grad.numpy(), [[-1 / 3, 1 / 6, 1 / 6]] * 3, rtol=8 * U)
    assert abs(x.grad.numpy()[0, 1] - 0.16667) < 1e-5


@pytest.mark.parametrize("magnitude", [1e4, 1e6, 1e20, 3e38])
def test_softmax_family_gradients_at_huge_logits(table, magnitude):
    """Rows o + [0, 0, -1, -2] with o from 1e4 to 3e38: float32 rounds o + e to o where e is
    below o's spacing, so the rows the kernels see are read back and the truth computed in
    float64 from them; every gradient is within 16 U of it (relative to the largest entry:
    exp, a division and sums of 4 terms)."""
    o = np.float32(magnitude)
    row = (o + np.array([0, 0, -1, -2], np.float32)).astype(np.float32)
    xs = np.stack([row, -row[::-1]])
    x64 = xs.astype(np.float64)
    d = x64 - x64.max(1, keepdims=True)
    p = np.exp(d) / np.exp(d).sum(1, keepdims=True)
    g = np.array([[1.0, -2.0, 0.5, 3.0], [0.25, 1.0, -1.0, 2.0]])

    def grad(fn):
        x = mg.tensor(xs, requires_grad=True)
        fn(x).backward(mg.tensor(g.astype(np.float32)) if fn(x).ndim == 2 else None)
        return x.grad.numpy()

    expected = {
        "softmax": p * (g - (g * p).sum(1, keepdims=True)),
        "log_softmax": g - p * g.sum(1, keepdims=True),
        "logsumexp": p,
        "cross_entropy": (p - np.eye(4)[[1, 3]]) / 2,
    }
    got = {
        "softmax": grad(lambda x: F.softmax(x, 1)),
        "log_softmax": grad(lambda x: F.log_softmax(x, 1)),
        "logsumexp": grad(lambda x: mg.logsumexp(x, 1).sum()),
        "cross_entropy": grad(lambda x: F.cross_entropy(x, mg.tensor([1, 3]))),
    }
    for name in expected:
        scale = np.abs(expected[name]).max() + np.abs(g).max() * (name != "logsumexp")
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=16 * U * scale, err_msg=name)


@pytest.mark.torch
def test_cross_entropy_at_huge_logits_matches_torch(table):
    torch = pytest.importorskip("torch")
    v = np.array([[-1e4, 1e4, 1e4], [3e38, 3e38, -3e38], [1e6, 1e6 - 1, 1e6 - 3]], np.float32)
    t = np.array([0, 1, 2])
    x, tx = mg.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    loss, tloss = F.cross_entropy(x, mg.tensor(t)), torch.nn.functional.cross_entropy(tx, torch.tensor(t))
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=8 * U)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=0, atol=8 * U)  # gradients within [-1, 1]


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint8])
def test_max_pool2d_of_integers_pads_with_the_dtype_minimum(table, dtype):
    """Padding is -inf for floats; an integer tensor is padded with its dtype's minimum (it
    raised OverflowError: cannot convert float infinity to integer), and never wins."""
    info = np.iinfo(dtype)
    x = np.array([[info.min, 3, info.max], [5, info.min, 2], [0, 1, info.min]], dtype=dtype)[None, None]
    out, idx = F.max_pool2d(mg.tensor(x), 2, padding=1, return_indices=True)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy()[0, 0], [[info.min, info.max], [5, 2]])
    assert idx.numpy()[0, 0, 0, 0] == 0  # the real element (its value is the minimum) wins, not the padding
    # against the float pool of the same values (exact for these magnitudes)
    np.testing.assert_array_equal(out.numpy(), F.max_pool2d(mg.tensor(x.astype(np.float64)), 2, padding=1).numpy())


def test_binary_cross_entropy_of_tiny_probabilities(table):
    """log(1 - p) as log1p(-p): for p = 1e-8, 1 - p rounds to 1 in float32 and the loss of a
    target 0 came out as 0 instead of -log(1 - 1e-8) = 1e-8 (PyTorch uses log1p too).
    The gradient in the target, log(1 - p) - log p, likewise."""
    p = mg.tensor([1e-8, 1e-30, 0.5], dtype=mg.float32, requires_grad=True)
    y = mg.tensor([0.0, 0.0, 1.0], dtype=mg.float32, requires_grad=True)
    loss = F.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [1e-8, 1e-30, np.log(2)], rtol=4 * U)
    loss.sum().backward()
    p64 = np.float32([1e-8, 1e-30, 0.5]).astype(np.float64)
    np.testing.assert_allclose(y.grad.numpy(), np.log1p(-p64) - np.log(p64), rtol=8 * U)


def test_logsumexp_gradient_from_the_maximum(table):
    x = mg.tensor([[1e4, 1e4, 1e4 - 1]], dtype=mg.float32, requires_grad=True)
    mg.logsumexp(x, 1).sum().backward()
    e = np.exp([0.0, 0.0, -1.0])
    np.testing.assert_allclose(x.grad.numpy()[0], e / e.sum(), rtol=8 * U)  # (exp(x - lse): 4e-4 off)


def test_gelu_second_derivative_far_out(table):
    """phi(x) (2 - x^2) at x = 1e20 is 0 (phi underflows first), but x * x overflows in
    float32: the double backward computed 0 * -inf = NaN."""
    x = mg.tensor([1e20, -1e20, 0.5], dtype=mg.float32, requires_grad=True)
    (g,) = mg.grad(mg.gelu(x).sum(), x, create_graph=True)
    (h,) = mg.grad(g.sum(), x)
    phi = np.exp(-0.125) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(h.numpy(), [0.0, 0.0, phi * (2 - 0.25)], rtol=16 * U)


def test_gelu_tanh_backward_where_tanh_saturates(table):
    """u = sqrt(2/pi) (x + 0.044715 x^3): for x = 1e20 the x^2 in u' overflows, while 1 - t^2
    is exactly 0: the term is 0 (it was 0 * inf = NaN in the reference and CUDA C)."""
    x = mg.tensor([1e20, -1e20, 3e38], dtype=mg.float32, requires_grad=True)
    mg.gelu(x, approximate="tanh").sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]


def test_pow_backward_forms_the_derivative_before_g():
    """g * (p x^(p-1)), PyTorch's order: (g p) first rounded g = 1e-45 (subnormal) times 0.5
    to 0, and the gradient 1e-45 * 0.5 / sqrt(1.2e-38) = 6.5e-27 came out as 0."""
    x = mg.tensor([1.1754944e-38], dtype=mg.float32, requires_grad=True)
    (g,) = mg.grad(x ** 0.5, x, mg.tensor([1.4e-45], dtype=mg.float32))
    exact = np.float64(np.float32(1.4e-45)) * 0.5 / np.sqrt(np.float64(np.float32(1.1754944e-38)))
    np.testing.assert_allclose(g.numpy(), [exact], rtol=8 * U)
