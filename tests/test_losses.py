"""Losses (minigrad/ops/loss.py and nn.*Loss): values against plain NumPy formulas, gradient
checks, stability, error messages, and parity with torch.nn.functional when torch is installed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from tests.bounds import LIBM_ULPS, assert_within, sum_error
from tests.conftest import DEVICES
from tests.coverage import covers
from tests.helpers import t
from tests.strategies import arrays, relayout

REDUCTIONS = ["mean", "sum", "none"]


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


def np_cross_entropy(x, y, reduction="mean", smoothing=0.0, weight=None, ignore_index=-100):
    """PyTorch's definition, written out: per row -sum_c q_c w_c log p_c with the smoothed
    one-hot q, 0 for ignored rows; the mean divides by the summed weights of the rows kept."""
    n, c = x.shape
    w = np.ones(c) if weight is None else weight
    logp = np_log_softmax(x) if n else x
    kept = y != ignore_index
    q = np.full((n, c), smoothing / c)
    q[np.arange(n)[kept], y[kept]] += 1 - smoothing
    losses = np.where(kept, -(q * w * logp).sum(axis=1), 0.0)
    if reduction == "mean":
        total = w[np.where(kept, y, 0)][kept].sum()
        return losses.sum() / total if total else np.nan
    return losses.sum() if reduction == "sum" else losses


@st.composite
def weighted_case(draw, max_n=5, max_c=4):
    """Logits, labels with some rows set to ignore_index, class weights (or None), ignore_index."""
    x, y = draw(logits_and_labels(max_n=max_n, max_c=max_c))
    ignore_index = draw(st.sampled_from([-100, 0, 2]))
    drop = np.array(draw(st.lists(st.booleans(), min_size=len(y), max_size=len(y))), dtype=bool)
    y = np.where(drop, ignore_index, y)
    weight = draw(st.one_of(st.none(), arrays((x.shape[1],), low=0.1, high=3.0, layout="C")))
    return x, y, weight, ignore_index


# -- cross_entropy ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@given(c=logits_and_labels(), reduction=st.sampled_from(REDUCTIONS), smoothing=st.sampled_from([0.0, 0.1, 1.0]))
def test_cross_entropy_forward(device, c, reduction, smoothing):
    x, y = c
    out = F.cross_entropy(t(x, device=device), t(y, device=device), reduction=reduction, label_smoothing=smoothing)
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


@pytest.mark.parametrize("device", DEVICES)
@given(case=weighted_case(), reduction=st.sampled_from(REDUCTIONS), smoothing=st.sampled_from([0.0, 0.3]))
def test_cross_entropy_weight_and_ignore_index(device, case, reduction, smoothing):
    x, y, w, ignore = case
    xt = t(x, requires_grad=True, device=device)
    wt = None if w is None else t(w, device=device)
    out = F.cross_entropy(xt, t(y, device=device), wt, ignore_index=ignore, reduction=reduction, label_smoothing=smoothing)
    expected = np_cross_entropy(x, y, reduction, smoothing, w, ignore)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)
    # the gradient against nll_loss(log_softmax): the same function from twice-differentiable ops
    if x.shape[0] and reduction != "none" and not smoothing:
        out.backward()
        x2 = t(x, requires_grad=True, device=device)
        F.nll_loss(F.log_softmax(x2, dim=1), t(y, device=device), wt, ignore_index=ignore, reduction=reduction).backward()
        np.testing.assert_allclose(xt.grad.numpy(), x2.grad.numpy(), rtol=1e-12, atol=1e-14)


@covers("CrossEntropy")
@given(weighted_case(max_n=4), st.sampled_from(REDUCTIONS), st.sampled_from([0.0, 0.25]))
def test_cross_entropy_weighted_gradcheck(case, reduction, smoothing):
    x, y, w, ignore = case
    wt = None if w is None else t(w)
    if reduction == "mean" and not np.any(y != ignore):
        return  # every row ignored: the mean is 0/0 = NaN (checked in test_all_ignored_mean_is_nan)
    fn = lambda a: F.cross_entropy(a, t(y), wt, ignore_index=ignore, reduction=reduction,  # noqa: E731
                                   label_smoothing=smoothing)
    assert mg.gradcheck(fn, t(x, True))


def test_cross_entropy_weight_is_third_positional_argument():
    x, y, w = mg.randn(4, 3), mg.tensor([0, 2, 1, 2]), mg.tensor([1.0, 2.0, 0.5])
    expected = np_cross_entropy(x.numpy().astype(np.float64), y.numpy(), weight=w.numpy().astype(np.float64))
    np.testing.assert_allclose(F.cross_entropy(x, y, w).item(), expected, rtol=1e-6)
    np.testing.assert_allclose(F.nll_loss(x, y, w).item(), -(w.numpy()[y.numpy()] * x.numpy()[range(4), y.numpy()]).sum()
                               / w.numpy()[y.numpy()].sum(), rtol=1e-6)
    # the old positional reduction is now refused instead of silently meaning something else
    for fn in (F.cross_entropy, F.nll_loss):
        with pytest.raises(TypeError, match=r"weight must be a Tensor of shape \(3,\).*pass reduction='sum' as a keyword"):
            fn(x, y, "sum")
    with pytest.raises(TypeError):
        F.cross_entropy(x, y, None, -100)  # keyword-only after weight
    with pytest.raises(ValueError, match=r"weight must be a floating Tensor of shape \(3,\).*got shape \(2,\)"):
        F.cross_entropy(x, y, mg.ones(2))
    with pytest.raises(ValueError, match="no gradient flows to weight"):
        F.cross_entropy(x, y, mg.ones(3, requires_grad=True))


def test_all_ignored_mean_is_nan_with_zero_gradient():
    x = mg.randn(3, 4, dtype=np.float64, requires_grad=True)
    y = mg.tensor([-100, -100, -100])
    for fn in (F.cross_entropy, F.nll_loss):
        x.grad = None
        loss = fn(x, y)
        assert np.isnan(loss.item())  # 0 / 0, as in PyTorch
        loss.backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))  # PyTorch: zeros too
        assert fn(x, y, reduction="sum").item() == 0.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_spatial_and_unbatched_inputs(device, reduction):
    """(N, C, d1, d2) logits with (N, d1, d2) labels equal the (N*d1*d2, C) case; (C,) with a 0-d label."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 3, 5))
    y = rng.integers(0, 4, (2, 3, 5))
    y[0, 1, 2] = -100
    w = rng.uniform(0.5, 2, 4)
    flat_x = x.transpose(0, 2, 3, 1).reshape(-1, 4)
    for fn in (F.cross_entropy, F.nll_loss):
        xt = t(x, requires_grad=True, device=device)
        out = fn(xt, t(y, device=device), t(w, device=device), reduction=reduction)
        ft = t(flat_x, requires_grad=True, device=device)
        ref = fn(ft, t(y.reshape(-1), device=device), t(w, device=device), reduction=reduction)
        assert out.shape == ((2, 3, 5) if reduction == "none" else ())
        np.testing.assert_allclose(out.numpy().reshape(-1), ref.numpy().reshape(-1), rtol=1e-13)
        g = rng.standard_normal(out.shape)
        out.backward(t(g, device=device))
        ref.backward(t(g.reshape(ref.shape), device=device))
        np.testing.assert_allclose(xt.grad.numpy().transpose(0, 2, 3, 1).reshape(-1, 4), ft.grad.numpy(), rtol=1e-13)
    single = F.cross_entropy(t(x[0, :, 0, 0], device=device), t(np.array(2), device=device), reduction=reduction)
    assert single.shape == ()
    np.testing.assert_allclose(single.item(), -np_log_softmax(x[0, :, 0, 0][None])[0, 2], rtol=1e-13)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probability_targets(device, reduction):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 2))
    q = rng.uniform(size=(3, 4, 2))
    q /= q.sum(axis=1, keepdims=True)
    w = rng.uniform(0.5, 2, 4)
    out = F.cross_entropy(t(x, device=device), t(q, device=device), t(w, device=device), reduction=reduction, label_smoothing=0.2)
    logp = x - x.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    qs = q * 0.8 + 0.2 / 4
    losses = -(qs * w[:, None] * logp).sum(axis=1)
    expected = {"none": losses, "sum": losses.sum(), "mean": losses.sum() / 6}[reduction]  # mean: over N*d1
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-13)


@covers("LogSoftmax", twice=True)
@given(st.data(), st.sampled_from(REDUCTIONS))
def test_cross_entropy_probability_targets_gradgradcheck(data, reduction):
    """Probability targets are built from ops: differentiable twice, in the logits and the target."""
    x = data.draw(arrays((data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))))
    q = data.draw(arrays(x.shape, low=0.0, high=1.0))
    fn = lambda a, b: F.cross_entropy(a, b, reduction=reduction, label_smoothing=0.1)  # noqa: E731
    assert mg.gradcheck(fn, t(x, True), t(q, True))
    assert mg.gradgradcheck(fn, t(x, True), t(q, True))


def test_bad_labels_give_nan_where_the_check_is_skipped(monkeypatch):
    """On the GPU the label range check (a read-back to the host) runs only under MINIGRAD_DEBUG=1;
    the kernels then give NaN for the rows with a bad label.  Simulated here on the CPU."""
    from minigrad.ops import loss

    monkeypatch.setattr(loss, "_host_checks", lambda array: False)
    x = mg.randn(3, 4, dtype=np.float64, requires_grad=True)
    y = mg.tensor([1, 7, -100])
    losses = F.cross_entropy(x, y, reduction="none").numpy()
    assert np.isfinite(losses[0]) and np.isnan(losses[1]) and losses[2] == 0.0
    F.cross_entropy(x, y, reduction="sum").backward()
    grad = x.grad.numpy()
    assert np.isfinite(grad[0]).all() and np.isnan(grad[1]).all() and (grad[2] == 0).all()
    assert np.isnan(F.nll_loss(x, y).item())
    monkeypatch.undo()
    monkeypatch.setenv("MINIGRAD_DEBUG", "1")
    from minigrad import backend
    assert backend.debug_checks()
    with pytest.raises(ValueError, match="target label 7 is out of range for 4 classes"):
        F.cross_entropy(x, y)


# -- nll_loss -----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@given(c=logits_and_labels(), reduction=st.sampled_from(REDUCTIONS))
def test_nll_loss_forward(device, c, reduction):
    x, y = c
    out = F.nll_loss(t(x, device=device), t(y, device=device), reduction=reduction)
    picked = -x[np.arange(len(y)), y]
    # a sum (or mean) of n picked values, in whatever order the device adds: 2 gamma sum |terms|
    n = max(len(y), 1)
    err = sum_error(np.abs(picked).sum(), n + 1) / (n if reduction == "mean" else 1) if reduction != "none" else 0
    assert_within(out.numpy(), np_reduce(picked, reduction), err)
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


@covers("NLLLoss", twice=True)
@given(weighted_case(max_n=4), st.sampled_from(REDUCTIONS))
def test_nll_loss_weighted_gradcheck(case, reduction):
    x, y, w, ignore = case
    if reduction == "mean" and not np.any(y != ignore):
        return  # every row ignored: NaN (test_all_ignored_mean_is_nan_with_zero_gradient)
    fn = lambda a: F.nll_loss(a, t(y), None if w is None else t(w), ignore_index=ignore, reduction=reduction)  # noqa
    assert mg.gradcheck(fn, t(x, True))
    assert mg.gradgradcheck(fn, t(x, True))


@pytest.mark.parametrize("device", DEVICES)
def test_nll_loss_empty_batch(device):
    """The mean over no rows: a NaN loss and a (0, C) gradient, as PyTorch (it used to raise
    ZeroDivisionError in backward)."""
    x = t(np.zeros((0, 5)), requires_grad=True, device=device)
    y = t(np.zeros(0, dtype=np.int64), device=device)
    for fn in (F.nll_loss, F.cross_entropy):
        x.grad = None
        loss = fn(x, y)
        assert np.isnan(loss.item())
        loss.backward()
        assert x.grad.shape == (0, 5)
        assert fn(x, y, reduction="sum").item() == 0.0 and fn(x, y, reduction="none").shape == (0,)


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


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data(), reduction=st.sampled_from(REDUCTIONS))
def test_bce_with_logits_weight_and_pos_weight(device, data, reduction):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    x = data.draw(arrays(shape, low=-20, high=20))
    y = data.draw(arrays(shape, low=0, high=1))
    w = data.draw(arrays(shape[-1:], low=0.1, high=2))           # broadcasts over the leading axes
    p = data.draw(arrays(shape[-1:], low=0.1, high=5))           # one per class (the last axis)
    s = 1 / (1 + np.exp(-x))
    naive = -w * (p * y * np.log(s) + (1 - y) * np.log(1 - s))
    out = F.binary_cross_entropy_with_logits(t(x, device=device), t(y, device=device), t(w, device=device), reduction=reduction,
                                             pos_weight=t(p, device=device))
    np.testing.assert_allclose(out.numpy(), np_reduce(naive, reduction), rtol=1e-7, atol=1e-12)


@covers("BCEWithLogits", twice=True)
@given(st.data(), st.sampled_from(REDUCTIONS))
def test_bce_with_logits_pos_weight_gradcheck(data, reduction):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple))
    x = data.draw(arrays(shape, low=-4, high=4, kinks=(0.0,), margin=0.05))
    y = data.draw(arrays(shape, low=0, high=1))
    w, p = t(data.draw(arrays(shape[-1:], low=0.5, high=2))), t(data.draw(arrays(shape[-1:], low=0.5, high=3)))
    fn = lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, reduction=reduction, pos_weight=p)  # noqa: E731
    assert mg.gradcheck(fn, t(x, True), t(y, True))
    assert mg.gradgradcheck(fn, t(x, True), t(y, True))


def np_bce(x, y, w=1.0):
    with np.errstate(divide="ignore"):
        return -w * (y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100))


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data(), reduction=st.sampled_from(REDUCTIONS))
def test_binary_cross_entropy_forward(device, data, reduction):
    shape = data.draw(st.lists(st.integers(0, 4), max_size=3).map(tuple))
    x = data.draw(arrays(shape, low=0, high=1))
    y = data.draw(arrays(shape, low=0, high=1))
    w = data.draw(arrays(shape, low=0, high=2)) if data.draw(st.booleans()) else None
    out = F.binary_cross_entropy(t(x, device=device), t(y, device=device), None if w is None else t(w, device=device), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), np_reduce(np_bce(x, y, 1.0 if w is None else w), reduction),
                               rtol=1e-12, atol=1e-14)


@covers("BinaryCrossEntropy", twice=True)
@given(st.data(), st.sampled_from(REDUCTIONS))
def test_binary_cross_entropy_gradcheck(data, reduction):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple))
    x = data.draw(arrays(shape, low=0.05, high=0.95))
    y = data.draw(arrays(shape, low=0, high=1))
    w = t(data.draw(arrays(shape[-1:], low=0.5, high=2)))
    fn = lambda a, b: F.binary_cross_entropy(a, b, w, reduction=reduction)  # noqa: E731
    assert mg.gradcheck(fn, t(x, True), t(y, True))
    assert mg.gradgradcheck(fn, t(x, True), t(y, True))


def test_binary_cross_entropy_at_0_and_1_is_finite_as_in_pytorch():
    """log is clamped at -100 and the gradient is (x - y) / max(x (1 - x), 1e-12)."""
    x = mg.tensor([0.0, 1.0, 0.0, 1.0, 0.5], dtype=mg.float64, requires_grad=True)
    y = mg.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=mg.float64)
    loss = F.binary_cross_entropy(x, y, reduction="none")
    # log 2 from log and log1p (two libm-grade values, within 4 ulp each) and three roundings
    np.testing.assert_allclose(loss.numpy(), [0.0, 0.0, 100.0, 100.0, np.log(2)], rtol=(2 * LIBM_ULPS + 3) * 2.0 ** -53)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, -1e12, 1e12, -2.0], rtol=1e-12)
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(mg.tensor([0.5, 1.5]), mg.tensor([1.0, 0.0]))
    with pytest.raises(TypeError, match=r"weight must be a Tensor or None, got str; pass reduction='sum' as a keyword"):
        F.binary_cross_entropy(mg.tensor([0.5]), mg.tensor([1.0]), "sum")
    with pytest.raises(ValueError, match=r"weight of shape \(3,\) does not broadcast to the input's shape \(2, 2\)"):
        F.binary_cross_entropy_with_logits(mg.randn(2, 2), mg.rand(2, 2), mg.ones(3))
    with pytest.raises(ValueError, match="no gradient flows to pos_weight"):
        F.binary_cross_entropy_with_logits(mg.randn(2, 2), mg.rand(2, 2), pos_weight=mg.ones(2, requires_grad=True))


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


def test_weighted_loss_modules_take_pytorchs_arguments():
    rng = np.random.default_rng(1)
    x = t(rng.standard_normal((5, 3)))
    y = t(np.array([0, 2, 1, 2, 1]))
    w = t(np.array([0.5, 2.0, 1.0]))
    p = t(rng.uniform(size=(5, 3)))
    module = nn.CrossEntropyLoss(w, ignore_index=1, reduction="sum", label_smoothing=0.1)
    assert module(x, y).item() == F.cross_entropy(x, y, w, ignore_index=1, reduction="sum", label_smoothing=0.1).item()
    assert nn.NLLLoss(w, ignore_index=2)(x, y).item() == F.nll_loss(x, y, w, ignore_index=2).item()
    assert nn.BCELoss(w, reduction="sum")(p, p).item() == F.binary_cross_entropy(p, p, w, reduction="sum").item()
    pos = t(np.array([1.0, 3.0, 0.5]))
    assert nn.BCEWithLogitsLoss(w, pos_weight=pos)(x, p).item() == \
        F.binary_cross_entropy_with_logits(x, p, w, pos_weight=pos).item()
    # weight and pos_weight are buffers, as in PyTorch: in the state dict, moved by .to()
    assert list(module.state_dict()) == ["weight"]
    assert sorted(nn.BCEWithLogitsLoss(w, pos_weight=pos).state_dict()) == ["pos_weight", "weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    with pytest.raises(TypeError, match="CrossEntropyLoss: weight must be a Tensor or None, got str; pass "
                                        "reduction='sum' as a keyword"):
        nn.CrossEntropyLoss("sum")
    with pytest.raises(TypeError):
        nn.NLLLoss(None, -100)  # keyword-only after weight


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
    picked = np.abs(x[np.arange(6), y])  # PyTorch sums in its own order: 2 gamma_7 sum |terms| (/6 for the mean)
    err = 0 if reduction == "none" else sum_error(picked.sum(), 7) / (6 if reduction == "mean" else 1)
    assert_within(mine.numpy(), theirs.detach().numpy(), err)
    theirs.backward(torch.tensor(upstream))
    mine.backward(t(upstream.copy()))
    np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=2 * 2.0 ** -53)  # -g w / count: 2 roundings


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
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", ["weight", "ignore", "weight-ignore-smooth", "spatial", "probabilities"])
def test_torch_parity_cross_entropy_options(reduction, options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    shape = (4, 5, 3, 2) if options == "spatial" else (7, 5)
    x = rng.standard_normal(shape) * 3
    if options == "probabilities":
        y = rng.uniform(size=shape)
        y /= y.sum(axis=1, keepdims=True)
    else:
        y = rng.integers(0, 5, shape[:1] + shape[2:])
        y.reshape(-1)[::3] = 2 if "ignore" in options else y.reshape(-1)[::3]
    w = rng.uniform(0.3, 2.0, 5) if "weight" in options or options == "spatial" else None
    kw = dict(ignore_index=2 if "ignore" in options else -100, reduction=reduction,
              label_smoothing=0.15 if "smooth" in options else 0.0)
    xt = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(xt, torch.tensor(y), None if w is None else torch.tensor(w), **kw)
    ours = t(x.copy(), True)
    mine = F.cross_entropy(ours, t(y), None if w is None else t(w), **kw)
    np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), rtol=1e-12)
    upstream = rng.standard_normal(tuple(theirs.shape))
    theirs.backward(torch.tensor(upstream))
    mine.backward(t(upstream))
    np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=1e-11, atol=1e-15)
    if options != "probabilities" and "smooth" not in options:
        xt.grad, ours.grad = None, None
        kw.pop("label_smoothing")
        theirs = torch.nn.functional.nll_loss(xt, torch.tensor(y), None if w is None else torch.tensor(w), **kw)
        mine = F.nll_loss(ours, t(y), None if w is None else t(w), **kw)
        # a (weighted) sum of picked log-probabilities of both signs, added in PyTorch's order:
        # within 2 gamma sum |terms| (divided by the summed weights for the mean)
        rows, labels = np.moveaxis(x, 1, -1).reshape(-1, 5), y.reshape(-1)
        kept = labels != kw["ignore_index"]
        wt = kept * (1 if w is None else w[labels % 5])
        terms = np.abs(rows[np.arange(len(labels)), labels % 5]) * wt
        total = wt.sum() if kw["reduction"] == "mean" else 1.0
        err = 0 if kw["reduction"] == "none" else sum_error(terms.sum(), len(labels) + 2) / total
        assert_within(mine.numpy(), theirs.detach().numpy(), err)
        theirs.backward(torch.tensor(upstream))
        mine.backward(t(upstream))
        np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_parity_bce_weights(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((4, 3)) * 4, rng.uniform(size=(4, 3))
    w, p = rng.uniform(0.2, 2, 3), rng.uniform(0.5, 4, 3)
    probs = 1 / (1 + np.exp(-x))
    probs[0, :2] = [0.0, 1.0]  # the clamped logs
    upstream = rng.standard_normal((4, 3)) if reduction == "none" else np.array(0.8)
    for ours_fn, torch_fn, inp, kw in [
            (F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, probs, {}),
            (F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits, x,
             dict(pos_weight=p))]:
        xt, yt = torch.tensor(inp, requires_grad=True), torch.tensor(y, requires_grad=True)
        xo, yo = t(inp.copy(), True), t(y.copy(), True)
        theirs = torch_fn(xt, yt, torch.tensor(w), reduction=reduction, **{k: torch.tensor(v) for k, v in kw.items()})
        mine = ours_fn(xo, yo, t(w), reduction=reduction, **{k: t(v) for k, v in kw.items()})
        np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), rtol=1e-12)
        theirs.backward(torch.tensor(upstream))
        mine.backward(t(upstream.copy()))
        # at x = 0 and 1 the gradient divides by the floor 1e-12, which PyTorch holds as a
        # float32 (9.99999996e-13): those two entries agree to 4e-9, the rest to rounding
        clamped = np.zeros((4, 3), dtype=bool)
        clamped[0, :2] = ours_fn is F.binary_cross_entropy
        np.testing.assert_allclose(xo.grad.numpy()[~clamped], xt.grad.numpy()[~clamped], rtol=1e-11, atol=1e-15)
        np.testing.assert_allclose(xo.grad.numpy()[clamped], xt.grad.numpy()[clamped], rtol=5e-9)
        np.testing.assert_allclose(yo.grad.numpy()[~clamped], yt.grad.numpy()[~clamped], rtol=1e-11, atol=1e-15)
        # a deliberate difference: the target's gradient there is the derivative of the loss as
        # computed, with clamped logs, -g w (log x - log(1 - x)) = -/+ 100 g w; PyTorch gives -/+ inf
        g = upstream if reduction == "none" else np.full((4, 3), upstream / (12 if reduction == "mean" else 1))
        np.testing.assert_allclose(yo.grad.numpy()[clamped], (g * w * np.array([[100.0, -100.0, 0]]))[clamped],
                                   rtol=1e-12)


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


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_in_float32_out(reduction):
    """No loss promotes float32 to float64, in its value or its gradient (the mean's divisor
    included)."""
    x = mg.randn(6, 4, requires_grad=True)
    y, p = mg.tensor([0, 3, 1, 2, 2, -100]), mg.rand(6, 4)
    w = mg.tensor([1.0, 0.5, 2.0, 1.0])
    for loss in (F.cross_entropy(x, y, reduction=reduction), F.cross_entropy(x, y, w, reduction=reduction),
                 F.cross_entropy(x, p, reduction=reduction), F.nll_loss(x, y, reduction=reduction),
                 F.nll_loss(x, y, w, reduction=reduction), F.mse_loss(x, p, reduction=reduction),
                 F.binary_cross_entropy(p, p, reduction=reduction),
                 F.binary_cross_entropy_with_logits(x, p, w, reduction=reduction, pos_weight=w)):
        assert loss.dtype == np.float32
        if loss.requires_grad:
            x.grad = None
            loss.sum().backward()
            assert x.grad.dtype == np.float32
