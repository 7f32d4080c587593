"""2-D pooling (NCHW): max, average, adaptive average.  Derivation: docs/derivations/pool.md.

Output size of max_pool2d / avg_pool2d (PyTorch's formula, floor mode):
    oh = floor((H + 2 ph - kh) / sh) + 1          (and the same for ow)
padding must be at most half the kernel, so every window holds at least one real element.
The kernels (numba with NumPy fallbacks) live in minigrad/backend/cpu.py.
"""
from .. import backend
from ..autograd import Function, register
from .conv import _kernels, _pair


def _pool_geometry(x, kernel_size, stride, padding, op):
    kernel = _pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else _pair(stride, "stride", op, 1)
    padding = _pair(padding, "padding", op, 0)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    h, w = x.shape[2:]
    if kernel[0] > h + 2 * padding[0] or kernel[1] > w + 2 * padding[1]:
        raise ValueError(
            f"{op}: kernel of size {kernel} is larger than the padded input "
            f"({h + 2 * padding[0]}, {w + 2 * padding[1]}) for input shape {x.shape}, padding {padding}"
        )
    out = ((h + 2 * padding[0] - kernel[0]) // stride[0] + 1,
           (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)
    return kernel, stride, padding, out


@register
class MaxPool2d(Function):
    """y[n, c, p, q] = max over the window (p*sh - ph + i, q*sw - pw + j), i < kh, j < kw
    (padding counts as -inf, so it never wins).

    dL/dx[n, c, a, b] = sum of g[n, c, p, q] over the windows whose arg-max is (a, b): each
    window sends its whole gradient to the one element that won; overlapping windows that
    pick the same element add up.  Ties: the first maximum in row-major window order wins.
    NaN: a window containing NaN outputs NaN and its gradient goes to the (first) NaN.

    once_differentiable (the backward is a raw scatter kernel).
    """

    once_differentiable = True

    def forward(self, x, *, kernel, stride, padding, out_size):
        self.x_shape = x.shape
        out, self.argmax = _kernels(x, "max_pool2d").maxpool2d_forward(x, kernel, stride, padding, out_size)
        return out

    def backward(self, g):
        dx = _kernels(g.data, "max_pool2d").maxpool2d_backward(g.data, self.argmax, self.x_shape)
        return Tensor._wrap(dx)


@register
class AvgPool2d(Function):
    """y[n, c, p, q] = (1 / (kh kw)) * sum over the window (padding counts as 0 and is counted
    in the divisor: count_include_pad=True, PyTorch's default).

    dL/dx[n, c, a, b] = sum over the windows containing (a, b) of g[n, c, p, q] / (kh kw).

    once_differentiable (the backward is a raw scatter kernel).
    """

    once_differentiable = True

    def forward(self, x, *, kernel, stride, padding, out_size):
        self.x_shape, self.geometry = x.shape, (kernel, stride, padding, out_size)
        return _kernels(x, "avg_pool2d").avgpool2d_forward(x, *self.geometry)

    def backward(self, g):
        k = _kernels(g.data, "avg_pool2d")
        return Tensor._wrap(k.avgpool2d_backward(g.data, self.x_shape, *self.geometry))


def _adaptive_bounds(size, out):
    """PyTorch's adaptive windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


@register
class AdaptiveAvgPool2d(Function):
    """y[n, c, p, q] = mean of x[n, c, h0(p):h1(p), w0(q):w1(q)] with
    h0(p) = floor(p H / oh), h1(p) = ceil((p + 1) H / oh) (windows may overlap or differ in size).
    Output (1, 1) is global average pooling: y[n, c] = mean over all H*W.

    dL/dx[n, c, a, b] = sum over the windows containing (a, b) of g[n, c, p, q] / |window|.

    once_differentiable (the backward writes into a raw array).
    """

    once_differentiable = True

    def forward(self, x, *, out_size):
        self.x_shape = x.shape
        oh, ow = out_size
        h, w = x.shape[2:]
        if (oh, ow) == (1, 1):
            return x.mean(axis=(2, 3), keepdims=True)
        self.rows, self.cols = _adaptive_bounds(h, oh), _adaptive_bounds(w, ow)
        out = backend.array_module(x).empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
        for p, (h0, h1) in enumerate(self.rows):
            for q, (w0, w1) in enumerate(self.cols):
                out[:, :, p, q] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return out

    def backward(self, g):
        gd = g.data
        h, w = self.x_shape[2:]
        if gd.shape[2:] == (1, 1):
            return Tensor._wrap(backend.array_module(gd).broadcast_to(gd / gd.dtype.type(h * w), self.x_shape).copy())
        dx = backend.array_module(gd).zeros(self.x_shape, dtype=gd.dtype)
        for p, (h0, h1) in enumerate(self.rows):
            for q, (w0, w1) in enumerate(self.cols):
                dx[:, :, h0:h1, w0:w1] += gd[:, :, p:p + 1, q:q + 1] / gd.dtype.type((h1 - h0) * (w1 - w0))
        return Tensor._wrap(dx)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over kernel_size windows moved by stride (default: kernel_size); padding is -inf."""
    kernel, stride, padding, out = _pool_geometry(x, kernel_size, stride, padding, "max_pool2d")
    return MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding, out_size=out)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows moved by stride (default: kernel_size); padding counts as 0."""
    kernel, stride, padding, out = _pool_geometry(x, kernel_size, stride, padding, "avg_pool2d")
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=padding, out_size=out)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size (an int or a pair); 1 = global average pooling."""
    out = _pair(output_size, "output_size", "adaptive_avg_pool2d", 1)
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"adaptive_avg_pool2d: input of shape {x.shape} has an empty spatial dimension")
    return AdaptiveAvgPool2d.apply(x, out_size=out)


from ..tensor import Tensor  # noqa: E402
