"""Property tests for every op in minigrad/ops/elementwise.py.

Each differentiable op gets one test that (1) compares the forward with NumPy on generated
inputs (broadcasting pairs, 0-d and size-1 shapes, non-contiguous layouts: see
tests/strategies.py), and (2) runs gradcheck and gradgradcheck in float64.  Inputs stay away
from the points where an op is not differentiable (0 for abs, the bounds of clip, ties of
max/min); those points have their own tests below.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from tests.coverage import covers
from tests.helpers import check_grads, leaf, t
from tests.strategies import arrays, broadcast_pair, relayout, separated_pair, shapes

SMALL = dict(max_dims=3, max_side=3)  # gradgradcheck cost grows with the element count


pytestmark = pytest.mark.usefixtures("on_device")  # every test on every device


def check_forward(fn, ref, *arrays, rtol=1e-12, **params):
    """minigrad's result equals NumPy's, in value, shape and dtype."""
    out = fn(*[t(a) for a in arrays], **params)
    expected = np.asarray(ref(*arrays, **params))
    assert out.shape == expected.shape
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=0)
    return out


@st.composite
def binary(draw, **kw):
    sx, sy = draw(broadcast_pair(**SMALL))
    return draw(arrays(sx, **kw.get("x", {}))), draw(arrays(sy, **kw.get("y", {})))


def unary(**kw):
    return arrays(shapes(**SMALL), **kw)


# -- arithmetic ---------------------------------------------------------------------------


@covers("Add", twice=True)
@given(binary())
def test_add(xy):
    check_forward(mg.add, np.add, *xy)
    check_grads(lambda x, y: x + y, *xy)


@covers("Sub", twice=True)
@given(binary())
def test_sub(xy):
    check_forward(mg.sub, np.subtract, *xy)
    check_grads(lambda x, y: x - y, *xy)


@covers("Mul", twice=True)
@given(binary())
def test_mul(xy):
    check_forward(mg.mul, np.multiply, *xy)
    check_grads(lambda x, y: x * y, *xy)


@covers("Div", twice=True)
@given(binary(y=dict(min_abs=0.5)))
def test_div(xy):
    check_forward(mg.div, np.divide, *xy)
    check_grads(lambda x, y: x / y, *xy)


@covers("Neg", twice=True)
@given(unary())
def test_neg(x):
    check_forward(mg.neg, np.negative, x)
    check_grads(lambda x: -x, x)


# -- powers, exp, log ---------------------------------------------------------------------


@covers("PowScalar", twice=True)
@given(st.sampled_from([0, 1, 2, 3, -1, -2, 0.5, -1.5, 2.5]), st.data())
def test_pow_scalar(p, data):
    # integer powers are defined for every x (away from 0 when negative); fractional ones need x > 0
    if isinstance(p, float):
        x = data.draw(unary(low=0.2, high=3.0))
    else:
        x = data.draw(unary(min_abs=0.3 if p < 0 else 0.0))
    check_forward(lambda x: x ** p, lambda x: x ** p, x)
    check_grads(lambda x: x ** p, x)


@covers("RPowScalar", twice=True)
@given(st.sampled_from([0.5, 2.0, np.e, 10.0]), unary(low=-2.0, high=2.0))
def test_rpow_scalar(a, x):
    check_forward(lambda x: a ** x, lambda x: np.power(a, x), x)
    check_grads(lambda x: a ** x, x)


@covers("Pow", twice=True)
@given(binary(x=dict(low=0.2, high=3.0), y=dict(low=-2.0, high=2.0, kinks=(0.0,))))
def test_pow(xy):  # (y = 0 is where the d/dx = 0 convention below makes the second derivative jump)
    check_forward(mg.pow, np.power, *xy)
    check_grads(lambda x, y: x ** y, *xy)


@covers("Pow")
def test_pow_negative_base_with_constant_integer_exponent():
    # the exponent is a constant, so ln(x) (undefined for x < 0) is never needed
    x = mg.tensor([-2.0, -0.5, 1.5], dtype=mg.float64, requires_grad=True)
    y = mg.tensor([2.0, 3.0, -1.0], dtype=mg.float64)
    assert mg.gradcheck(lambda x, y: x ** y, x, y)
    (x ** y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 * -2.0, 3 * 0.25, -1 / 1.5 ** 2])


@covers("Exp", twice=True)
@given(unary())
def test_exp(x):
    check_forward(mg.exp, np.exp, x)
    check_grads(mg.exp, x)


@covers("Log", twice=True)
@given(unary(low=0.1, high=5.0))
def test_log(x):
    check_forward(mg.log, np.log, x)
    check_grads(mg.log, x)


@covers("Log1p", twice=True)
@given(unary(low=-0.9, high=5.0))
def test_log1p(x):
    check_forward(mg.log1p, np.log1p, x)
    check_grads(mg.log1p, x)


def test_log1p_keeps_tiny_arguments():
    """log(1 + x) loses a tiny x in float32 (1 + 1e-8 rounds to 1); log1p does not."""
    x = mg.tensor([1e-8, -1e-8, 1e-30], dtype=mg.float32, requires_grad=True)
    np.testing.assert_allclose(mg.log1p(x).numpy(), [1e-8, -1e-8, 1e-30], rtol=2 ** -23)
    assert mg.log(1 + x).tolist() == [0.0, 0.0, 0.0]
    mg.log1p(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 / (1 + np.array([1e-8, -1e-8, 1e-30])), rtol=2 ** -23)
    assert mg.log1p(mg.tensor([1, 2])).dtype == mg.get_default_dtype()


@pytest.mark.torch
def test_log1p_matches_torch():
    torch = pytest.importorskip("torch")
    v = np.array([-0.5, 0.0, 1e-7, 3.0])
    x, tx = mg.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    mg.log1p(x).sum().backward()
    torch.log1p(tx).sum().backward()
    np.testing.assert_allclose(mg.log1p(x).numpy(), torch.log1p(tx).detach().numpy(), rtol=4 * 2 ** -52)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=4 * 2 ** -52)  # 1 / (1 + x): 2 roundings


@covers("Sqrt", twice=True)
@given(unary(low=0.1, high=5.0))
def test_sqrt(x):
    check_forward(mg.sqrt, np.sqrt, x)
    check_grads(mg.sqrt, x)


@covers("Abs", twice=True)
@given(unary(kinks=(0.0,)))
def test_abs(x):
    check_forward(mg.abs, np.abs, x)
    check_grads(mg.abs, x)


def test_abs_subgradient_at_zero_is_zero():
    x = mg.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    mg.abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 1.0])


# -- trigonometry -------------------------------------------------------------------------


@covers("Sin", twice=True)
@given(unary(low=-4.0, high=4.0))
def test_sin(x):
    check_forward(mg.sin, np.sin, x)
    check_grads(mg.sin, x)


@covers("Cos", twice=True)
@given(unary(low=-4.0, high=4.0))
def test_cos(x):
    check_forward(mg.cos, np.cos, x)
    check_grads(mg.cos, x)


# -- selection ----------------------------------------------------------------------------


@covers("Maximum", twice=True)
@given(separated_pair(broadcast_pair(**SMALL)))
def test_maximum(xy):
    check_forward(mg.maximum, np.maximum, *xy)
    check_grads(mg.maximum, *xy)


@covers("Minimum", twice=True)
@given(separated_pair(broadcast_pair(**SMALL)))
def test_minimum(xy):
    check_forward(mg.minimum, np.minimum, *xy)
    check_grads(mg.minimum, *xy)


@pytest.mark.parametrize("fn", [mg.maximum, mg.minimum])
def test_ties_split_the_gradient_evenly(fn):
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = mg.tensor([1.0, 0.0, 3.0], requires_grad=True)
    g = mg.tensor([2.0, 4.0, 6.0])
    fn(x, y).backward(g)
    wins = 1.0 if fn is mg.maximum else 0.0  # x = 2 beats y = 0 for max, loses for min
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 4.0 * wins, 3.0])
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 4.0 * (1 - wins), 3.0])
    # against itself every element ties, and the halves add up to the whole gradient
    x.grad = None
    fn(x, x).backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), g.numpy())


@covers("Clip", twice=True)
@given(st.sampled_from([(-1.0, 1.0), (None, 0.5), (-0.5, None), (0.0, 0.0)]), st.data())
def test_clip(bounds, data):
    low, high = bounds
    kinks = tuple(b for b in bounds if b is not None)
    x = data.draw(unary(kinks=kinks))
    check_forward(lambda x: mg.clip(x, low, high), lambda x: np.clip(x, low, high), x)
    check_grads(lambda x: mg.clip(x, low, high), x)


def test_clip_passes_the_gradient_at_its_bounds():
    x = mg.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    x.clamp(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0])
    with pytest.raises(ValueError, match="clip: at least one of min and max"):
        mg.clip(x)


@st.composite
def where_inputs(draw):
    sc, sx, sy = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, **SMALL)).input_shapes
    cond = draw(hnp.arrays(np.bool_, sc))
    return relayout(cond, "C"), draw(arrays(sx)), draw(arrays(sy))


@covers("Where", twice=True)
@given(where_inputs())
def test_where(inputs):
    cond, x, y = inputs
    check_forward(mg.where, np.where, cond, x, y)
    check_grads(lambda x, y: mg.where(t(cond), x, y), x, y)


def test_where_rejects_a_non_bool_condition_and_accepts_numbers():
    x = mg.tensor([1.0, -2.0])
    with pytest.raises(TypeError, match="where: the condition must be a bool tensor, got dtype float32"):
        mg.where(x, x, 0.0)
    out = mg.where(x > 0, x, 0.0)
    assert out.dtype == np.float32 and out.tolist() == [1.0, 0.0]


# -- rounding -----------------------------------------------------------------------------------


@covers("Floor", "Ceil", "Round", "Trunc", twice=True)
def test_rounding_matches_numpy_and_passes_zero_gradient():
    a = np.array([-2.5, -1.5, -0.7, -0.5, 0.0, 0.3, 0.5, 1.5, 2.5, 2.7])
    x = leaf(a)
    for name, ref in (("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc), ("round", np.round)):
        out = getattr(mg, name)(x)
        np.testing.assert_array_equal(out.numpy(), ref(a))  # round: halves to even, as PyTorch
        np.testing.assert_array_equal(getattr(x, name)().numpy(), ref(a))
        (g,) = mg.grad(out.sum(), x)
        np.testing.assert_array_equal(g.numpy(), np.zeros_like(a))  # piecewise constant
    np.testing.assert_array_equal(x.round(decimals=1).numpy(), np.round(a, 1))
    b = np.array([0.26, 1.11, -3.77])  # away from the jumps: finite differences see 0 too
    for fn in (mg.floor, mg.ceil, mg.trunc, mg.round, lambda t: mg.round(t, decimals=1)):
        assert mg.gradcheck(lambda t: fn(t) * t, leaf(b))
        assert mg.gradgradcheck(lambda t: fn(t) * t, leaf(b))
def test_rounding_integers_dtypes_and_in_place():
    i = t(np.array([1, -2, 3]))
    for fn in (mg.floor, mg.ceil, mg.round, mg.trunc):
        out = fn(i)
        assert out.dtype == np.int64 and out.tolist() == [1, -2, 3]
        assert not np.shares_memory(out.array, i.array)
    assert mg.floor(t(np.array([1.5], dtype=np.float32))).dtype == np.float32
    x = t(np.array([1.7, -1.2], dtype=np.float32))
    assert x.floor_() is x and x.tolist() == [1.0, -2.0]
    with pytest.raises(TypeError, match="round: decimals must be an int"):
        mg.round(x, 1.5)
@pytest.mark.torch
def test_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal(50) * 4
    a[:4] = [0.5, 1.5, -2.5, 2.5]
    for name in ("floor", "ceil", "round", "trunc"):
        np.testing.assert_array_equal(getattr(mg, name)(t(a)).numpy(), getattr(torch, name)(torch.tensor(a)).numpy())
    np.testing.assert_array_equal(mg.round(t(a), decimals=2).numpy(),
                                  torch.round(torch.tensor(a), decimals=2).numpy())
# -- clamp with tensor bounds -------------------------------------------------------------------


def test_clamp_with_tensor_bounds_sends_the_gradient_where_each_value_came_from():
    x = leaf([-1.0, 0.5, 2.0, 0.3, 0.7])
    lo = leaf([0.0, 0.5, 0.0, 0.4, 0.0])
    hi = leaf([1.0, 1.0, 1.0, 0.2, 1.0])
    z = mg.clamp(x, lo, hi)
    np.testing.assert_array_equal(z.numpy(), [0.0, 0.5, 1.0, 0.2, 0.7])  # min > max: max
    z.backward(t(np.array([1.0, 2.0, 3.0, 4.0, 5.0])))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 2, 0, 0, 5])   # a tie with a bound: x's
    np.testing.assert_array_equal(lo.grad.numpy(), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(hi.grad.numpy(), [0, 0, 3, 4, 0])
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal(4) - 1, rng.standard_normal((3, 1)) + 1
    assert mg.gradcheck(lambda t, u, v: mg.clamp(t, u, v), leaf(a), leaf(b), leaf(c))  # broadcast
    assert mg.gradgradcheck(lambda t, u, v: mg.clamp(t, min=u, max=v) ** 2, leaf(a), leaf(b), leaf(c))
    np.testing.assert_array_equal(t(a).clamp(max=t(np.array(0.0))).numpy(), np.minimum(a, 0.0))
def test_clamp_numbers_dtypes_and_errors():
    assert mg.clamp(t(np.array([1, 2, 3])), min=1.5).dtype == np.float32  # as PyTorch
    assert mg.clamp(t(np.array([1, 2, 3])), min=2).tolist() == [2, 2, 3]
    assert mg.clamp is mg.clip and t(np.array([5.0])).clamp(0, 1).item() == 1.0
    with pytest.raises(ValueError, match="clip: at least one of min and max"):
        mg.clamp(t(np.ones(2)))
    with pytest.raises(TypeError, match="clip: min and max must be numbers, tensors or None, got str"):
        mg.clamp(t(np.ones(2)), min="0")
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
    z1.backward(t(g))
    z2.backward(torch.tensor(g))
    for o, th in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), th.grad.numpy(), rtol=1e-15)
# -- addcmul / addcdiv --------------------------------------------------------------------------


def test_addcmul_and_addcdiv():
    rng = np.random.default_rng(3)
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal(3) + 3
    x, t1, t2 = t(a), t(b), t(c)
    np.testing.assert_allclose(mg.addcmul(x, t1, t2, value=0.5).numpy(), a + 0.5 * b * c, rtol=1e-15)
    np.testing.assert_allclose(x.addcdiv(t1, t2, value=-2).numpy(), a - 2 * b / c, rtol=1e-15)
    assert mg.gradgradcheck(lambda u, v, w: mg.addcdiv(u, v, w, value=0.3), leaf(a), leaf(b), leaf(c))
    v = t(a.copy())
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
# -- dtype --------------------------------------------------------------------------------


@covers("Cast", twice=True)
@given(unary())
def test_cast(x):
    check_forward(lambda x: x.astype(np.float32), lambda x: x.astype(np.float32), x)
    # float64 -> float32 -> float64: the op is linear, so central differences are exact up to
    # float32 rounding (~1e-7 relative); eps = 1e-2 keeps that rounding at ~1e-5 of the slope.
    check_grads(lambda x: x.astype(np.float32), x, eps=1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.bool_])
def test_cast_forward_and_what_gets_recorded(dtype):
    a = np.array([[-1.5, 0.0], [2.25, 3.0]])
    x = mg.tensor(a, requires_grad=True)
    y = x.astype(dtype)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), a.astype(dtype))
    # only a floating result can carry a gradient
    assert y.requires_grad == (np.dtype(dtype).kind == "f")
    assert x.astype(x.dtype) is x  # same dtype: no op at all


def test_cast_gradient_comes_back_in_the_input_dtype():
    x = mg.tensor([1.0, 2.0], dtype=mg.float64, requires_grad=True)
    (x.float() * 3).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# -- forward over every op: empty and 0-d shapes, explicit non-contiguous views --------------

UNARY = {
    "neg": (mg.neg, np.negative), "exp": (mg.exp, np.exp), "log": (mg.log, np.log),
    "sqrt": (mg.sqrt, np.sqrt), "abs": (mg.abs, np.abs), "sin": (mg.sin, np.sin),
    "cos": (mg.cos, np.cos), "sign": (mg.sign, np.sign),
    "pow2.5": (lambda x: x ** 2.5, lambda x: x ** 2.5),
    "rpow3": (lambda x: 3.0 ** x, lambda x: np.power(3.0, x)),
    "clip": (lambda x: mg.clip(x, 0.5, 1.5), lambda x: np.clip(x, 0.5, 1.5)),
    "cast": (lambda x: x.astype(np.float32), lambda x: x.astype(np.float32)),
}
BINARY = {
    "add": (mg.add, np.add), "sub": (mg.sub, np.subtract), "mul": (mg.mul, np.multiply),
    "div": (mg.div, np.divide), "pow": (mg.pow, np.power), "maximum": (mg.maximum, np.maximum),
    "minimum": (mg.minimum, np.minimum),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(x=arrays(shapes(max_dims=3, max_side=3, allow_empty=True), low=0.1, high=3.0))
def test_unary_forward_any_shape(name, x):
    fn, ref = UNARY[name]
    check_forward(fn, ref, x)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_forward_any_shape(name, data):
    sx, sy = data.draw(broadcast_pair(min_side=0, max_side=3))
    x, y = data.draw(arrays(sx, low=0.1, high=3.0)), data.draw(arrays(sy, low=0.1, high=3.0))
    fn, ref = BINARY[name]
    check_forward(fn, ref, x, y)


@pytest.mark.parametrize("name", sorted(set(UNARY) - {"sign"}))
def test_unary_noncontiguous_views(name):
    base = np.linspace(0.3, 2.7, 24).reshape(4, 6)
    fn, ref = UNARY[name]
    eps = 1e-2 if name == "cast" else 1e-6
    for view in (base.T, base[::2, 1::2], base[:, ::-3]):
        assert not view.flags.c_contiguous
        check_forward(fn, ref, view)
        assert mg.gradcheck(fn, t(view), eps=eps)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_noncontiguous_views_and_0d(name):
    base = np.linspace(0.3, 2.7, 24).reshape(4, 6)
    other = np.linspace(2.9, 0.35, 24).reshape(6, 4)  # no ties with base for max/min
    fn, ref = BINARY[name]
    for x, y in ((base.T, other), (base[::2, ::2], other.T[1::2, ::2]), (base.T, np.array(1.7)),
                 (np.array(0.9), np.array(1.3))):
        check_forward(fn, ref, x, y)
        assert mg.gradcheck(fn, t(x), t(y))


def test_zero_dim_results_are_zero_dim_tensors():
    x = mg.tensor(2.0, requires_grad=True)
    y = mg.exp(x) * x + 1.0
    assert y.shape == () and isinstance(y.array, np.ndarray)
    y.backward()
    assert x.grad.shape == ()
    assert x.grad.item() == pytest.approx(np.exp(2.0) * 3.0, rel=1e-6)


# -- comparisons, dtypes, errors ------------------------------------------------------------

COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
           "gt": np.greater, "ge": np.greater_equal}


@pytest.mark.parametrize("name", sorted(COMPARE))
@given(data=st.data())
def test_comparisons_return_bool_without_grad(name, data):
    sx, sy = data.draw(broadcast_pair())
    # small integers make equal elements common, so == and <= are really exercised
    x = data.draw(hnp.arrays(np.float64, sx, elements=st.integers(-2, 2).map(float)))
    y = data.draw(hnp.arrays(np.float64, sy, elements=st.integers(-2, 2).map(float)))
    xt = t(x).requires_grad_()
    out = getattr(mg, name)(xt, t(y))
    assert out.dtype == np.bool_
    assert not out.requires_grad and out.is_leaf
    np.testing.assert_array_equal(out.numpy(), COMPARE[name](x, y))


def test_comparison_operators_match_functions():
    x, y = mg.tensor([1.0, 2.0, 3.0], requires_grad=True), mg.tensor([2.0, 2.0, 2.0])
    assert (x < y).tolist() == [True, False, False]
    assert (x <= y).tolist() == [True, True, False]
    assert (x > 2.0).tolist() == [False, False, True]
    assert (x >= y).tolist() == [False, True, True]
    assert (x == y).tolist() == [False, True, False]
    assert (x != y).tolist() == [True, False, True]


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                  "eq", "lt", "ge"])
def test_broadcast_mismatch_names_the_op_and_both_shapes(name):
    x, y = mg.ones(2, 3), mg.ones(4)
    with pytest.raises(ValueError, match=rf"^{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        getattr(mg, name)(x, y)


def test_where_mismatch_names_all_shapes():
    with pytest.raises(ValueError, match=r"where: shapes cond \(2,\), x \(3,\), y \(3,\)"):
        mg.where(mg.tensor([True, False]), mg.ones(3), mg.ones(3))


SCALAR_EXPRESSIONS = {
    "x + 2.5": lambda x: x + 2.5, "2.5 + x": lambda x: 2.5 + x, "x - 1": lambda x: x - 1,
    "1.5 - x": lambda x: 1.5 - x, "x * 3": lambda x: x * 3, "0.5 * x": lambda x: 0.5 * x,
    "x / 4.0": lambda x: x / 4.0, "1 / x": lambda x: 1 / x, "x ** 2.0": lambda x: x ** 2.0,
    "x ** 2": lambda x: x ** 2, "2.0 ** x": lambda x: 2.0 ** x,
    "maximum(x, 0.0)": lambda x: mg.maximum(x, 0.0), "minimum(1, x)": lambda x: mg.minimum(1, x),
    "clip(x, -1.0, 1.0)": lambda x: mg.clip(x, -1.0, 1.0),
    "where(x > 1, x, 0.0)": lambda x: mg.where(x > 1, x, 0.0),
    "x * np.float64(2)": lambda x: x * np.float64(2.0),
}


@pytest.mark.parametrize("expr", sorted(SCALAR_EXPRESSIONS))
def test_python_scalar_operands_keep_float32(expr):
    x = mg.tensor([0.5, 1.5, 2.5], requires_grad=True)
    out = SCALAR_EXPRESSIONS[expr](x)
    assert out.dtype == np.float32, f"{expr} gave {out.dtype}"
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_int_tensor_arithmetic_stays_integer():
    i = mg.tensor([1, 2, 3])
    assert (i + 1).dtype == np.int64 and (i * 2).tolist() == [2, 4, 6]
    assert (i > 1).dtype == np.bool_


@pytest.mark.parametrize("base", [-2.0, 0.0, 0, -1])
def test_a_non_positive_number_base_gives_values_and_nan_where_undefined(base):
    x = mg.tensor([0.0, 1.5, -1.0, 2.0], requires_grad=True)
    with np.errstate(all="ignore"):
        expected = np.power(np.float32(base), np.array([0.0, 1.5, -1.0, 2.0], dtype=np.float32))
    z = base ** x
    np.testing.assert_array_equal(z.numpy(), expected)
    assert z.dtype == np.float32
    z.sum().backward()
    if base == 0:  # PyTorch's convention: 0 ** x has gradient 0 for x >= 0, -inf for x < 0
        np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, -np.inf, 0.0])
    else:          # z * ln(base): NaN for a negative base (never masked)
        assert np.isnan(x.grad.numpy()).all()


def test_pow_at_zero_follows_pytorchs_conventions():
    # dL/dx = 0 where y = 0 (not 0 * inf = NaN); dL/dy = 0 where x = 0 and y >= 0
    for yv, gx, gy in [(0.0, [0.0, 0.0], [0.0, np.log(1.5)]), (2.0, [0.0, 3.0], [0.0, 2.25 * np.log(1.5)]),
                       (0.3, [np.inf, 0.3 * 1.5 ** -0.7], [0.0, 1.5 ** 0.3 * np.log(1.5)])]:
        x = mg.tensor([0.0, 1.5], dtype=np.float64, requires_grad=True)
        y = mg.tensor([yv, yv], dtype=np.float64, requires_grad=True)
        (x ** y).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), gx)
        np.testing.assert_allclose(y.grad.numpy(), gy)


def test_floor_divide_is_the_floor_of_the_exact_quotient():
    """Python's // and PyTorch's floor_divide: 0.1 is slightly above 1/10 in float32, so
    1 // 0.1 is 9 (floor(1 / 0.1) = floor(10.0) was 10), and 1e-45 // -1e30 is -1 (the
    rounded quotient -0.0 gave -0.0)."""
    x = mg.tensor([1.0, 1.4e-45, -7.0, 7.0, 7.5], dtype=mg.float32)
    y = mg.tensor([0.1, -1e30, 2.0, -2.0, 2.5], dtype=mg.float32)
    expected = [float(np.float32(a)) // float(np.float32(b)) for a, b in zip(x.tolist(), y.tolist())]
    assert expected == [9.0, -1.0, -4.0, -4.0, 3.0]  # (Python's floats: the exact quotient)
    assert mg.floor_divide(x, y).tolist() == expected
    assert (x // y).tolist() == expected and (x.double() // y.double()).tolist() == expected
    assert mg.div(x, y, rounding_mode="trunc").tolist() == [10.0, -0.0, -3.0, -3.0, 3.0]


@pytest.mark.torch
def test_floor_divide_matches_torch():
    torch = pytest.importorskip("torch")
    v, w = np.array([1.0, 1.4e-45, -7.0, 0.3, -5.5], np.float32), np.array([0.1, -1e30, 2.0, 0.1, 0.7], np.float32)
    assert mg.floor_divide(mg.tensor(v), mg.tensor(w)).tolist() == \
        torch.floor_divide(torch.tensor(v), torch.tensor(w)).tolist()


def test_div_backward_does_not_square_the_divisor():
    """dL/dy = -g x / y^2 formed as -g ((x / y) / y): y * y overflows for y = 1e20 and
    underflows for y = 1e-30 in float32, where x / y^2 itself is fine."""
    x = mg.tensor([1e20, 1e-30], dtype=mg.float32, requires_grad=True)
    y = mg.tensor([1e20, 1e-30], dtype=mg.float32, requires_grad=True)
    (x / y).sum().backward()
    exact = -1 / np.float64(np.float32(1e20)), -1 / np.float64(np.float32(1e-30))  # -1e-20, -1e30 (was 0, -inf)
    np.testing.assert_allclose(y.grad.numpy(), exact, rtol=3 * 2 ** -24)  # three roundings


@pytest.mark.torch
def test_pow_special_points_match_torch():
    torch = pytest.importorskip("torch")
    xs = np.array([0.0, 0.0, 0.0, 1.5, -2.0, -2.0, 0.0], dtype=np.float64)
    ys = np.array([0.0, 2.0, 0.3, 0.0, 2.0, 0.5, -1.0], dtype=np.float64)
    x, y = mg.tensor(xs, requires_grad=True), mg.tensor(ys, requires_grad=True)
    (x ** y).sum().backward()
    tx, ty = torch.tensor(xs, requires_grad=True), torch.tensor(ys, requires_grad=True)
    (tx ** ty).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), ty.grad.numpy())
    for base in (-2.0, 0.0, 2.0):
        a = mg.tensor(ys, requires_grad=True)
        (base ** a).sum().backward()
        ta = torch.tensor(ys, requires_grad=True)
        (base ** ta).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())


@covers("Sign", twice=True)
@given(unary(min_abs=0.1))
def test_sign_passes_a_zero_gradient(x):
    check_forward(mg.sign, np.sign, x)
    check_grads(mg.sign, x)
    t = mg.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    s = mg.sign(t)
    assert s.tolist() == [-1.0, 0.0, 1.0] and s.requires_grad
    s.sum().backward()  # PyTorch gives zeros, not an error
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 0.0, 0.0])


@covers("DivRounded", twice=True)
@given(binary(x=dict(low=-3.0, high=3.0), y=dict(low=0.3, high=2.0)), st.sampled_from(["floor", "trunc"]))
def test_div_with_a_rounding_mode(xy, mode):
    x, y = xy
    with np.errstate(all="ignore"):
        q = x / y
    # keep away from the jumps of floor/trunc, where finite differences are meaningless
    assume(np.all(np.abs(q - np.round(q)) > 0.05))
    rounded = np.floor if mode == "floor" else np.trunc
    check_forward(lambda a, b: mg.div(a, b, rounding_mode=mode), lambda a, b: rounded(a / b), x, y)
    check_grads(lambda a, b: mg.div(a, b, rounding_mode=mode), x, y)


def test_floor_division_and_true_division_dtypes():
    i = mg.tensor([7, -7, 8])
    assert (i // 2).tolist() == [3, -4, 4] and (i // 2).dtype == np.int64
    assert mg.div(i, 2, rounding_mode="trunc").tolist() == [3, -3, 4]
    assert (i / 2).dtype == np.float32 and (i / 2).tolist() == [3.5, -3.5, 4.0]
    assert (7 // mg.tensor([2.0, -2.0])).tolist() == [3.0, -4.0]
    with pytest.raises(ValueError, match="rounding_mode must be"):
        mg.div(i, 2, rounding_mode="round")


PROMOTIONS = [  # expression, PyTorch's result dtype
    (lambda i: i / 2, np.float32), (lambda i: i * 0.5, np.float32), (lambda i: mg.exp(i), np.float32),
    (lambda i: mg.maximum(i.int(), mg.tensor([1.0, 2.0, 3.0])), np.float32),
    (lambda i: 0.7 ** i, np.float32), (lambda i: i ** 0.5, np.float32), (lambda i: i ** 2, np.int64),
    (lambda i: i * np.float64(0.5), np.float32),
    (lambda i: i.float() * mg.tensor(2.0, dtype=np.float64), np.float32),  # a 0-d tensor counts less
    (lambda i: i.int() + mg.tensor(3), np.int32), (lambda i: i.int() + 3, np.int32),
    (lambda i: i.float() + i.double(), np.float64), (lambda i: i.int() + i.float().half(), np.float16),
    (lambda i: (i > 1) + 1, np.int64), (lambda i: (i > 1) + True, np.bool_),
    (lambda i: mg.where(i > 1, i, 0.5), np.float32), (lambda i: i.double() / i, np.float64),
]


@pytest.mark.parametrize("k", range(len(PROMOTIONS)))
def test_mixed_dtypes_promote_as_in_pytorch(k):
    expr, expected = PROMOTIONS[k]
    assert expr(mg.tensor([1, 2, 3])).dtype == np.dtype(expected)


FLOAT_OPS = {  # every op whose result is a float, on an integer (or bool) tensor
    "sigmoid": mg.sigmoid, "tanh": mg.tanh, "exp": mg.exp, "log": mg.log, "log1p": mg.log1p,
    "sqrt": mg.sqrt, "sin": mg.sin, "cos": mg.cos, "gelu": mg.gelu, "silu": mg.silu,
    "leaky_relu": mg.leaky_relu, "softmax": lambda i: mg.softmax(i, -1),
    "log_softmax": lambda i: mg.log_softmax(i, -1), "logsumexp": lambda i: mg.logsumexp(i, -1),
    "div": lambda i: i / 2, "rdiv": lambda i: 1 / i, "mul_half": lambda i: i * 0.5, "pow_half": lambda i: i ** 0.5,
    "clip_half": lambda i: mg.clip(i, 0.5, None), "matmul_float": lambda i: i @ mg.ones(3, 2),
    "linear": lambda i: mg.nn.functional.linear(i, mg.ones(2, 3)),
    "avg_pool2d": lambda i: mg.nn.functional.avg_pool2d(i.reshape(1, 1, 1, 3), (1, 2)),
    "adaptive_avg_pool2d": lambda i: mg.nn.functional.adaptive_avg_pool2d(i.reshape(1, 1, 1, 3), 1),
}


@pytest.mark.parametrize("name", sorted(FLOAT_OPS))
@pytest.mark.parametrize("default", [np.float32, np.float64])
def test_integer_tensors_through_float_ops_give_the_default_dtype(name, default):
    """One rule (elementwise.floating / result_type): an integer or bool tensor through a float
    op computes in get_default_dtype(), as PyTorch (NumPy would give float64, and softmax
    used to, log_softmax raised a NumPy casting error, leaky_relu truncated to integers)."""
    previous = mg.get_default_dtype()
    mg.set_default_dtype(default)
    try:
        for ints in (mg.tensor([1, 2, 3]), mg.tensor([1, 2, 3], dtype=mg.int32), mg.tensor([True, False, True])):
            out = FLOAT_OPS[name](ints)
            assert out.dtype == np.dtype(default), (name, ints.dtype, out.dtype)
            expected = FLOAT_OPS[name](mg.tensor(ints.numpy().astype(default)))
            np.testing.assert_array_equal(out.numpy(), expected.numpy())  # the same computation
    finally:
        mg.set_default_dtype(previous)


def test_leaky_relu_of_integers_keeps_the_slope():
    assert mg.leaky_relu(mg.tensor([-100, 5]), 0.5).tolist() == [-50.0, 5.0]  # (was int64 [-50, 5] truncated)
    assert mg.leaky_relu(mg.tensor([-5, 5]), 0.01).tolist() == [pytest.approx(-0.05), 5.0]  # (was [0, 5])


def test_result_type_takes_numbers_like_pytorch():
    i = mg.tensor([1, 2])
    assert mg.result_type(i, 0.5) == np.float32 and mg.result_type(i, 2) == np.int64
    assert mg.result_type(0.5, i.int()) == np.float32 and mg.result_type(1, 0.5) == np.float32
    assert mg.result_type(mg.tensor([1.0], dtype=mg.float64), 2) == np.float64


def test_relu_abs_neg_and_max_pool_keep_integers():
    """Ops whose result is an integer for integer inputs keep the dtype (as PyTorch)."""
    i = mg.tensor([-2, 3])
    for out in (mg.relu(i), mg.abs(i), -i, mg.clip(i, 0, 2), mg.maximum(i, 0)):
        assert out.dtype == np.int64


def test_a_promoted_operand_gets_its_gradient_in_its_own_dtype():
    x = mg.tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    w = mg.tensor([3.0, 4.0], requires_grad=True)  # float32
    (x * w).sum().backward()
    assert (x * w).dtype == np.float64
    assert x.grad.dtype == np.float64 and w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])


def test_bitwise_operators_on_bool_and_int_tensors():
    a, b = mg.tensor([True, True, False]), mg.tensor([True, False, False])
    assert (a & b).tolist() == [True, False, False] and (a | b).tolist() == [True, True, False]
    assert (a ^ b).tolist() == [False, True, False] and (~a).tolist() == [False, False, True]
    assert (mg.tensor([6, 3]) & 5).tolist() == [4, 1]
    with pytest.raises(TypeError, match="bitwise_and: needs bool or integer tensors"):
        mg.tensor([1.0]) & mg.tensor([1.0])


@covers("Clone", twice=True)
@given(unary())
def test_clone_copies_memory_and_passes_the_gradient(x):
    t = mg.from_numpy(x)
    c = t.clone()
    np.testing.assert_array_equal(c.numpy(), x)
    assert not np.shares_memory(c.array, x)
    check_grads(lambda v: v.clone() * v, x)


def test_isclose_and_allclose_follow_numpy_tolerances():
    a = mg.tensor([1.0, 2.0, np.nan, 4.0])
    b = mg.tensor([1.0 + 1e-7, 2.1, np.nan, 4.0])
    assert a.isclose(b).tolist() == [True, False, False, True]
    assert mg.isclose(a, b, equal_nan=True).tolist() == [True, False, True, True]
    assert mg.allclose(a[:2], b[:2], atol=0.2) and not mg.allclose(a, b)
    assert mg.allclose(mg.tensor([1, 2]), mg.tensor([1.0, 2.0]))  # dtypes promote
    with pytest.raises(ValueError, match=r"isclose: shapes \(4,\) and \(3,\)"):
        mg.isclose(a, mg.zeros(3))


def test_one_hot():
    out = mg.one_hot(mg.tensor([[0, 2], [1, 1]]), num_classes=4)
    assert out.shape == (2, 2, 4) and out.dtype == np.int64
    np.testing.assert_array_equal(out.numpy()[0, 1], [0, 0, 1, 0])
    assert mg.one_hot(mg.tensor([3, 0])).shape == (2, 4)  # num_classes: largest label + 1
    with pytest.raises(ValueError, match=r"one_hot: labels must lie in \[0, 2\)"):
        mg.one_hot(mg.tensor([0, 2]), num_classes=2)
    with pytest.raises(TypeError, match="one_hot: expected an integer tensor"):
        mg.one_hot(mg.tensor([0.0, 1.0]))
