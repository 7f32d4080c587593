"""batch_norm and layer_norm (minigrad/ops/norm.py): training and eval forward against NumPy,
running-stat updates, the fused backward by gradcheck and gradgradcheck, PyTorch parity (on
random shapes and memory layouts for layer_norm), errors.  The numba kernels against
reference.py: tests/test_cpu_kernels.py."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg

from minigrad.nn import functional as F

from .conftest import DEVICES
from .coverage import covers
from .strategies import relayout


@st.composite
def bn_cases(draw):
    four_d = draw(st.booleans())
    n = draw(st.integers(2 if not four_d else 1, 4))
    c = draw(st.integers(1, 3))
    shape = (n, c) + ((draw(st.integers(1, 3)), draw(st.integers(2, 3))) if four_d else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = relayout(rng.standard_normal(shape) * 2 + 1, draw(st.sampled_from(["C", "F", "strided"])))
    affine = draw(st.sampled_from(["both", "none", "weight", "bias"]))
    w = rng.standard_normal(c) if affine in ("both", "weight") else None
    b = rng.standard_normal(c) if affine in ("both", "bias") else None
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    return x, w, b, rm, rv, draw(st.booleans())


def reference(x, w, b, rm, rv, training, momentum=0.1, eps=1e-5):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        m = x.size // x.shape[1]
        new_rm = (1 - momentum) * rm + momentum * mu
        new_rv = (1 - momentum) * rv + momentum * var * m / (m - 1)
    else:
        mu, var, new_rm, new_rv = rm, rv, rm, rv
    y = (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y, new_rm, new_rv


def _t(a, grad=False, device="cpu"):
    """A tensor with ``a``'s values, or None for an absent weight or bias."""
    return None if a is None else mg.tensor(a, requires_grad=grad, device=device)


@pytest.mark.parametrize("device", DEVICES)
@given(case=bn_cases())
def test_batch_norm_forward_and_running_stats(device, case):
    x, w, b, rm, rv, training = case
    RM, RV = mg.tensor(rm, device=device), mg.tensor(rv, device=device)
    y = mg.batch_norm(_t(x, device=device), RM, RV, _t(w, device=device), _t(b, device=device),
                      training=training, momentum=0.1)
    ref, new_rm, new_rv = reference(x, w, b, rm, rv, training)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(RM.numpy(), new_rm, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(RV.numpy(), new_rv, rtol=1e-12, atol=1e-12)


def test_batch_norm_training_without_running_stats_and_float32():
    x = np.random.default_rng(0).standard_normal((8, 3, 2, 2)).astype(np.float32)
    y = mg.batch_norm(mg.tensor(x), None, None, training=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.numpy().var(axis=(0, 2, 3)), 1, atol=1e-3)


@covers("BatchNorm", twice=True)
@given(bn_cases())
def test_batch_norm_gradcheck_and_gradgradcheck(case):
    x, w, b, rm, rv, training = case
    inputs = [_t(x, True)] + [_t(a, True) for a in (w, b) if a is not None]

    def f(x, *wb):
        it = iter(wb)
        ww = next(it) if w is not None else None
        bb = next(it) if b is not None else None
        # fresh running stats each call: finite differences must not see them drift
        return mg.batch_norm(x, mg.tensor(rm), mg.tensor(rv), ww, bb, training=training)

    assert mg.gradcheck(f, *inputs)
    assert mg.gradgradcheck(f, *inputs)


@given(bn_cases())
def test_batch_norm_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, w, b, rm, rv, training = case
    ours = dict(x=_t(x, True), w=_t(w, True), b=_t(b, True))
    theirs = {k: None if a is None else torch.tensor(np.ascontiguousarray(a), requires_grad=True)
              for k, a in dict(x=x, w=w, b=b).items()}
    RM, RV, trm, trv = mg.tensor(rm), mg.tensor(rv), torch.tensor(rm), torch.tensor(rv)
    y = mg.batch_norm(ours["x"], RM, RV, ours["w"], ours["b"], training=training, momentum=0.3, eps=1e-3)
    ty = torch.nn.functional.batch_norm(theirs["x"], trm, trv, theirs["w"], theirs["b"], training=training,
                                        momentum=0.3, eps=1e-3)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(mg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(RM.numpy(), trm.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(RV.numpy(), trv.numpy(), rtol=1e-12, atol=1e-12)
    for k in ours:
        if ours[k] is not None:
            np.testing.assert_allclose(ours[k].grad.numpy(), theirs[k].grad.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_kernel_equals_the_ops_formula(device, training):
    """The plain backward runs the batch_norm_backward kernel; under create_graph the same
    formulas run as ops.  Both give the same gradients (channels-last float32 input here)."""
    rng = np.random.default_rng(3)
    x = np.ascontiguousarray(rng.standard_normal((4, 6, 5, 3)).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    x = x.astype(np.float32) * 2 + 1
    w, b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for create_graph in (False, True):
        inputs = [_t(a, True, device) for a in (x, w, b)]
        y = mg.batch_norm(inputs[0], _t(np.zeros(6, np.float32), device=device), _t(np.ones(6, np.float32), device=device),
                          inputs[1], inputs[2], training=training)
        results.append([r.numpy() for r in mg.grad(y, inputs, _t(g, device=device), create_graph=create_graph)])
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-5)


def test_batch_norm_errors():
    x = mg.randn(4, 3, 2, 2)
    with pytest.raises(ValueError, match=r"batch_norm: expected an input of shape \(N, C\) or \(N, C, ...\), got shape \(4,\)"):
        mg.batch_norm(mg.randn(4), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean must have shape \(3,\) for input of shape \(4, 3, 2, 2\), got \(2,\)"):
        mg.batch_norm(x, mg.zeros(2), mg.ones(2), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: eval mode .* needs running_mean"):
        mg.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"more than 1 value per channel when training, got input of shape \(1, 3\)"):
        mg.batch_norm(mg.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match=r"give both running_mean and running_var"):
        mg.batch_norm(x, mg.zeros(3), None, training=True)


# -- layer norm ------------------------------------------------------------------------------


@st.composite
def ln_cases(draw):
    lead = draw(st.sampled_from([(), (3,), (2, 3), (0, 2)]))
    shape = draw(st.sampled_from([(4,), (2, 3), (1,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = relayout(rng.standard_normal(lead + shape) * 2 + 1, draw(st.sampled_from(["C", "F", "strided"])))
    affine = draw(st.sampled_from(["both", "none", "weight", "bias"]))
    w = rng.standard_normal(shape) if affine in ("both", "weight") else None
    b = rng.standard_normal(shape) if affine in ("both", "bias") else None
    return x, shape, w, b


def ln_reference(x, shape, w, b, eps=1e-5):
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


@pytest.mark.parametrize("device", DEVICES)
@given(case=ln_cases())
def test_layer_norm_forward(device, case):
    x, shape, w, b = case
    y = mg.layer_norm(_t(x, device=device), shape, _t(w, device=device), _t(b, device=device))
    np.testing.assert_allclose(y.numpy(), ln_reference(x, shape, w, b), rtol=1e-10, atol=1e-10)


@covers("LayerNorm", twice=True)
@given(ln_cases())
def test_layer_norm_gradcheck_and_gradgradcheck(case):
    x, shape, w, b = case
    inputs = [_t(x, True)] + [_t(a, True) for a in (w, b) if a is not None]

    def f(x, *wb):
        it = iter(wb)
        return mg.layer_norm(x, shape, next(it) if w is not None else None, next(it) if b is not None else None)

    assert mg.gradcheck(f, *inputs)
    assert mg.gradgradcheck(f, *inputs)


@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_backward_kernel_equals_the_ops_formula(device):
    rng = np.random.default_rng(6)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((5, 7, 16), (16,), (16,)))
    g = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for create_graph in (False, True):
        inputs = [_t(a, True, device) for a in (x, w, b)]
        y = mg.layer_norm(inputs[0], 16, inputs[1], inputs[2])
        results.append([r.numpy() for r in mg.grad(y, inputs, _t(g, device=device), create_graph=create_graph)])
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-5)


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 5)) * 3
    w, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    g = rng.standard_normal(x.shape)
    ours = [mg.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = mg.layer_norm(ours[0], (4, 5), ours[1], ours[2], eps=1e-3)
    ty = torch.nn.functional.layer_norm(theirs[0], (4, 5), theirs[1], theirs[2], eps=1e-3)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    y.backward(mg.tensor(g))
    ty.backward(torch.tensor(g))
    for a, t_ in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t_.grad.numpy(), rtol=1e-10, atol=1e-12)


@st.composite
def ln_torch_cases(draw):
    """(x, normalized_shape, weight or None, bias or None, eps) in a random layout, for the
    comparison with PyTorch (float64, tight tolerances)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lead = draw(st.sampled_from([(), (3,), (2, 3)]))
    norm = draw(st.sampled_from([(4,), (1,), (2, 3), (5,)]))
    x = relayout(rng.standard_normal(lead + norm) * 2 + 1, draw(st.sampled_from(["C", "F", "strided"])))
    affine = draw(st.sampled_from(["both", "weight", "none"]))
    w = rng.standard_normal(norm) if affine != "none" else None
    b = rng.standard_normal(norm) if affine == "both" else None
    return x, norm, w, b, draw(st.sampled_from([1e-5, 0.1]))


@given(ln_torch_cases())
def test_layer_norm_matches_torch_on_random_shapes_and_layouts(case):
    torch = pytest.importorskip("torch")
    x, norm, w, b, eps = case
    ours = [_t(a, True) for a in (x, w, b)]
    theirs = [None if a is None else torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, w, b)]
    y = F.layer_norm(ours[0], norm, ours[1], ours[2], eps)
    ty = torch.nn.functional.layer_norm(theirs[0], norm, theirs[1], theirs[2], eps)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(mg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, t in zip(ours, theirs):
        if a is not None:
            np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_float32_rows_are_normalized(device):
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 6, 32)).astype(np.float32) * 5 + 3, device=device)
    y = F.layer_norm(x, 32).numpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-3)


def test_layer_norm_module_and_errors():
    from minigrad import nn

    ln = nn.LayerNorm((2, 3))
    assert ln.weight.shape == ln.bias.shape == (2, 3) and np.all(ln.weight.numpy() == 1) and np.all(ln.bias.numpy() == 0)
    x = mg.randn(4, 2, 3)
    np.testing.assert_array_equal(ln(x).numpy(), mg.layer_norm(x, (2, 3), ln.weight, ln.bias).numpy())
    assert ln.eval()(x).shape == (4, 2, 3)  # no running statistics: eval is the same
    bare = nn.LayerNorm(3, elementwise_affine=False)
    assert bare.weight is None and bare.bias is None and list(bare.parameters()) == []
    assert nn.LayerNorm(3, bias=False).bias is None
    with pytest.raises(ValueError, match=r"layer_norm: input of shape \(4, 3\) does not end with normalized_shape \(2,\)"):
        mg.layer_norm(mg.randn(4, 3), 2)
    with pytest.raises(ValueError, match=r"layer_norm: weight must have shape \(3,\), got \(2,\)"):
        mg.layer_norm(mg.randn(4, 3), 3, mg.ones(2))
    with pytest.raises(ValueError, match="LayerNorm: normalized_shape must be"):
        nn.LayerNorm(0)
