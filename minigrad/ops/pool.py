"""2-D pooling (NCHW): max, average, adaptive average.  Derivation: docs/derivations/pool.md.

Output size of max_pool2d / avg_pool2d (PyTorch's formula; avg_pool2d has no dilation):
    oh = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1          (and the same for ow)
with ceil instead of floor in ceil mode, as long as the last window still starts inside the
input or the left padding.  padding must be at most half the kernel, so (with dilation 1)
every window holds at least one real element; the op checks that no window lies entirely
in the padding.  The kernels come from the kernel table (``backend.kernels(x)``).
"""
from .. import backend
from ..autograd import Function, register
from .._arguments import sizes
from .conv import output_size
from .elementwise import floating


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, op):
    kernel = sizes(kernel_size, 2, "kernel_size", op, 1)
    stride = kernel if stride is None else sizes(stride, 2, "stride", op, 1)
    padding = sizes(padding, 2, "padding", op, 0)
    dilation = sizes(dilation, 2, "dilation", op, 1)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    size = x.shape[2:]
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if span[0] > size[0] + 2 * padding[0] or span[1] > size[1] + 2 * padding[1]:
        dilated = f" (dilated: {span})" if span != kernel else ""
        raise ValueError(
            f"{op}: kernel of size {kernel}{dilated} is larger than the padded input "
            f"({size[0] + 2 * padding[0]}, {size[1] + 2 * padding[1]}) for input shape {x.shape}, padding {padding}"
        )
    out = tuple(output_size(*axis, ceil_mode=ceil_mode) for axis in zip(size, kernel, stride, padding, dilation))
    if any(_empty_window(*axis) for axis in zip(size, kernel, stride, padding, dilation, out)):
        raise ValueError(
            f"{op}: with kernel {kernel}, dilation {dilation}, stride {stride} and padding {padding}, "
            f"a window would lie entirely in the padding of the input of shape {x.shape}"
        )
    return kernel, stride, padding, dilation, out


def _empty_window(size, kernel, stride, pad, dilation, out):
    """True if some window along this axis holds no real element.  Only windows that start in
    the left padding can (a window starting inside the input holds its first element): the
    first tap past the padding, i0 = ceil(-start / d), must exist and lie inside the input."""
    for o in range(out):
        start = o * stride - pad
        if start >= 0:
            break
        i0 = -(start // dilation)
        if i0 >= kernel or start + i0 * dilation >= size:
            return True
    return False


@register
class MaxPool2d(Function):
    """y[n, c, p, q] = max over the window x[n, c, p*sh - ph + i*dh, q*sw - pw + j*dw],
    i < kh, j < kw (padding counts as -inf, so it never wins).

    dL/dx[n, c, a, b] = sum of g[n, c, p, q] over the windows whose arg-max is (a, b): each
    window sends its whole gradient to the one element that won; overlapping windows that
    pick the same element add up.  Ties: the first maximum in row-major window order wins.
    NaN: a window containing NaN outputs NaN and its gradient goes to the (first) NaN.

    once_differentiable (the backward is a raw scatter kernel).
    """

    saves_inputs = False

    once_differentiable = True

    def forward(self, x, *, kernel, stride, padding, dilation, out_size, indices=None):
        self.x_shape, self.geometry = x.shape, (kernel, stride, padding, dilation)
        out, self.argmax = backend.kernels(x).maxpool2d_forward(x, kernel, stride, padding, dilation, out_size)
        if indices is not None:  # return_indices: hand the arg-max out (apply returns one array)
            indices.append(self.argmax)
        return out

    def backward(self, g):
        k = backend.kernels(g.array)
        return Tensor._wrap(k.maxpool2d_backward(g.array, self.argmax, self.x_shape, *self.geometry))


@register
class AvgPool2d(Function):
    """y[n, c, p, q] = (1 / D) * sum over the window x[n, c, p*sh - ph + i, q*sw - pw + j]
    (padding adds 0).  The divisor D (PyTorch's rule): with count_include_pad, the window's
    size clipped to the padded input, (min(y0 + kh, H + ph) - y0) (min(x0 + kw, W + pw) - x0),
    y0 = p*sh - ph (kh kw except in ceil mode); without, the number of real elements in it.

    dL/dx[n, c, a, b] = sum over the windows containing (a, b) of g[n, c, p, q] / D(p, q).

    once_differentiable (the backward is a raw scatter kernel).
    """

    saves_inputs = False

    once_differentiable = True

    def forward(self, x, *, kernel, stride, padding, out_size, count_include_pad):
        self.x_shape, self.geometry = x.shape, (kernel, stride, padding, out_size, count_include_pad)
        return backend.kernels(x).avgpool2d_forward(x, *self.geometry)

    def backward(self, g):
        k = backend.kernels(g.array)
        return Tensor._wrap(k.avgpool2d_backward(g.array, self.x_shape, *self.geometry))


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

    saves_inputs = False

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
        gd = g.array
        h, w = self.x_shape[2:]
        if gd.shape[2:] == (1, 1):
            return Tensor._wrap(backend.array_module(gd).broadcast_to(gd / gd.dtype.type(h * w), self.x_shape).copy())
        dx = backend.array_module(gd).zeros(self.x_shape, dtype=gd.dtype)
        for p, (h0, h1) in enumerate(self.rows):
            for q, (w0, w1) in enumerate(self.cols):
                dx[:, :, h0:h1, w0:w1] += gd[:, :, p:p + 1, q:q + 1] / gd.dtype.type((h1 - h0) * (w1 - w0))
        return Tensor._wrap(dx)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over kernel_size windows (taps ``dilation`` apart) moved by stride (default:
    kernel_size); padding is -inf (an integer type's minimum for integer tensors, which keep
    their dtype).  ceil_mode rounds the output size up (PyTorch's rule).
    With return_indices, also returns the int64 flat index h*W + w of each maximum inside
    its (n, c) plane (as PyTorch)."""
    kernel, stride, padding, dilation, out = _pool_geometry(x, kernel_size, stride, padding, dilation,
                                                            ceil_mode, "max_pool2d")
    indices = [] if return_indices else None
    y = MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding, dilation=dilation, out_size=out,
                        indices=indices)
    if not return_indices:
        return y
    return y, Tensor._wrap(indices[0].astype("int64"))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over kernel_size windows moved by stride (default: kernel_size); padding counts as 0,
    and in the divisor when count_include_pad (PyTorch's default).  ceil_mode rounds the
    output size up (PyTorch's rule).  An integer tensor is averaged in the default float dtype."""
    kernel, stride, padding, _, out = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    return AvgPool2d.apply(floating(x), kernel=kernel, stride=stride, padding=padding, out_size=out,
                           count_include_pad=bool(count_include_pad))


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size (an int or a pair); 1 = global average pooling."""
    out = sizes(output_size, 2, "output_size", "adaptive_avg_pool2d", 1)
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"adaptive_avg_pool2d: input of shape {x.shape} has an empty spatial dimension")
    return AdaptiveAvgPool2d.apply(floating(x), out_size=out)


from ..tensor import Tensor  # noqa: E402
