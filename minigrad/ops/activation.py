"""Activation functions: relu, leaky_relu, sigmoid, tanh, gelu, silu, softmax, log_softmax.

Each forward is one kernel from the table (``backend.kernels(x)``).  Each backward is the
derivative in the docstring written with minigrad ops, so it can be differentiated again
(create_graph=True), and ``fused_backward`` computes the same gradient in one kernel, which
the engine runs instead when the gradient is not recorded (training): docs/autograd.md,
"Higher derivatives".  Derivations: docs/derivations/activation.md.
"""
import math
import numbers

from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor
from .elementwise import clip, exp, floating, where
from .reduce import normalize_axis, sum


def _k(array):
    return backend.kernels(array)


def _wrap(out):
    """A fused backward kernel's result as a Tensor (on a 0-d input NumPy gives a scalar)."""
    return Tensor._wrap(backend.array_module(out).asarray(out))


# The three gradients that recur (the recurrent cells use them too), from the output y:
def relu_grad(g, y):
    """g * [y > 0]: ReLU's backward (0 where y <= 0, also for an infinite g)."""
    return where(y > 0, g, 0.0)


def sigmoid_grad(g, y):
    """g * y (1 - y): sigmoid's backward (the bounded factor first: g * y may overflow)."""
    return g * (y * (1 - y))


def tanh_grad(g, y):
    """g * (1 - y^2): tanh's backward."""
    return g * (1 - y * y)


@register
class ReLU(Function):
    """z = max(x, 0)        dL/dx = g * [x > 0]  (= g * [z > 0]: z > 0 exactly where x > 0)

    At x == 0 the derivative is taken as 0 (PyTorch's choice; any value in [0, 1] is a
    valid subgradient there).  On the CPU both directions are single-pass numba kernels:
    ReLU sits after every hidden layer, on the largest activations."""

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return _k(x).relu(x)

    def backward(self, g):
        return relu_grad(g, self.saved_output)

    def fused_backward(self, g):
        return _wrap(_k(g.array).relu_backward(g.array, self.saved_output.array))


@register
class LeakyReLU(Function):
    """z = x if x > 0 else s * x  (s = negative_slope)      dL/dx = g * (1 if x > 0 else s)

    At x == 0 the derivative is taken as s, as in PyTorch."""

    def forward(self, x, negative_slope):
        self.slope = negative_slope
        return _k(x).leaky_relu(x, negative_slope)

    def backward(self, g):
        return where(self.inputs[0] > 0, g, g * self.slope)

    def fused_backward(self, g):
        return _wrap(_k(g.array).leaky_relu_backward(g.array, self.inputs[0].array, self.slope))


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
        return sigmoid_grad(g, self.saved_output)

    def fused_backward(self, g):
        return _wrap(_k(g.array).sigmoid_backward(g.array, self.saved_output.array))


@register
class Tanh(Function):
    """z = tanh x       dL/dx = g * (1 - z^2)"""

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return _k(x).tanh(x)

    def backward(self, g):
        return tanh_grad(g, self.saved_output)

    def fused_backward(self, g):
        return _wrap(_k(g.array).tanh_backward(g.array, self.saved_output.array))


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_C = 0.044715


@register
class GELU(Function):
    """z = x Phi(x), Phi the standard normal CDF (approximate="none"):
        z = 0.5 x (1 + erf(x / sqrt 2)),       dL/dx = g (Phi(x) + x phi(x)),  phi = Phi'
    or its tanh approximation (approximate="tanh", as in GPT-2):
        z = 0.5 x (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
        dL/dx = g (0.5 (1 + t) + 0.5 x (1 - t^2) u'),   t = tanh u
    (gelu' is an op of its own, GELUDerivative: Phi needs erf, which is a kernel.)"""

    def forward(self, x, approximate):
        self.approximate = approximate
        return _k(x).gelu(x, approximate)

    def backward(self, g):
        return g * GELUDerivative.apply(self.inputs[0], approximate=self.approximate)

    def fused_backward(self, g):
        return _wrap(_k(g.array).gelu_backward(g.array, self.inputs[0].array, self.approximate))


@register
class GELUDerivative(Function):
    """z = gelu'(x) (the kernel gelu_backward with g = 1), so that GELU's backward is ops.

    dL/dx = g * gelu''(x), with
        "none":  gelu'' = phi(x) (2 - x^2)
        "tanh":  gelu'' = (1 - t^2) (u' + 0.5 x (u'' - 2 t u'^2)),  u'' = 6 * 0.044715 sqrt(2/pi) x
    written with minigrad ops, so it differentiates again."""

    def forward(self, x, approximate):
        self.approximate = approximate
        return _k(x).gelu_backward(backend.array_module(x).ones_like(x), x, approximate)

    def backward(self, g):
        x = self.inputs[0]
        if self.approximate == "tanh":
            # From |x| = 10 on, u >= 43.6 and t rounds to exactly +-1 (float32 and float64), so
            # gelu'' = 0 there; x is clipped so that x^3 and u'^2 stay finite (at |x| = 1e13 in
            # float32 they overflow, and (1 - t^2) * inf would be NaN instead of that 0)
            x = clip(x, -10.0, 10.0)
            x2 = x * x
            t = tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x2 * x))
            du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x2)
            d2u = (6 * _GELU_C * _SQRT_2_OVER_PI) * x
            second = (1 - t * t) * (du + 0.5 * x * (d2u - 2 * t * du * du))
        else:  # phi (2 - x^2) as 2 phi - (x phi) x: x^2 overflows (x = 1e20) where phi is 0
            pdf = _INV_SQRT_2PI * exp(-0.5 * (x * x))
            second = 2 * pdf - (x * pdf) * x
        return g * second


@register
class SiLU(Function):
    """z = x s,  s = sigmoid(x)        dL/dx = g s (1 + x (1 - s))"""

    def forward(self, x):
        return _k(x).silu(x)

    def backward(self, g):
        x = self.inputs[0]
        s = sigmoid(x)
        return g * (s * (1 + x * (1 - s)))

    def fused_backward(self, g):
        return _wrap(_k(g.array).silu_backward(g.array, self.inputs[0].array))


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
        z = self.saved_output
        return z * (g - sum(g * z, axis=self.axis, keepdims=True))

    def fused_backward(self, g):
        z = self.saved_output.array
        return _wrap(_rowwise(_k(z).softmax_backward, self.axis, g.array, z))


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
        return g - exp(self.saved_output) * sum(g, axis=self.axis, keepdims=True)

    def fused_backward(self, g):
        z = self.saved_output.array
        return _wrap(_rowwise(_k(z).log_softmax_backward, self.axis, g.array, z))


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
