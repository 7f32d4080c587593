"""minigrad.gradcheck must catch wrong gradients, not only pass right ones."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import Function
from minigrad.gradcheck import GradcheckError


class _WrongSquare(Function):
    """z = x^2 with a backward that is wrong for one element (the last): 2x + 1 there."""

    def forward(self, x):
        return x * x

    def backward(self, g):
        (x,) = self.saved_tensors
        bump = np.zeros(x.shape)
        bump.reshape(-1)[-1] = 1.0
        return g * (2 * x + mg.Tensor._wrap(bump))


class _BrokenNormalize(Function):
    """z = x / sum(x) (softmax-like: sum(z) is always 1), with a wrong backward.

    The right one is (g - sum(g z)) / s.  The broken one, (g - mean(g)) / s, agrees with it
    whenever g is constant, so the gradient of sum(z) (g = ones) is 0 for both, as it should
    be; only a random upstream gradient exposes the bug."""

    def forward(self, x):
        self.s = x.sum()
        return x / self.s

    def backward(self, g):
        return (g - g.mean()) / float(self.s)


class _RightNormalize(_BrokenNormalize):
    saves_output = True

    def backward(self, g):
        z = self.saved_output
        return (g - (g * z).sum()) / float(self.s)


class _WrongDoubleBackward(Function):
    """z = x^3 whose backward is right in value but built from a constant, so its own
    derivative (the second derivative 6x) comes out as 0."""

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * mg.Tensor._wrap(3 * x.array ** 2)  # a constant: no tape to differentiate


def test_a_wrong_backward_is_caught_and_the_message_shows_where():
    x = mg.tensor([[0.5, -1.0], [2.0, 1.5]], dtype=mg.float64)
    with pytest.raises(GradcheckError) as info:
        mg.gradcheck(lambda t: _WrongSquare.apply(t), x)
    message = str(info.value)
    assert "_WrongSquare" in message  # the op
    assert "input 0 (shape (2, 2))" in message  # which input
    assert "worst element (1, 1) at x=1.5" in message  # where
    assert "analytic" in message and "numerical" in message  # both values
    analytic, numerical = (float(s.split()[0]) for s in message.split("analytic ")[1].split(" vs numerical "))
    v = np.random.default_rng(0).standard_normal((2, 2))[1, 1]  # gradcheck's upstream at (1, 1)
    assert analytic == pytest.approx(v * 4.0) and numerical == pytest.approx(v * 3.0, rel=1e-6)


def test_the_upstream_gradient_is_not_all_ones():
    x = mg.tensor([0.5, 1.0, 2.0, 1.5], dtype=mg.float64)
    # with an all-ones upstream gradient the broken backward is indistinguishable
    # from the right one: both give 0, the true gradient of the constant sum(z) = 1
    for op in (_BrokenNormalize, _RightNormalize):
        x1 = mg.tensor(x.numpy(), requires_grad=True)
        op.apply(x1).sum().backward()
        np.testing.assert_allclose(x1.grad.numpy(), 0.0, atol=1e-12)
    with pytest.raises(GradcheckError, match="_BrokenNormalize"):
        mg.gradcheck(lambda t: _BrokenNormalize.apply(t), x)
    assert mg.gradcheck(lambda t: _RightNormalize.apply(t), x)


def test_directional_mode_passes_right_and_catches_wrong_gradients():
    x = mg.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=mg.float64)
    assert mg.gradcheck(lambda t: mg.sin(t) * t, x, directional=True)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3, 4\)\), directional derivative: analytic"):
        mg.gradcheck(lambda t: _WrongSquare.apply(t), x, directional=True)


def test_gradgradcheck_catches_a_wrong_double_backward():
    x = mg.tensor([0.5, -1.0, 2.0], dtype=mg.float64)
    assert mg.gradcheck(lambda t: _WrongDoubleBackward.apply(t), x)  # first order is right
    with pytest.raises(GradcheckError, match="gradcheck failed for grad of"):
        mg.gradgradcheck(lambda t: _WrongDoubleBackward.apply(t), x)
    assert mg.gradgradcheck(lambda t: t ** 3, x)


def test_only_inputs_that_require_grad_are_checked_and_constants_pass_through():
    x = mg.tensor([1.0, 2.0], dtype=mg.float64, requires_grad=True)
    w = mg.tensor([3.0, -1.0], dtype=mg.float64)  # not checked: x requires grad, w does not

    def fn(x, w, scale):
        return x * w * scale + _WrongSquare.apply(w)

    assert mg.gradcheck(fn, x, w, 2.0)
    with pytest.raises(GradcheckError, match="input 1"):
        mg.gradcheck(fn, x, w.requires_grad_(), 2.0)


def test_gradcheck_needs_a_floating_input():
    with pytest.raises(ValueError, match="gradcheck: no floating-point input"):
        mg.gradcheck(lambda t: t, mg.tensor([1, 2]))


def test_gradcheck_records_the_ops_it_saw():
    from minigrad.gradcheck import observers

    seen = []
    observers.append(lambda kind, names: seen.append((kind, names)))
    try:
        mg.gradcheck(lambda t: mg.exp(t).sum(), mg.tensor([1.0], dtype=mg.float64))
        assert ("gradcheck", {"Exp", "Sum"}) in seen and ("inplace", {"Exp", "Sum"}) in seen
        assert not any(kind == "gradgradcheck" for kind, _ in seen)
        mg.gradgradcheck(lambda t: mg.sin(t), mg.tensor([1.0], dtype=mg.float64))
        assert any(kind == "gradgradcheck" and "Sin" in names for kind, names in seen)
    finally:
        observers.pop()
