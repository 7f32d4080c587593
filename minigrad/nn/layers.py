"""Layers: Linear (alias Dense), activations, Flatten, Dropout (and its channel versions),
Upsample, Identity."""

import numpy as np

from .. import backend
from ..backend import Device
from ..ops import flatten, gelu, linear, log_softmax, sigmoid, softmax, tanh
from . import init
from .._arguments import check_probability
from .functional import (dropout, dropout1d, dropout2d, dropout3d, interpolate, leaky_relu, relu,
                         silu)
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


def _inplace_flag(cls, inplace):
    if not isinstance(inplace, bool):
        raise TypeError(f"{cls}: inplace must be True or False, got {inplace!r}")
    return inplace


class ReLU(Module):
    """relu(x) = max(x, 0).  ``inplace=True`` overwrites the input (recorded like any in-place
    op: the engine raises if a value some backward needs is overwritten, as PyTorch does)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = _inplace_flag("ReLU", inplace)

    def forward(self, x):
        return relu(x, self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x (``inplace=True`` overwrites the input)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = _inplace_flag("LeakyReLU", inplace)

    def forward(self, x):
        return leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


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
    """x * sigmoid(x) (also called swish; ``inplace=True`` overwrites the input)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = _inplace_flag("SiLU", inplace)

    def forward(self, x):
        return silu(x, self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


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
    the identity in eval mode.  ``inplace=True`` overwrites the input."""

    _fn = staticmethod(dropout)

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        check_probability(p, type(self).__name__)
        self.p = float(p)
        self.inplace = _inplace_flag(type(self).__name__, inplace)

    def forward(self, x):
        return self._fn(x, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")


class Dropout1d(Dropout):
    """Zero whole channels of (N, C, L) with probability p while training (F.dropout1d)."""

    _fn = staticmethod(dropout1d)


class Dropout2d(Dropout):
    """Zero whole channels of (N, C, H, W) with probability p while training (F.dropout2d):
    neighbouring pixels are correlated, so dropping single ones barely regularizes."""

    _fn = staticmethod(dropout2d)


class Dropout3d(Dropout):
    """Zero whole channels of (N, C, D, H, W) with probability p while training."""

    _fn = staticmethod(dropout3d)


class Upsample(Module):
    """Resize the spatial dimensions: ``F.interpolate(x, size, scale_factor, mode, align_corners)``."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x):
        return interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                           self.recompute_scale_factor)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a layer)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
