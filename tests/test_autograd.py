"""The autograd engine: one test per required behaviour of the tape, backward and grad."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import Function
from tests.helpers import leaf


# -- accumulation, basic errors -------------------------------------------------------------


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2 + 3, 4 + 3])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3])


def test_a_tensor_used_twice_gets_the_sum_of_both_paths():
    x = leaf([1.0, -2.0])
    y = x * x + x.exp() * x  # x reaches the loss through four uses
    y.sum().backward()
    xv = np.array([1.0, -2.0])
    np.testing.assert_allclose(x.grad.numpy(), 2 * xv + np.exp(xv) * (xv + 1))


def test_backward_through_a_result_that_only_its_consumer_holds():
    # exp's backward reads its output; the output is referenced only by Mul's record, which
    # is released before exp's backward runs. The engine must keep it alive until then.
    x = leaf(2.0)
    (mg.exp(x) * 3.0).backward()
    assert x.grad.item() == pytest.approx(3 * np.exp(2.0))


@pytest.mark.parametrize("make", [
    lambda: mg.tensor([1, 2], requires_grad=True),
    lambda: mg.tensor([True, False]).requires_grad_(),
    lambda: mg.arange(3, requires_grad=True),
    lambda: mg.zeros(2, dtype=mg.int32).requires_grad_(True),
])
def test_integer_and_bool_tensors_cannot_require_grad(make):
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        make()


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match=r"only for a scalar output.*shape \(2,\)"):
        y.backward()
    y.backward(mg.ones_like(y))  # with an explicit gradient it works
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2])
    with pytest.raises(RuntimeError, match=r"got shape \(3,\), dtype float64, device cpu for an output of shape \(2,\)"):
        (x * 2).backward(mg.ones(3, dtype=mg.float64))


def test_backward_on_a_tensor_that_does_not_require_grad():
    x = mg.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward()
    w = leaf([1.0])
    with mg.no_grad():
        loss = (w * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        loss.backward()


def test_second_backward_through_freed_records_mentions_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()  # the second one did not retain it


# -- grad mode -------------------------------------------------------------------------------


def test_no_grad_and_enable_grad_as_nested_context_managers():
    x = leaf([1.0])
    assert mg.is_grad_enabled()
    with mg.no_grad():
        assert not mg.is_grad_enabled()
        assert not (x * 2).requires_grad
        with mg.enable_grad():
            assert mg.is_grad_enabled()
            y = x * 2
            assert y.requires_grad and y.grad_fn is not None
            with mg.no_grad():
                assert not (x * 2).requires_grad
            assert mg.is_grad_enabled()
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators():
    x = leaf([1.0])

    @mg.no_grad()
    def inference(t):
        return t * 2, mg.is_grad_enabled(), recorded(t)

    @mg.enable_grad()
    def recorded(t):
        return (t * 2).requires_grad

    out, enabled, inner = inference(x)
    assert not out.requires_grad and not enabled
    assert inner  # enable_grad inside no_grad records again
    assert inference.__name__ == "inference"  # functools.wraps
    assert mg.is_grad_enabled()
    with mg.no_grad():
        assert recorded(x) and not mg.is_grad_enabled()


def test_grad_mode_is_restored_when_the_body_raises():
    with pytest.raises(ZeroDivisionError):
        with mg.no_grad():
            1 / 0
    assert mg.is_grad_enabled()
    with mg.set_grad_enabled(False):
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()


def test_detach_cuts_the_tape_and_shares_memory():
    x = leaf([1.0, 2.0])
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.numpy())
    (y * d).sum().backward()  # d is a constant: dy/dx only through y
    np.testing.assert_array_equal(x.grad.numpy(), 3 * np.array([3.0, 6.0]))


def test_requires_grad_():
    x = mg.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad and x.is_leaf
    x.requires_grad_(False)
    assert not x.requires_grad
    y = leaf([1.0]) * 2
    with pytest.raises(RuntimeError, match="non-leaf.*detach"):
        y.requires_grad_(False)


# -- memory ----------------------------------------------------------------------------------


def test_saved_values_are_released_after_backward():
    x = leaf(np.linspace(-1, 1, 5))
    h = x.exp()
    y = (h * h).sum()
    mul = y.grad_fn.inputs[0].grad_fn
    assert mul.inputs is not None and "versions" in vars(mul)
    h_ref = weakref.ref(h)
    del h
    assert h_ref() is not None  # Mul's record keeps its input alive until backward
    y.backward()
    assert h_ref() is None  # ... and lets it go after
    assert mul.inputs is None and set(vars(mul)) == {"seq", "freed"}
    assert y.grad_fn.inputs is None


def test_retain_graph_keeps_saved_values():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    assert y.grad_fn.inputs is not None


def _live_tensors():
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is mg.Tensor)


def test_memory_stays_flat_over_many_training_steps():
    """3000 small SGD steps: neither live Tensors nor traced memory may grow with the steps.

    Each step saves ~2 KB of arrays for backward, so a leak of the saved values would add
    several MB; the bound below is a small fraction of that."""
    rng = np.random.default_rng(0)
    xs = mg.tensor(rng.standard_normal((32, 16)))
    target = mg.tensor(rng.standard_normal(32))
    w = mg.zeros(16, requires_grad=True)
    b = mg.zeros(1, requires_grad=True)

    def step():
        pred = (xs * w).sum(axis=1) + b
        loss = ((pred - target) ** 2).mean()
        loss.backward()
        with mg.no_grad():
            w.sub_(0.01 * w.grad)
            b.sub_(0.01 * b.grad)
        w.grad = b.grad = None
        return loss.item()

    first = step()
    for _ in range(50):  # warm-up: caches, interned objects
        step()
    tensors_before = _live_tensors()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(3000):
            last = step()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _live_tensors() <= tensors_before
    assert current - base < 32 * 1024, f"memory grew by {current - base} bytes over 3000 steps"
    assert peak - base < 256 * 1024, f"peak {peak - base} bytes above the start"
    assert last < first / 2  # it really trained


# -- in-place modification -------------------------------------------------------------------


@pytest.mark.parametrize("modify", ["iadd", "setitem", "mul_", "copy_", "detached"])
def test_modifying_a_saved_tensor_in_place_then_backward_raises(modify):
    x = leaf([1.0, 2.0])
    w = leaf([3.0, 4.0], requires_grad=False)
    y = x * w  # Mul saves w for dL/dx = g * w
    if modify == "iadd":
        w += 1
    elif modify == "setitem":
        w[0] = 5
    elif modify == "mul_":
        w.mul_(2)
    elif modify == "copy_":
        w.copy_(mg.zeros(2, dtype=mg.float64))
    else:
        w.detach().add_(1)  # a detached alias shares the version counter
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: input 1 of Mul .*shape \(2,\), float64, cpu\) is at version 1, but Mul saved it at version 0"):
        y.sum().backward()


def test_in_place_under_no_grad_on_a_saved_leaf_is_caught_at_backward():
    x = leaf([1.0, 2.0])
    y = x * x
    with mg.no_grad():
        x.add_(1)  # allowed (a weight update), but y's record saw the old x
    with pytest.raises(RuntimeError, match="modified by an inplace operation: input 0 of Mul .* at version 1, but Mul saved it at version 0"):
        y.sum().backward()


def test_in_place_on_a_saved_output_is_caught():
    x = leaf([1.0, 2.0])
    y = x.exp()  # exp's backward uses its output
    with mg.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: its output of Exp .*shape \(2,\)"):
        y.sum().backward()


# -- the engine checks what each backward reads (Function.saves_inputs / saves_output) -------
# These ops' backwards read their inputs directly; before the engine made the check itself,
# an edit after the forward gave a silently wrong gradient.

F = mg.nn.functional


@pytest.mark.parametrize("op", [F.gelu, F.silu, F.leaky_relu, lambda x: F.gelu(x, approximate="tanh"),
                                lambda x: x.exp(), lambda x: x.sigmoid(), lambda x: F.softmax(x, -1)])
def test_editing_an_input_or_output_a_backward_reads_raises(op):
    x = leaf([1.0, -2.0, 0.5])
    y = op(x)
    with mg.no_grad():
        x.mul_(3)  # a leaf edited between forward and backward, as an optimizer step would
        y.add_(0) if op in (F.gelu, F.silu, F.leaky_relu) else y.mul_(2)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: (input 0|its output) of "):
        y.sum().backward()


def test_editing_the_weight_of_a_1x1_convolution_raises():
    """The 1x1 case keeps a view of W as its GEMM operand: an edit of W changed dx by 3x."""
    x = mg.tensor(np.random.default_rng(0).standard_normal((1, 3, 4, 4)), requires_grad=True)
    w = mg.tensor(np.random.default_rng(1).standard_normal((2, 3, 1, 1)), requires_grad=True)
    y = F.conv2d(x, w)
    with mg.no_grad():
        w.mul_(3)
    with pytest.raises(RuntimeError, match=r"input 1 of Conv2d .*shape \(2, 3, 1, 1\), float64, cpu\) is at "
                                           r"version 1, but Conv2d saved it at version 0"):
        y.sum().backward()


def test_editing_an_index_tensor_argument_raises():
    """Tensors passed as parameters (here embedding's indices) are checked like inputs."""
    w = leaf(np.ones((5, 2)))
    i = mg.tensor([0, 1, 1])
    y = F.embedding(i, w)
    i[0] = 4
    with pytest.raises(RuntimeError, match="its argument 'indices' of Embedding"):
        y.sum().backward()


def test_an_op_that_reads_nothing_gives_the_unedited_gradient_after_an_edit():
    """add and reshape read no values in backward (saves_inputs = False): no error, and the
    gradient is that of the graph as it was run, as in PyTorch."""
    x, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (x + b).reshape(2, 1) * 2.0
    with mg.no_grad():
        x.add_(5)
        b.mul_(-1)
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0] and b.grad.tolist() == [2.0, 2.0]


class _UndeclaredSquare(Function):
    """z = x^2 whose backward reads x but declares that it reads nothing: the engine cannot
    check it, so an edit after the forward gives a wrong gradient."""

    saves_inputs = False

    def forward(self, x):
        return x * x

    def backward(self, g):
        return 2 * g * self.inputs[0]


def test_gradcheck_catches_an_op_that_reads_an_undeclared_input():
    x = leaf([0.5, -1.5])
    assert mg.gradcheck(lambda t: _UndeclaredSquare.apply(t), x, check_inplace=False)  # values are right
    with pytest.raises(mg.GradcheckError, match=r"after input 0 of _UndeclaredSquare .* was edited in place.*"
                                                r"reads a value its class does not declare"):
        mg.gradcheck(lambda t: _UndeclaredSquare.apply(t), x)


def test_reading_saved_tensors_without_declaring_them_is_a_programming_error():
    class Sneaky(_UndeclaredSquare):
        def backward(self, g):
            (x,) = self.saved_tensors
            return 2 * g * x

    with pytest.raises(TypeError, match="Sneaky.backward reads saved_tensors, so the class must declare"):
        Sneaky.apply(leaf([1.0])).sum().backward()


def test_in_place_on_a_leaf_that_requires_grad_outside_no_grad_raises():
    x = leaf([1.0, 2.0])
    for op in (lambda: x.add_(1), lambda: x.__setitem__(0, 3.0), lambda: x.zero_(),
               lambda: x.__imul__(2), lambda: x.copy_(mg.zeros(2, dtype=np.float64))):
        with pytest.raises(RuntimeError, match="a leaf tensor that requires grad .* cannot be modified in place"):
            op()
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])  # nothing was modified
    with mg.no_grad():
        x.add_(1)
    np.testing.assert_array_equal(x.numpy(), [2.0, 3.0])


# -- in-place operations are recorded: a value that carries a gradient never drops out ----------


def test_setitem_of_a_value_that_carries_a_gradient_is_recorded():
    # a value computed from w written into a plain buffer: PyTorch gives [6, 0]
    w = leaf([1.0, 2.0])
    buf = mg.zeros(2, dtype=np.float64)
    buf[0] = w[0] * 3
    assert buf.requires_grad and buf.grad_fn.name == "IndexPut"
    (buf * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, 0.0])


@pytest.mark.parametrize("write", [
    lambda acc, w: acc.__iadd__(w * 2),
    lambda acc, w: acc.add_(w, alpha=2),
    lambda acc, w: acc.copy_(w * 2),
    lambda acc, w: acc.sub_(w * -2),
])
def test_accumulating_and_copying_in_place_keep_the_gradient(write):
    w = leaf([1.0, 2.0])
    acc = mg.zeros(2, dtype=np.float64)
    acc = write(acc, w)
    (acc * w).sum().backward()  # acc = 2w:  d/dw sum(2 w^2) = 4 w
    np.testing.assert_allclose(w.grad.numpy(), [4.0, 8.0])


@pytest.mark.parametrize("name, method, fn", [
    ("mul_", lambda t, w: t.mul_(w), lambda t, w: t * w),
    ("div_", lambda t, w: t.div_(w), lambda t, w: t / w),
    ("pow_", lambda t, w: t.pow_(w), lambda t, w: t ** w),
    ("exp_", lambda t, w: t.exp_(), lambda t, w: t.exp()),
    ("log_", lambda t, w: t.log_(), lambda t, w: t.log()),
    ("sqrt_", lambda t, w: t.sqrt_(), lambda t, w: t.sqrt()),
    ("sin_", lambda t, w: t.sin_(), lambda t, w: t.sin()),
    ("tanh_", lambda t, w: t.tanh_(), lambda t, w: t.tanh()),
    ("clamp_", lambda t, w: t.clamp_(0.5, 2.5), lambda t, w: t.clamp(0.5, 2.5)),
    ("masked_fill_", lambda t, w: t.masked_fill_(mg.tensor([True, False, False]), 0.0),
     lambda t, w: t.masked_fill(mg.tensor([True, False, False]), 0.0)),
])
def test_each_in_place_op_gives_the_gradients_of_its_out_of_place_twin(name, method, fn):
    xv, wv = np.array([0.7, 1.3, 2.1]), np.array([1.5, -0.5, 2.0])
    x, w = leaf(xv), leaf(wv)
    t = x * 1.0                       # a non-leaf, so it may be written in place
    out = method(t, w)
    assert out is t and t.grad_fn is not None
    (t * t).sum().backward()
    x2, w2 = leaf(xv), leaf(wv)
    ref = fn(x2 * 1.0, w2)
    (ref * ref).sum().backward()
    np.testing.assert_allclose(t.numpy(), ref.numpy())
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy())
    if w2.grad is not None:
        np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy())


def test_in_place_ops_under_grad_mode_are_gradient_checked():
    def f(x, w):
        t = x * 1.0
        t.mul_(w)
        t[1:] = (t[1:] + 0.0) * w[:1]  # (t[1:] * w[:1] would save a view that the write changes:
        t += w.sum()                   #  PyTorch and minigrad both refuse that at backward)
        return t

    a = mg.tensor([0.5, 1.5, -2.0], dtype=np.float64, requires_grad=True)
    b = mg.tensor([1.2, 0.7, -0.3], dtype=np.float64, requires_grad=True)
    assert mg.gradcheck(f, a, b)
    assert mg.gradgradcheck(f, a, b)


def test_in_place_writes_without_gradients_stay_raw_and_fast():
    buf = mg.zeros(3)
    buf[1] = 5.0
    buf += 1
    buf.mul_(2)
    assert buf.grad_fn is None and not buf.requires_grad and buf._version == 3
    np.testing.assert_array_equal(buf.numpy(), [2.0, 12.0, 2.0])
    with pytest.raises(TypeError, match="cannot be stored in place in a tensor of dtype int64"):
        mg.tensor([1, 2]).__itruediv__(2)
    with pytest.raises(ValueError, match=r"must keep the tensor's shape \(3,\)"):
        buf.add_(mg.ones(2, 3))


def test_a_view_written_in_place_makes_its_base_stale_instead_of_silently_wrong():
    w = leaf([1.0, 2.0])
    h = w * 2
    v = h[0:1]        # a view: shares h's memory
    v.mul_(3)         # changes h[0] through the view; h's own record knows nothing of it
    with pytest.raises(RuntimeError, match="changed by an in-place operation on a tensor it shares memory"):
        (h * h).sum()
    out = mg.zeros(2, dtype=np.float64)   # the same through a view of a plain buffer
    out[0:1].copy_(w[0:1] * 5)
    with pytest.raises(RuntimeError, match="shares memory"):
        (out * w).sum()
    out2 = mg.zeros(2, dtype=np.float64)  # written directly: recorded and right
    out2[0:1] = w[0:1] * 5
    w.grad = None
    (out2 * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [10.0, 0.0])


def test_a_detached_copy_is_a_constant_and_never_goes_stale():
    w = leaf([1.0, 2.0])
    h = w * 2
    d = h.detach()
    h.add_(w)                 # recorded; d sees the new values but is a constant by request
    (d * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 6.0])


def test_an_op_that_saved_a_tensor_written_in_place_later_still_raises():
    x = leaf([1.0, 2.0])
    y = x * 1.0
    z = y * y                 # Mul saved y
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


# -- long chains -------------------------------------------------------------------------------


def test_a_chain_of_100000_ops_backpropagates_without_recursion():
    x = leaf(1.0)
    c = leaf(1.00001, requires_grad=False)
    y = x
    for _ in range(100_000):
        y = y * c
    y.backward()
    expected = 1.00001 ** 100_000
    assert x.grad.item() == pytest.approx(expected, rel=1e-9)


def test_dropping_an_unreplayed_100000_op_chain_does_not_crash():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = -y
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None


# -- higher order ----------------------------------------------------------------------------


def _f(x):
    """f(x) = sum(x^3) + (sum x)^2:  grad = 3x^2 + 2 sum(x),  Hessian = diag(6x) + 2 * ones."""
    return (x ** 3).sum() + x.sum() ** 2


def test_hessian_vector_product_matches_the_analytic_hessian():
    xv = np.array([0.5, -1.0, 2.0])
    x = leaf(xv)
    hessian = np.diag(6 * xv) + 2.0
    (g,) = mg.grad(_f(x), x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(g.numpy(), 3 * xv ** 2 + 2 * xv.sum())
    for v in (np.array([1.0, 0.0, 0.0]), np.array([0.3, -2.0, 1.5])):
        (hv,) = mg.grad((g * mg.tensor(v)).sum(), x, retain_graph=True)
        np.testing.assert_allclose(hv.numpy(), hessian @ v, rtol=1e-12)


def test_backward_with_create_graph_records_the_gradient():
    x = leaf([0.5, -1.0, 2.0])
    _f(x).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.grad_fn is not None
    x.grad = None
    g.sum().backward()  # sum_j H_ij
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy() + 2.0 * 3)


def test_gradient_penalty():
    """L(w) = |d/dx sum(sin(w x))|^2 = sum(w^2 cos^2(w x));
    dL/dw = 2 w cos^2(w x) - 2 w^2 x sin(w x) cos(w x)."""
    xv, wv = np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.5, -0.7])
    x, w = leaf(xv), leaf(wv)
    (gx,) = mg.grad(mg.sin(w * x).sum(), x, create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    c, s = np.cos(wv * xv), np.sin(wv * xv)
    np.testing.assert_allclose(w.grad.numpy(), 2 * wv * c ** 2 - 2 * wv ** 2 * xv * s * c)

    def penalty_fn(x, w):
        with mg.enable_grad():  # gradcheck evaluates under no_grad; the inner grad needs the tape
            (gx,) = mg.grad(mg.sin(w * x).sum(), x, create_graph=True)
            return (gx * gx).sum()

    assert mg.gradcheck(penalty_fn, mg.tensor(xv, requires_grad=True), mg.tensor(wv, requires_grad=True))


def test_grad_returns_gradients_without_touching_dot_grad():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    gx, gy = mg.grad((x * y).sum(), [x, y])
    np.testing.assert_array_equal(gx.numpy(), [3, 4])
    np.testing.assert_array_equal(gy.numpy(), [1, 2])
    assert x.grad is None and y.grad is None and not gx.requires_grad


def test_allow_unused():
    x, unused = leaf([1.0]), leaf([2.0])
    with pytest.raises(RuntimeError, match=r"grad: input 1 \(shape \(1,\)\) was not used.*allow_unused=True"):
        mg.grad((x * 2).sum(), [x, unused])
    gx, gu = mg.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gu is None and gx.tolist() == [2.0]


def test_grad_frees_the_graph_by_default_unless_retained_or_create_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    mg.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        mg.grad(y, x)
    y = (x * x).sum()
    a = mg.grad(y, x, retain_graph=True)[0]
    b = mg.grad(y, x)[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    y = (x * x).sum()
    mg.grad(y, x, create_graph=True)  # create_graph implies retain_graph
    np.testing.assert_array_equal(mg.grad(y, x)[0].numpy(), [2, 4])


class _FusedSquare(Function):
    """z = x^2 with a raw-array backward: once differentiable."""

    once_differentiable = True

    def forward(self, x):
        return x * x

    def backward(self, g):
        (x,) = self.saved_tensors
        return mg.Tensor._wrap(2 * x.array * g.array)


def test_once_differentiable_op_raises_on_double_backward():
    x = leaf([1.0, -3.0])
    (g,) = mg.grad(_FusedSquare.apply(x).sum(), x, create_graph=True)
    np.testing.assert_array_equal(g.numpy(), [2.0, -6.0])  # the first derivative is right
    with pytest.raises(RuntimeError, match="_FusedSquare is once-differentiable"):
        mg.grad(g.sum(), x)
    x.grad = None
    _FusedSquare.apply(x).sum().backward(create_graph=True)
    with pytest.raises(RuntimeError, match="once-differentiable"):
        x.grad.sum().backward()
    with pytest.raises(RuntimeError, match="once-differentiable"):
        mg.gradgradcheck(lambda t: _FusedSquare.apply(t), leaf([1.0, 2.0]))
    assert mg.gradcheck(lambda t: _FusedSquare.apply(t), leaf([1.0, 2.0]))


# -- hooks, retain_grad ------------------------------------------------------------------------


def test_register_hook_modifies_the_gradient_and_can_be_removed():
    x = leaf([1.0, 2.0])
    handle = x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [20, 40])
    handle.remove()
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 4])


def test_hook_on_an_intermediate_changes_what_flows_further():
    x = leaf([1.0, 2.0])
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))  # returns None: only observes
    h.register_hook(lambda g: g * 0.5)
    (h * h).sum().backward()
    np.testing.assert_array_equal(seen[0], [6, 12])  # dL/dh = 2h
    np.testing.assert_array_equal(x.grad.numpy(), [9, 18])  # 0.5 * 2h * 3
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad_on_an_intermediate():
    x = leaf([1.0, 2.0])
    h = x * 3
    kept = h.retain_grad()
    assert kept is h and h.retains_grad
    other = x * 4
    loss = (h * h + other).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_array_equal(h.grad.numpy(), [6, 12])
    assert other.grad is None and not other.retains_grad
    loss.backward()  # retained grads accumulate like leaf grads
    np.testing.assert_array_equal(h.grad.numpy(), [12, 24])


def test_a_leaf_hook_runs_once_on_the_gradient_summed_over_all_uses():
    # x is used twice; a clipping hook must see (and clip) the sum, as in PyTorch: [1, 1]
    x = leaf([1.0, 2.0])
    calls = []

    def clip(g):
        calls.append(g.numpy().copy())
        return g.clip(-1, 1)

    x.register_hook(clip)
    (x * 3 + x * 2).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [5, 5])
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1])


def test_a_hook_must_return_none_or_a_tensor_of_the_same_shape_dtype_and_device():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: g.sum())  # wrong shape
    with pytest.raises(RuntimeError, match=r"shape \(2,\).*returned a gradient of shape \(\)"):
        (x * x).sum().backward()
    y = leaf([1.0, 2.0])
    y.register_hook(lambda g: g.numpy())  # not a Tensor
    with pytest.raises(TypeError, match="returned a ndarray"):
        (y * y).sum().backward()
    z = leaf([1.0, 2.0])
    z.register_hook(lambda g: g.float())  # other dtype
    with pytest.raises(RuntimeError, match="float32"):
        (z * z).sum().backward()
    h = leaf([1.0, 2.0]) * 2  # hooks on intermediates are checked the same way
    h.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match=r"shape \(1,\)"):
        h.sum().backward()


def test_post_accumulate_grad_hooks_run_once_per_leaf_as_soon_as_its_gradient_is_final():
    w1, w2 = leaf([1.0, 2.0]), leaf([3.0])
    events = []
    w1.register_post_accumulate_grad_hook(lambda p: events.append(("w1", p.grad.numpy().copy())))
    handle = w2.register_post_accumulate_grad_hook(lambda p: events.append(("w2", p.grad.numpy().copy())))
    h = (w1 * w1).sum()          # w1 is used first (so its gradient is final last) ...
    loss = h * w2 + w1.sum() * 0  # ... and again here
    tracker = mg.tensor(0.0, dtype=np.float64, requires_grad=True)
    loss = loss + tracker
    tracker.register_hook(lambda g: events.append(("tracker", None)))
    loss.backward()
    assert [name for name, _ in events] == ["tracker", "w2", "w1"]
    np.testing.assert_array_equal(events[1][1], [5.0])          # w2.grad = sum(w1^2)
    np.testing.assert_array_equal(events[2][1], [6.0, 12.0])    # w1.grad = 2 w1 w2 (+0): both uses summed
    handle.remove()
    events.clear()
    w1.grad = w2.grad = None
    ((w1 * w2).sum()).backward()
    assert [name for name, _ in events] == ["w1"]
    with pytest.raises(RuntimeError, match="only leaf"):
        (w1 * 2).register_post_accumulate_grad_hook(lambda p: None)


def test_post_accumulate_hooks_do_not_run_for_minigrad_grad():
    w = leaf([1.0, 2.0])
    w.register_post_accumulate_grad_hook(lambda p: pytest.fail("grad() accumulates nothing"))
    (g,) = mg.grad((w * w).sum(), w)
    np.testing.assert_array_equal(g.numpy(), [2, 4])


def test_assigning_a_grad_of_the_wrong_shape_dtype_or_device_raises():
    p = mg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"shape \(1,\).*shape \(3,\)"):
        p.grad = mg.ones(1)
    with pytest.raises(RuntimeError, match="float64"):
        p.grad = mg.ones(3, dtype=np.float64)
    with pytest.raises(TypeError, match="ndarray"):
        p.grad = np.ones(3, dtype=np.float32)
    p.grad = mg.ones(3) * 2
    np.testing.assert_array_equal(p.grad.numpy(), [2, 2, 2])
    p.grad = None
    assert p.grad is None


# -- devices ----------------------------------------------------------------------------------


class _OtherDeviceArray(np.ndarray):
    """Stands in for a GPU array: a different array type is what the device check compares."""


def test_mixing_devices_raises_a_clear_error_fake_device():
    x = mg.tensor([1.0, 2.0])
    y = mg.Tensor._wrap(np.array([3.0, 4.0], dtype=np.float32).view(_OtherDeviceArray))
    with pytest.raises(RuntimeError, match=r"Add: inputs are on different devices.*\.to\(device\)"):
        x + y


def test_mixing_devices_raises_a_clear_error(device):
    if device == "cpu":
        pytest.skip("needs a second device: the cuda parameter runs this on a GPU")
    x = mg.tensor([1.0, 2.0], device=device)
    y = mg.tensor([3.0, 4.0])
    with pytest.raises(RuntimeError, match=r"Mul: inputs are on different devices"):
        x * y


# -- NaN policy --------------------------------------------------------------------------------


def test_log_at_zero_gives_an_inf_gradient_that_propagates():
    x = leaf([0.0, 2.0])
    with np.errstate(divide="ignore"):
        (mg.log(x * 3) * 2).sum().backward()
    assert np.isposinf(x.grad.numpy()[0])  # never hidden or clipped
    assert x.grad.numpy()[1] == pytest.approx(1.0)


def test_nan_from_the_where_trap_is_not_masked():
    # where(x > 0, log(x), 0) at x = 0: the unselected branch gets gradient 0, and
    # log's backward computes 0 / 0 = NaN there. It reaches x.grad as NaN (as in PyTorch).
    x = leaf([0.0, 1.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        mg.where(x > 0, mg.log(x), 0.0).sum().backward()
    assert np.isnan(x.grad.numpy()[0]) and x.grad.numpy()[1] == 1.0


def test_detect_anomaly_names_the_op_that_made_the_first_non_finite_gradient():
    x = leaf([0.0, 2.0])
    with np.errstate(divide="ignore"):
        y = (mg.log(x * 3) * 2).sum()
        log_seq = y.grad_fn.inputs[0].grad_fn.inputs[0].grad_fn.seq
        with mg.detect_anomaly():
            assert mg.is_anomaly_enabled()
            with pytest.raises(RuntimeError, match=rf"Log.backward \(record #{log_seq}, input shapes \(2,\)\) "
                                                   r"returned a gradient with inf for input 0"):
                y.backward()
    assert not mg.is_anomaly_enabled()


def test_detect_anomaly_as_decorator_and_quiet_when_finite():
    x = leaf([1.0, 2.0])

    @mg.detect_anomaly()
    def train_step():
        assert mg.is_anomaly_enabled()
        (mg.log(x) * x).sum().backward()

    train_step()
    assert not mg.is_anomaly_enabled()
    np.testing.assert_allclose(x.grad.numpy(), np.log([1.0, 2.0]) + 1)


def test_detect_anomaly_does_not_blame_an_op_for_a_nan_it_was_given():
    x = leaf([1.0, 2.0])
    with mg.detect_anomaly():
        mg.exp(x).backward(mg.tensor([np.nan, 1.0], dtype=mg.float64))
    assert np.isnan(x.grad.numpy()[0])


def test_detect_anomaly_ignores_gradients_of_constants():
    # Mul also computes g * x for the constant c; with x = inf that is inf, but the engine
    # drops gradients of tensors that do not require grad, so it is no anomaly
    x = leaf([np.inf, 2.0])
    c = leaf([3.0, 1.0], requires_grad=False)
    with mg.detect_anomaly():
        (x * c).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 1.0])


def test_an_input_read_only_for_another_inputs_gradient_may_be_edited_when_that_one_wants_none():
    """x * w reads w for dL/dx and x for dL/dw (Mul.saves_inputs = {0: (1,), 1: (0,)}): with
    only w requiring grad, editing x would matter; editing w would not (PyTorch saves the same)."""
    d = leaf([1.0, 2.0])
    y = 3 * d                          # dL/dd = 3 reads the constant 3, never d
    with mg.no_grad():
        d.add_(1)
    y.sum().backward()
    assert d.grad.tolist() == [3.0, 3.0]
    x, w = leaf([1.0, 2.0], requires_grad=False), leaf([3.0, 4.0])
    z = x * w
    with mg.no_grad():
        x.mul_(2)                      # dL/dw reads x: refused
    with pytest.raises(RuntimeError, match="input 0 of Mul"):
        z.sum().backward()


@pytest.mark.parametrize("make_index", [mg.tensor, np.array])
def test_an_index_edited_in_place_after_getitem_does_not_move_the_gradient(make_index):
    """x[idx] keeps its own copy of the positions: editing idx (a tensor or a NumPy array) in
    place before backward must give the gradient of the graph as it was built, not scatter to
    the new positions."""
    x = mg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    idx = make_index([0, 2, 2])
    y = x[idx]
    if isinstance(idx, mg.Tensor):
        with mg.no_grad():
            idx.fill_(3)
    else:
        idx[:] = 3
    y.backward(mg.tensor([1.0, 10.0, 100.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0, 110.0, 0.0])
