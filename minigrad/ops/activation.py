"""Activation functions: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax.

Each backward is written with minigrad's own ops (mostly from the saved output), so it can
be differentiated again.  Derivations: docs/derivations/activation.md.
"""
import numpy as np

from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor
from .elementwise import exp
from .reduce import normalize_axis, sum


def _constant(array):
    """A raw array as a constant tensor (asarray: NumPy turns 0-d results into scalars)."""
    return Tensor._wrap(backend.array_module(array).asarray(array))


@register
class ReLU(Function):
    """z = max(x, 0)        dL/dx = g * [x > 0]  (= relu_grad(g, z): z > 0 exactly where x > 0)

    At x == 0 the derivative is taken as 0 (PyTorch's choice; any value in [0, 1] is a
    valid subgradient there).  On the CPU both directions are single-pass numba kernels
    (minigrad/backend/cpu.py): ReLU sits after every hidden layer, on the largest activations."""

    def forward(self, x):
        if backend.array_module(x) is np:
            return backend.cpu_kernels.relu(x)
        return backend.array_module(x).maximum(x, 0)

    def backward(self, g):
        return relu_grad(g, self.saved_output)


@register
class ReLUGrad(Function):
    """z = g * [y > 0]: the gradient ReLU passes back, given its output y.

    dL/dg = gz * [y > 0] (the same gate again, so ReLU differentiates twice);
    dL/dy = 0 (the gate is piecewise constant in y)."""

    def forward(self, g, y):
        if backend.array_module(g) is np:
            return backend.cpu_kernels.relu_backward(g, y)
        return backend.array_module(g).where(y > 0, g, 0).astype(g.dtype, copy=False)

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
        xp = backend.array_module(x)
        self.mask, self.slope = x > 0, negative_slope
        return xp.where(self.mask, x, x * x.dtype.type(negative_slope))

    def backward(self, g):
        # 1 where x > 0, else s:  mask * (1 - s) + s
        scale = self.mask * g.dtype.type(1 - self.slope) + g.dtype.type(self.slope)
        return g * _constant(scale)


@register
class Sigmoid(Function):
    """z = 1 / (1 + e^-x)       dL/dx = g * z * (1 - z)

    Computed from e = exp(-|x|) <= 1 as 1/(1+e) for x >= 0 and e/(1+e) for x < 0, so no exp
    overflows and tiny values for very negative x keep their relative precision."""

    def forward(self, x):
        xp = backend.array_module(x)
        e = xp.exp(-xp.abs(x))
        denom = 1 + e
        return xp.where(x >= 0, 1, e) / denom

    def backward(self, g):
        z = self.saved_output
        return g * z * (1 - z)


@register
class Tanh(Function):
    """z = tanh x       dL/dx = g * (1 - z^2)"""

    def forward(self, x):
        return backend.array_module(x).tanh(x)

    def backward(self, g):
        z = self.saved_output
        return g * (1 - z * z)


@register
class Softmax(Function):
    """z_i = exp(x_i - m) / sum_j exp(x_j - m) along ``axis`` (m = max_j x_j, for stability)

    dL/dx = z * (g - sum_j g_j z_j)     (the Jacobian diag(z) - z z^T applied to g)"""

    def forward(self, x, axis):
        xp = backend.array_module(x)
        self.axis = axis
        if x.size == 0:
            return xp.empty_like(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        return e

    def backward(self, g):
        z = self.saved_output
        return z * (g - sum(g * z, axis=self.axis, keepdims=True))


@register
class LogSoftmax(Function):
    """z_i = x_i - logsumexp(x) = (x_i - m) - log sum_j exp(x_j - m) along ``axis``

    dL/dx = g - exp(z) * sum_j g_j       (exp(z) is the softmax)"""

    def forward(self, x, axis):
        xp = backend.array_module(x)
        self.axis = axis
        if x.size == 0:
            return xp.empty_like(x)
        shifted = x - x.max(axis=axis, keepdims=True)
        shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return shifted

    def backward(self, g):
        return g - exp(self.saved_output) * sum(g, axis=self.axis, keepdims=True)


# -- functional forms ---------------------------------------------------------------------


def relu(x):
    return ReLU.apply(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU.apply(x, negative_slope=negative_slope)


def sigmoid(x):
    return Sigmoid.apply(x)


def tanh(x):
    return Tanh.apply(x)


def _softmax_axis(op, x, axis, dim):
    if dim is not None:
        if axis != -1 and axis is not None:
            raise TypeError(f"{op}: pass either axis or dim, not both (got axis={axis}, dim={dim})")
        axis = dim
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if x.ndim == 0:
        normalize_axis(int(axis), 0, op)  # only 0 / -1 are valid, as in PyTorch
        return None
    return normalize_axis(int(axis), x.ndim, op)[0]


def softmax(x, axis=-1, *, dim=None):
    """exp(x) / sum(exp(x)) along ``axis`` (default: the last), computed without overflow."""
    return Softmax.apply(x, axis=_softmax_axis("softmax", x, axis, dim))


def log_softmax(x, axis=-1, *, dim=None):
    """log(softmax(x)) along ``axis``, computed stably (finite even for logits like 1e4)."""
    return LogSoftmax.apply(x, axis=_softmax_axis("log_softmax", x, axis, dim))
