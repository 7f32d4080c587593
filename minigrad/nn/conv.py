"""Conv1d and Conv2d: learnable convolution layers (PyTorch's ``nn.Conv1d`` / ``nn.Conv2d``)."""

from ..ops import conv1d, conv2d
from .._arguments import positive_int, sizes
from ..ops.shape import functional_pad
from . import init
from .layers import _weight_and_bias
from .module import Module


_PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


class _ConvNd(Module):
    """What Conv1d and Conv2d share: the arguments, checked, and PyTorch's initialisation.
    A subclass names its op (``_conv``) and how an int or tuple becomes one entry per spatial
    dimension (``_ndim``: the number of spatial axes).

    ``padding`` is an int, a tuple, "valid" (none) or "same" (the output keeps the input's
    length, stride 1 only: d (k - 1) in all, the odd one on the right, as PyTorch);
    ``padding_mode`` "zeros", "reflect", "replicate" or "circular" (the others pad with
    ``F.pad`` first, then convolve without padding)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        in_channels, out_channels, groups = (positive_int(v, arg, name) for arg, v in (
            ("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)))
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels={in_channels} and out_channels={out_channels} "
                             f"must both be divisible by groups={groups}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = sizes(kernel_size, self._ndim, "kernel_size", name, 1)
        self.stride = sizes(stride, self._ndim, "stride", name, 1)
        self.dilation = sizes(dilation, self._ndim, "dilation", name, 1)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {', '.join(_PADDING_MODES)}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
            if padding == "same" and any(st != 1 for st in self.stride):
                raise ValueError(f"{name}: padding='same' needs stride 1, got stride={self.stride}")
            self.padding = padding
            total = [d * (k - 1) if padding == "same" else 0 for d, k in zip(self.dilation, self.kernel_size)]
            self._sides = [(t // 2, t - t // 2) for t in total]
        else:
            self.padding = sizes(padding, self._ndim, "padding", name, 0)
            self._sides = [(p, p) for p in self.padding]
        self.groups = groups
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        _weight_and_bias(self, shape, bias, device, dtype)

    def reset_parameters(self):
        init.default_(self.weight, self.bias)

    def forward(self, x):
        sides = self._sides
        if self.padding_mode == "zeros" and all(a == b for a, b in sides):
            padding = tuple(a for a, _ in sides)  # symmetric zeros: the convolution pads itself
        else:
            pads = tuple(v for pair in reversed(sides) for v in pair)  # F.pad lists the last dim first
            x = functional_pad(x, pads, mode=_PADDING_MODES[self.padding_mode])
            padding = (0,) * len(sides)
        return self._conv(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if isinstance(self.padding, str) or any(self.padding):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """y = conv2d(x, W, b, stride, padding, dilation, groups), x (N, C_in, H, W) ->
    (N, C_out, oh, ow), with W of shape (C_out, C_in / groups, kh, kw) and b of shape (C_out,).

    PyTorch's default initialisation: W ~ kaiming_uniform_(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_in / groups * kh * kw, and
    b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    _conv = staticmethod(conv2d)
    _ndim = 2


class Conv1d(_ConvNd):
    """y = conv1d(x, W, b, stride, padding, dilation, groups), x (N, C_in, L) -> (N, C_out, ol),
    with W of shape (C_out, C_in / groups, k) and b of shape (C_out,); PyTorch's default
    initialisation (as Conv2d's, with fan_in = C_in / groups * k).  Runs as a Conv2d over an
    image of height 1 (ops/conv.py, ``conv1d``)."""

    _conv = staticmethod(conv1d)
    _ndim = 1
