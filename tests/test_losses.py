"""Losses (minigrad/ops/loss.py and nn.*Loss): values against plain NumPy formulas, gradient
checks, stability, error messages, and parity with torch.nn.functional when torch is installed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from tests.coverage import covers
from tests.strategies import arrays, relayout

REDUCTIONS = ["mean", "sum", "none"]


def t(a, requires_grad=False):
    return mg.from_numpy(a).requires_grad_(requires_grad)


@st.composite
def logits_and_labels(draw, min_n=0, max_n=5, max_c=5, low=-5.0, high=5.0):
    """(N, C) float64 logits in a random layout (C-contiguous, transposed or strided) and labels."""
    n = draw(st.integers(min_n, max_n))
    c = draw(st.integers(1, max_c))
    x = draw(arrays((n, c), low=low, high=high))
    y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    return x, y


def np_log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def np_reduce(losses, reduction):
    if reduction == "mean":
        return losses.mean() if losses.size else np.nan
    return losses.sum() if reduction == "sum" else losses


def np_cross_entropy(x, y, reduction="mean", smoothing=0.0):
    n, c = x.shape
    logp = np_log_softmax(x) if n else x
    q = np.full((n, c), smoothing / c)
    q[np.arange(n), y] += 1 - smoothing
    return np_reduce(-(q * logp).sum(axis=1), reduction)


# -- cross_entropy ---------------------------------------------------------------------------


@given(logits_and_labels(), st.sampled_from(REDUCTIONS), st.sampled_from([0.0, 0.1, 1.0]))
def test_cross_entropy_forward(c, reduction, smoothing):
    x, y = c
    out = F.cross_entropy(t(x), t(y), reduction=reduction, label_smoothing=smoothing)
    expected = np_cross_entropy(x, y, reduction, smoothing)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert out.shape == ((x.shape[0],) if reduction == "none" else ())


@given(logits_and_labels(min_n=1), st.sampled_from(REDUCTIONS))
def test_cross_entropy_backward_is_softmax_minus_onehot(c, reduction):
    x, y = c
    xt = t(x, True)
    F.cross_entropy(xt, t(y), reduction=reduction).sum().backward()
    n, k = x.shape
    p = np.exp(np_log_softmax(x))
    onehot = np.eye(k)[y]
    expected = (p - onehot) / (n if reduction == "mean" else 1)
    np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


@covers("CrossEntropy")
@given(logits_and_labels(min_n=1, max_n=4, max_c=4), st.sampled_from(REDUCTIONS),
       st.sampled_from([0.0, 0.25]))
def test_cross_entropy_gradcheck(c, reduction, smoothing):
    x, y = c
    assert mg.gradcheck(lambda a: F.cross_entropy(a, t(y), reduction=reduction, label_smoothing=smoothing),
                        t(x, True))


def test_cross_entropy_is_once_differentiable():
    x = mg.randn(3, 4, dtype=np.float64, requires_grad=True)
    loss = F.cross_entropy(x, mg.tensor([0, 3, 1]))
    (g,) = mg.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError, match="CrossEntropy is once-differentiable"):
        g.sum().backward()
    # the twice-differentiable route gives the same first derivative
    (g2,) = mg.grad(F.nll_loss(F.log_softmax(x, dim=1), mg.tensor([0, 3, 1])), x)
    np.testing.assert_allclose(g.numpy(), g2.numpy(), rtol=1e-12)


def test_cross_entropy_huge_logits_are_stable():
    x = mg.tensor([[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0], [500.0, 500.0, 500.0]], requires_grad=True)
    y = mg.tensor([0, 0, 2])
    loss = F.cross_entropy(x, y, reduction="none")
    assert x.dtype == loss.dtype == np.float32
    np.testing.assert_allclose(loss.numpy(), [0.0, 6e4, np.log(3)], rtol=1e-6)
    loss.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    np.testing.assert_allclose(x.grad.numpy()[1], [-1.0, 1.0, 0.0], atol=1e-7)


def test_cross_entropy_empty_batch():
    x = mg.zeros(0, 3, requires_grad=True)
    y = mg.tensor(np.zeros(0, dtype=np.int64))
    assert np.isnan(F.cross_entropy(x, y).item())  # the mean of nothing, as in PyTorch
    assert F.cross_entropy(x, y, reduction="sum").item() == 0.0
    assert F.cross_entropy(x, y, reduction="none").shape == (0,)


def test_cross_entropy_label_smoothing_one_is_uniform_target():
    x = np.array([[2.0, -1.0, 0.5]])
    expected = -np_log_softmax(x).mean()
    np.testing.assert_allclose(F.cross_entropy(t(x), mg.tensor([1]), label_smoothing=1.0).item(), expected)


# -- nll_loss -----------------------------------------------------------------------------------


@given(logits_and_labels(), st.sampled_from(REDUCTIONS))
def test_nll_loss_forward(c, reduction):
    x, y = c
    out = F.nll_loss(t(x), t(y), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), np_reduce(-x[np.arange(len(y)), y], reduction), rtol=1e-14)
    if x.shape[0]:
        np.testing.assert_allclose(F.nll_loss(F.log_softmax(t(x), dim=1), t(y), reduction=reduction).numpy(),
                                   F.cross_entropy(t(x), t(y), reduction=reduction).numpy(), rtol=1e-12, atol=1e-14)


@covers("NLLLoss", twice=True)
@given(logits_and_labels(min_n=1, max_n=4, max_c=4), st.sampled_from(REDUCTIONS))
def test_nll_loss_gradcheck(c, reduction):
    x, y = c
    fn = lambda a: F.nll_loss(a, t(y), reduction=reduction)  # noqa: E731
    assert mg.gradcheck(fn, t(x, True))
    assert mg.gradgradcheck(fn, t(x, True))


@covers("NLLLoss", "LogSoftmax", twice=True)
def test_nll_of_log_softmax_second_derivative():
    x = np.random.default_rng(0).standard_normal((3, 4))
    fn = lambda a: F.nll_loss(F.log_softmax(a, dim=1), mg.tensor([1, 0, 3]))  # noqa: E731
    assert mg.gradcheck(fn, t(x, True))
    assert mg.gradgradcheck(fn, t(x, True))


# -- binary_cross_entropy_with_logits -------------------------------------------------------------------


@given(st.data(), st.sampled_from(REDUCTIONS))
def test_bce_with_logits_forward(data, reduction):
    shape = data.draw(st.lists(st.integers(0, 4), max_size=3).map(tuple))
    x = data.draw(arrays(shape, low=-20, high=20))
    y = data.draw(arrays(shape, low=0, high=1))
    s = 1 / (1 + np.exp(-x))
    naive = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    out = F.binary_cross_entropy_with_logits(t(x), t(y), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), np_reduce(naive, reduction), rtol=1e-7, atol=1e-12)


def test_bce_with_logits_is_stable_for_large_logits():
    x = mg.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    y = mg.tensor([0.0, 1.0, 0.5, 0.0, 1.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0.0, 50.0, np.log(2), 50.0, 0.0], rtol=1e-6, atol=1e-7)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, -1.0, 0.0, 1.0, 0.0], atol=1e-7)


@covers("BCEWithLogits", twice=True)
@given(st.data(), st.sampled_from(REDUCTIONS))
def test_bce_with_logits_gradcheck(data, reduction):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple))
    x = data.draw(arrays(shape, low=-4, high=4))
    y = data.draw(arrays(shape, low=0, high=1))
    fn = lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction)  # noqa: E731
    assert mg.gradcheck(fn, t(x, True), t(y, True))
    assert mg.gradgradcheck(fn, t(x, True), t(y, True))


# -- mse_loss --------------------------------------------------------------------------------------------


@given(st.data(), st.sampled_from(REDUCTIONS))
def test_mse_loss_forward_and_gradcheck(data, reduction):
    shape = data.draw(st.lists(st.integers(1, 3), max_size=3).map(tuple))
    x = data.draw(arrays(shape))
    y = data.draw(arrays(shape))
    out = F.mse_loss(t(x), t(y), reduction)
    np.testing.assert_allclose(out.numpy(), np_reduce((x - y) ** 2, reduction), rtol=1e-13)
    assert mg.gradcheck(lambda a, b: F.mse_loss(a, b, reduction), t(x, True), t(y, True))
    assert mg.gradgradcheck(lambda a, b: F.mse_loss(a, b, reduction), t(x, True), t(y, True))


def test_mse_loss_accepts_non_contiguous_and_numbers():
    x = relayout(np.arange(6.0).reshape(2, 3), "F")
    np.testing.assert_allclose(F.mse_loss(t(x), t(np.zeros((2, 3)))).item(), (np.arange(6.0) ** 2).mean())
    assert F.mse_loss(mg.tensor(3.0), 1.0).item() == 4.0


# -- loss modules -------------------------------------------------------------------------------------------


def test_loss_modules_match_functional_forms():
    rng = np.random.default_rng(0)
    x = t(rng.standard_normal((4, 3)))
    y = t(np.array([0, 2, 1, 2]))
    z = t(rng.uniform(size=(4, 3)))
    assert nn.CrossEntropyLoss()(x, y).item() == F.cross_entropy(x, y).item()
    assert nn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")(x, y).item() == \
        F.cross_entropy(x, y, reduction="sum", label_smoothing=0.1).item()
    assert nn.NLLLoss()(x, y).item() == F.nll_loss(x, y).item()
    assert nn.MSELoss(reduction="sum")(x, z).item() == F.mse_loss(x, z, "sum").item()
    np.testing.assert_array_equal(nn.BCEWithLogitsLoss(reduction="none")(x, z).numpy(),
                                  F.binary_cross_entropy_with_logits(x, z, reduction="none").numpy())
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"


# -- errors -----------------------------------------------------------------------------------------------


def test_label_errors():
    x = mg.randn(3, 10)
    with pytest.raises(ValueError, match=r"target label 10 is out of range for 10 classes \(valid labels are 0 to 9; ignore_index=-100"):
        F.cross_entropy(x, mg.tensor([1, 10, 2]))
    with pytest.raises(ValueError, match="target label -1 is out of range for 10 classes"):
        F.nll_loss(x, mg.tensor([1, -1, 2]))
    with pytest.raises(TypeError, match="integer class labels .* got dtype float32"):
        F.cross_entropy(x, mg.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"expected target of shape \(3,\).*got target shape \(4,\) for input "
                                         r"shape \(3, 10\) \(batch size mismatch\)"):
        F.cross_entropy(x, mg.tensor([1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"got target shape \(3, 1\)"):
        F.cross_entropy(x, mg.tensor([[1], [2], [3]]))


def test_input_shape_and_dtype_errors():
    with pytest.raises(ValueError, match=r"cross_entropy: expected input of shape \(N, C\).*got a 0-d tensor"):
        F.cross_entropy(mg.tensor(1.0), mg.tensor(0))
    with pytest.raises(ValueError, match=r"expected target of shape \(\) .*got target shape \(1,\) for input shape \(10,\)"):
        F.cross_entropy(mg.randn(10), mg.tensor([3]))
    with pytest.raises(ValueError, match=r"expected target of shape \(2, 4\) .*got target shape \(2,\) for input shape \(2, 3, 4\)"):
        F.cross_entropy(mg.randn(2, 3, 4), mg.tensor([0, 1]))
    with pytest.raises(TypeError, match="must be floating point"):
        F.cross_entropy(mg.tensor([[1, 2]]), mg.tensor([0]))
    with pytest.raises(ValueError, match="has no classes"):
        F.cross_entropy(mg.zeros(0, 0), mg.tensor(np.zeros(0, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(3, 1\) differs from input shape \(3,\)"):
        F.mse_loss(mg.randn(3), mg.randn(3, 1))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape \(2,\) differs"):
        F.binary_cross_entropy_with_logits(mg.randn(2, 2), mg.rand(2))


def test_option_errors():
    x, y = mg.randn(2, 3), mg.tensor([0, 1])
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(x, y, reduction="avg")
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="max")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(x, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=-0.1)


# -- parity with torch --------------------------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_torch_parity_cross_entropy_and_nll(reduction, smoothing):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5)) * 3
    y = rng.integers(0, 5, 6)
    xt = torch.tensor(x, requires_grad=True)
    ours = t(x.copy(), True)
    upstream = rng.standard_normal(6) if reduction == "none" else np.array(1.7)
    theirs = torch.nn.functional.cross_entropy(xt, torch.tensor(y), reduction=reduction, label_smoothing=smoothing)
    mine = F.cross_entropy(ours, t(y), reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), rtol=1e-12)
    theirs.backward(torch.tensor(upstream))
    mine.backward(t(upstream.copy()))
    np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-15)

    xt.grad = None
    ours.grad = None
    theirs = torch.nn.functional.nll_loss(xt, torch.tensor(y), reduction=reduction)
    mine = F.nll_loss(ours, t(y), reduction=reduction)
    np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), rtol=1e-14)
    theirs.backward(torch.tensor(upstream))
    mine.backward(t(upstream.copy()))
    np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=1e-14)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_parity_mse_and_bce(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3)) * 5
    y = rng.uniform(size=(4, 3))
    upstream = rng.standard_normal((4, 3)) if reduction == "none" else np.array(0.6)
    for ours_fn, torch_fn in [(F.mse_loss, torch.nn.functional.mse_loss),
                              (F.binary_cross_entropy_with_logits,
                               torch.nn.functional.binary_cross_entropy_with_logits)]:
        xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
        xo, yo = t(x.copy(), True), t(y.copy(), True)
        theirs = torch_fn(xt, yt, reduction=reduction)
        mine = ours_fn(xo, yo, reduction=reduction)
        np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), rtol=1e-13)
        theirs.backward(torch.tensor(upstream))
        mine.backward(t(upstream.copy()))
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(yo.grad.numpy(), yt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.torch
def test_torch_parity_float32_training_loss():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((32, 10)) * 4).astype(np.float32)
    y = rng.integers(0, 10, 32)
    xt = torch.tensor(x, requires_grad=True)
    ours = t(x.copy(), True)
    theirs = torch.nn.functional.cross_entropy(xt, torch.tensor(y))
    mine = F.cross_entropy(ours, t(y))
    assert mine.dtype == np.float32
    np.testing.assert_allclose(mine.item(), theirs.item(), rtol=1e-6)
    theirs.backward()
    mine.backward()
    np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-8)
