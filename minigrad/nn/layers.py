"""Layers: Linear (alias Dense), activations, Flatten, Dropout, Identity."""

import numpy as np

from .. import backend
from ..backend import Device
from ..ops import flatten, gelu, leaky_relu, linear, log_softmax, relu, sigmoid, silu, softmax, tanh
from . import init
from .functional import _check_p, dropout
from .module import Module
from .parameter import Parameter


def _empty(shape, device, dtype):
    xp = (Device(device) if device is not None else backend.default_device()).xp
    return xp.empty(shape, dtype=np.dtype(dtype) if dtype is not None else backend.get_default_dtype())


def _weight_and_bias(module, weight_shape, bias, device, dtype):
    """Give a Linear/Conv layer its ``weight`` and ``bias`` Parameters (bias None when
    ``bias=False``) and PyTorch's default initial values."""
    module.weight = Parameter(_empty(weight_shape, device, dtype))
    if bias:
        module.bias = Parameter(_empty(weight_shape[:1], device, dtype))
    else:
        module.register_parameter("bias", None)
    init.default_(module.weight, module.bias)


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) and b of shape (out_features,).

    PyTorch's default initialisation: W ~ kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)),
    and b ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Linear: {name} must be a non-negative integer, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        _weight_and_bias(self, (self.out_features, self.in_features), bias, device, dtype)

    def reset_parameters(self):
        init.default_(self.weight, self.bias)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


Dense = Linear


class ReLU(Module):
    """relu(x) = max(x, 0)"""

    def forward(self, x):
        return relu(x)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x"""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x))"""

    def forward(self, x):
        return sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return tanh(x)


class GELU(Module):
    """x Phi(x) (Phi the standard normal CDF); approximate="tanh" uses the tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""


class SiLU(Module):
    """x * sigmoid(x) (also called swish)."""

    def forward(self, x):
        return silu(x)


class Softmax(Module):
    """softmax along ``dim`` (PyTorch requires it; here it defaults to the last axis)."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log_softmax along ``dim``."""

    def forward(self, x):
        return log_softmax(x, self.dim)


class Flatten(Module):
    """Merge dimensions start_dim..end_dim into one (by default all but the batch dimension)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Inverted dropout while training (zero with probability p, scale the rest by 1/(1-p));
    the identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        _check_p(p, "Dropout")
        self.p = float(p)

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a layer)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
