"""Conv2d: a learnable 2-D convolution layer (PyTorch's ``nn.Conv2d``)."""
import numbers

from ..ops import conv2d
from ..ops.conv import _pair
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
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
