"""Activation functions: relu, leaky_relu, sigmoid, tanh, gelu, silu, softmax, log_softmax.

Each forward and each backward is one kernel from the table (``backend.kernels(x)``).  The
backward is itself an op (ReLUGrad, SigmoidGrad, ...): its forward is the fused backward
kernel, and its own backward is written with minigrad ops, so every activation can be
differentiated twice (and more).  Derivations: docs/derivations/activation.md.
"""
import math
import numbers

from .. import backend
from ..autograd import Function, register
from .elementwise import exp, floating
from .reduce import normalize_axis, sum


def _k(array):
    return backend.kernels(array)


@register
class ReLU(Function):
    """z = max(x, 0)        dL/dx = g * [x > 0]  (= relu_grad(g, z): z > 0 exactly where x > 0)

    At x == 0 the derivative is taken as 0 (PyTorch's choice; any value in [0, 1] is a
    valid subgradient there).  On the CPU both directions are single-pass numba kernels:
    ReLU sits after every hidden layer, on the largest activations."""

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return _k(x).relu(x)

    def backward(self, g):
        return relu_grad(g, self.saved_output)


@register
class ReLUGrad(Function):
    """z = g * [y > 0]: the gradient ReLU passes back, given its output y.

    dL/dg = gz * [y > 0] (the same gate again, so ReLU differentiates twice);
    dL/dy = 0 (the gate is piecewise constant in y)."""

    saves_inputs = (1,)  # y

    def forward(self, g, y):
        return _k(g).relu_backward(g, y)

    def backward(self, gz):
        return relu_grad(gz, self.inputs[1]), None


def relu_grad(g, y):
    """g gated by y > 0 (ReLU's backward; differentiable in g)."""
    return ReLUGrad.apply(g, y)


@register
class LeakyReLU(Function):
    """z = x if x > 0 else s * x  (s = negative_slope)      dL/dx = g * (1 if x > 0 else s)

    At x == 0 the derivative is taken as s, as in PyTorch."""

    def forward(self, x, negative_slope):
        self.slope = negative_slope
        return _k(x).leaky_relu(x, negative_slope)

    def backward(self, g):
        return LeakyReLUGrad.apply(g, self.inputs[0], negative_slope=self.slope)


@register
class LeakyReLUGrad(Function):
    """z = g * (1 if x > 0 else s): LeakyReLU's backward.

    dL/dg = gz * (1 if x > 0 else s) (the same op again);  dL/dx = 0 (piecewise constant)."""

    saves_inputs = (1,)  # x

    def forward(self, g, x, negative_slope):
        self.slope = negative_slope
        return _k(g).leaky_relu_backward(g, x, negative_slope)

    def backward(self, gz):
        return LeakyReLUGrad.apply(gz, self.inputs[1], negative_slope=self.slope), None


@register
class Sigmoid(Function):
    """z = 1 / (1 + e^-x)       dL/dx = g * z * (1 - z)

    Computed from e = exp(-|x|) <= 1 as 1/(1+e) for x >= 0 and e/(1+e) for x < 0, so no exp
    overflows and tiny values for very negative x keep their relative precision."""

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return _k(x).sigmoid(x)

    def backward(self, g):
        return SigmoidGrad.apply(g, self.saved_output)


@register
class SigmoidGrad(Function):
    """z = g * y * (1 - y): Sigmoid's backward, from its output y.

    dL/dg = gz * y * (1 - y) (the same op again);   dL/dy = gz * g * (1 - 2 y)."""

    def forward(self, g, y):
        return _k(g).sigmoid_backward(g, y)

    def backward(self, gz):
        g, y = self.inputs
        gg = SigmoidGrad.apply(gz, y) if g.requires_grad else None
        gy = gz * (g * (1 - 2 * y)) if y.requires_grad else None  # (bounded factor first: gz * g may overflow)
        return gg, gy


@register
class Tanh(Function):
    """z = tanh x       dL/dx = g * (1 - z^2)"""

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return _k(x).tanh(x)

    def backward(self, g):
        return TanhGrad.apply(g, self.saved_output)


@register
class TanhGrad(Function):
    """z = g * (1 - y^2): Tanh's backward, from its output y.

    dL/dg = gz * (1 - y^2) (the same op again);   dL/dy = -2 gz g y."""

    def forward(self, g, y):
        return _k(g).tanh_backward(g, y)

    def backward(self, gz):
        g, y = self.inputs
        gg = TanhGrad.apply(gz, y) if g.requires_grad else None
        gy = gz * (g * (-2 * y)) if y.requires_grad else None  # (bounded factor first: gz * g may overflow)
        return gg, gy


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_C = 0.044715


@register
class GELU(Function):
    """z = x Phi(x), Phi the standard normal CDF (approximate="none"):
        z = 0.5 x (1 + erf(x / sqrt 2)),       dL/dx = g (Phi(x) + x phi(x)),  phi = Phi'
    or its tanh approximation (approximate="tanh", as in GPT-2):
        z = 0.5 x (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
        dL/dx = g (0.5 (1 + t) + 0.5 x (1 - t^2) u'),   t = tanh u"""

    def forward(self, x, approximate):
        self.approximate = approximate
        return _k(x).gelu(x, approximate)

    def backward(self, g):
        return GELUGrad.apply(g, self.inputs[0], approximate=self.approximate)


@register
class GELUGrad(Function):
    """z = g * gelu'(x): GELU's backward.

    dL/dg = gz * gelu'(x) (the same op again);   dL/dx = gz * g * gelu''(x), with
        "none":  gelu'' = phi(x) (2 - x^2)
        "tanh":  gelu'' = (1 - t^2) (u' + 0.5 x (u'' - 2 t u'^2)),  u'' = 6 * 0.044715 sqrt(2/pi) x
    written with minigrad ops, so it differentiates again."""

    def forward(self, g, x, approximate):
        self.approximate = approximate
        return _k(g).gelu_backward(g, x, approximate)

    def backward(self, gz):
        g, x = self.inputs
        gg = GELUGrad.apply(gz, x, approximate=self.approximate) if g.requires_grad else None
        gx = None
        if x.requires_grad:
            if self.approximate == "tanh":
                x2 = x * x
                t = tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x2 * x))
                du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x2)
                d2u = (6 * _GELU_C * _SQRT_2_OVER_PI) * x
                second = (1 - t * t) * (du + 0.5 * x * (d2u - 2 * t * du * du))
            else:  # phi (2 - x^2) as 2 phi - (x phi) x: x^2 overflows (x = 1e20) where phi is 0
                pdf = _INV_SQRT_2PI * exp(-0.5 * (x * x))
                second = 2 * pdf - (x * pdf) * x
            gx = gz * (g * second)  # (bounded factor first: gz * g may overflow)
        return gg, gx


@register
class SiLU(Function):
    """z = x s,  s = sigmoid(x)        dL/dx = g s (1 + x (1 - s))"""

    def forward(self, x):
        return _k(x).silu(x)

    def backward(self, g):
        return SiLUGrad.apply(g, self.inputs[0])


@register
class SiLUGrad(Function):
    """z = g s (1 + x (1 - s)): SiLU's backward (s = sigmoid(x)).

    dL/dg = gz s (1 + x (1 - s)) (the same op again);
    dL/dx = gz g s (1 - s) (2 + x (1 - 2 s))   (the second derivative of x s)."""

    def forward(self, g, x):
        return _k(g).silu_backward(g, x)

    def backward(self, gz):
        g, x = self.inputs
        gg = SiLUGrad.apply(gz, x) if g.requires_grad else None
        gx = None
        if x.requires_grad:
            s = sigmoid(x)
            gx = gz * (g * (s * (1 - s) * (2 + x * (1 - 2 * s))))  # (gz * g may overflow)
        return gg, gx


def _rowwise(kernel, axis, *arrays):
    """Call a softmax-family kernel along ``axis``; None means a 0-d input (one row of 1)."""
    if axis is None:
        return kernel(*(a.reshape(1) for a in arrays), 0).reshape(())
    return kernel(*arrays, axis)


@register
class Softmax(Function):
    """z_i = exp(x_i - m) / sum_j exp(x_j - m) along ``axis`` (m = max_j x_j, for stability)

    dL/dx = z * (g - sum_j g_j z_j)     (the Jacobian diag(z) - z z^T applied to g)"""

    saves_inputs = False
    saves_output = True

    def forward(self, x, axis):
        self.axis = axis
        return _rowwise(_k(x).softmax, axis, x)

    def backward(self, g):
        return SoftmaxGrad.apply(g, self.saved_output, axis=self.axis)


@register
class SoftmaxGrad(Function):
    """z = y * (g - S),  S = sum(g * y) along the axis: Softmax's backward, from its output y.

    dL/dg = y * (gz - sum(gz * y)) (the same op again: the Jacobian is symmetric);
    dL/dy = gz * (g - S) - g * sum(gz * y)."""

    def forward(self, g, y, axis):
        self.axis = axis
        return _rowwise(_k(g).softmax_backward, axis, g, y)

    def backward(self, gz):
        g, y = self.inputs
        gg = SoftmaxGrad.apply(gz, y, axis=self.axis) if g.requires_grad else None
        gy = None
        if y.requires_grad:
            gy = gz * (g - sum(g * y, axis=self.axis, keepdims=True)) - g * sum(gz * y, axis=self.axis, keepdims=True)
        return gg, gy


@register
class LogSoftmax(Function):
    """z_i = x_i - logsumexp(x) = (x_i - m) - log sum_j exp(x_j - m) along ``axis``

    dL/dx = g - exp(z) * sum_j g_j       (exp(z) is the softmax)"""

    saves_inputs = False
    saves_output = True

    def forward(self, x, axis):
        self.axis = axis
        return _rowwise(_k(x).log_softmax, axis, x)

    def backward(self, g):
        return LogSoftmaxGrad.apply(g, self.saved_output, axis=self.axis)


@register
class LogSoftmaxGrad(Function):
    """z = g - exp(y) * sum(g) along the axis: LogSoftmax's backward, from its output y.

    dL/dg = gz - sum(gz * exp(y))   (the transposed Jacobian);
    dL/dy = -gz * exp(y) * sum(g)."""

    def forward(self, g, y, axis):
        self.axis = axis
        return _rowwise(_k(g).log_softmax_backward, axis, g, y)

    def backward(self, gz):
        g, y = self.inputs
        p = exp(y)
        gg = gz - sum(gz * p, axis=self.axis, keepdims=True) if g.requires_grad else None
        gy = -gz * p * sum(g, axis=self.axis, keepdims=True) if y.requires_grad else None
        return gg, gy


# -- functional forms ---------------------------------------------------------------------


def relu(x):
    return ReLU.apply(x)


# Every activation but relu computes in a floating dtype: an integer or bool tensor is cast to
# the default dtype first (elementwise.floating, the one promotion rule).  relu keeps integers,
# as in PyTorch: max(x, 0) of an integer is an integer.


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU.apply(floating(x), negative_slope=negative_slope)


def sigmoid(x):
    return Sigmoid.apply(floating(x))


def tanh(x):
    return Tanh.apply(floating(x))


def gelu(x, approximate="none"):
    """Gaussian error linear unit x Phi(x) (PyTorch's F.gelu); approximate="tanh" is the
    tanh approximation used by GPT-2."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(floating(x), approximate=approximate)


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    return SiLU.apply(floating(x))


def _softmax_axis(op, x, axis, dim):
    if dim is not None:
        if axis != -1 and axis is not None:
            raise TypeError(f"{op}: pass either axis or dim, not both (got axis={axis}, dim={dim})")
        axis = dim
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if x.ndim == 0:
        normalize_axis(int(axis), 0, op)  # only 0 / -1 are valid, as in PyTorch
        return None
    return normalize_axis(int(axis), x.ndim, op)[0]


def softmax(x, axis=-1, *, dim=None):
    """exp(x) / sum(exp(x)) along ``axis`` (default: the last), computed without overflow."""
    return Softmax.apply(floating(x), axis=_softmax_axis("softmax", x, axis, dim))


def log_softmax(x, axis=-1, *, dim=None):
    """log(softmax(x)) along ``axis``, computed stably (finite even for logits like 1e4)."""
    return LogSoftmax.apply(floating(x), axis=_softmax_axis("log_softmax", x, axis, dim))
