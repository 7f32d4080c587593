"""Conv1d and Conv2d: learnable convolution layers (PyTorch's ``nn.Conv1d`` / ``nn.Conv2d``)."""
import numbers

from ..ops import conv1d, conv2d
from ..ops.conv import _pair, _single
from . import init
from .layers import _weight_and_bias
from .module import Module


class Conv2d(Module):
    """y = conv2d(x, W, b, stride, padding, dilation, groups), x (N, C_in, H, W) ->
    (N, C_out, oh, ow), with W of shape (C_out, C_in / groups, kh, kw) and b of shape (C_out,).

    PyTorch's default initialisation: W ~ kaiming_uniform_(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_in / groups * kh * kw, and
    b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, device=None, dtype=None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Conv2d: {name} must be a positive integer, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} and out_channels={out_channels} "
                             f"must both be divisible by groups={groups}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = _pair(padding, "padding", "Conv2d", 0)
        self.dilation = _pair(dilation, "dilation", "Conv2d", 1)
        self.groups = int(groups)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        _weight_and_bias(self, shape, bias, device, dtype)

    def reset_parameters(self):
        init.default_(self.weight, self.bias)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if any(self.padding):
            s += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(Module):
    """y = conv1d(x, W, b, stride, padding, dilation, groups), x (N, C_in, L) -> (N, C_out, ol),
    with W of shape (C_out, C_in / groups, k) and b of shape (C_out,); PyTorch's default
    initialisation (as Conv2d's, with fan_in = C_in / groups * k).  Runs as a Conv2d over an
    image of height 1 (ops/conv.py, ``conv1d``)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, device=None, dtype=None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Conv1d: {name} must be a positive integer, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv1d: in_channels={in_channels} and out_channels={out_channels} "
                             f"must both be divisible by groups={groups}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = (_single(kernel_size, "kernel_size", "Conv1d", 1),)
        self.stride = (_single(stride, "stride", "Conv1d", 1),)
        self.padding = (_single(padding, "padding", "Conv1d", 0),)
        self.dilation = (_single(dilation, "dilation", "Conv1d", 1),)
        self.groups = int(groups)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        _weight_and_bias(self, shape, bias, device, dtype)

    reset_parameters = Conv2d.reset_parameters
    extra_repr = Conv2d.extra_repr

    def forward(self, x):
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
