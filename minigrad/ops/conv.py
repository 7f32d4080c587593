"""2-D convolution (NCHW) as im2col + one matrix product.  Derivation: docs/derivations/conv.md.

Shapes: x (N, C, H, W), weight (O, C/groups, kh, kw), bias (O,), output (N, O, oh, ow) with
    oh = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1     (and the same for ow).

The forward unrolls every receptive field into a column (``im2col``) so that the whole
convolution of the batch is ONE matrix product; the backward is two matrix products and the
adjoint of the unrolling (``col2im``).  The kernels live in minigrad/backend/cpu.py.
"""
import numbers

from .. import backend
from ..autograd import Function, register


def _pair(value, name, op, minimum):
    """An int or a pair of ints, each >= minimum, as a pair."""
    if isinstance(value, numbers.Integral):
        pair = (value, value)
    elif isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in pair):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in pair)


def _kernels(array, op):
    """The kernel module for the device of ``array`` (only the CPU has one so far)."""
    if backend.device_of(array) != backend.cpu:
        raise NotImplementedError(f"{op}: no CUDA kernel yet; move the tensors to the CPU")
    return backend.cpu_kernels


@register
class Conv2d(Function):
    """y[n, o, p, q] = b[o] + sum_{c, i, j} W[o, c, i, j] * x[n, c, p*sh - ph + i*dh, q*sw - pw + j*dw]

    With X = im2col(x) (one column per output pixel, shape (C*kh*kw, N*oh*ow)):
        forward     Y  = W2 @ X                  (W2 = W reshaped to (O, C*kh*kw))
        backward    dW2 = G @ X^T,   dX = W2^T @ G,   dx = col2im(dX),   db = sum of G over pixels
    where G is the output gradient laid out as (O, N*oh*ow).  With groups, channels split into
    ``groups`` independent blocks and each product is done per block (a batched matmul).

    once_differentiable: the backward uses the raw arrays (the saved columns X), so a second
    derivative through conv2d raises instead of being silently wrong.
    """

    once_differentiable = True

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups, out_size):
        k, xp = _kernels(x, "conv2d"), backend.array_module(x)
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        oh, ow = out_size
        self.geometry = ((kh, kw), stride, padding, dilation, out_size)
        self.x_shape, self.groups = x.shape, groups
        cols = k.im2col(x, *self.geometry)                       # (C*kh*kw, N*L)
        self.cols = cols
        if groups == 1:
            y = w.reshape(o, -1) @ cols                          # (O, N*L): one GEMM
        else:
            y = xp.matmul(w.reshape(groups, o // groups, -1),
                          cols.reshape(groups, cg * kh * kw, n * oh * ow)).reshape(o, n * oh * ow)
        # (O, N, L) -> (N, O, L) plus bias, in one pass: rows of L stay contiguous
        return k.gemm_to_nchw(y, b, n, oh * ow).reshape(n, o, oh, ow)

    def backward(self, g):
        x, w = self.inputs[0], self.inputs[1]
        need_b = len(self.inputs) > 2 and self.inputs[2].requires_grad
        k, xp = _kernels(w.data, "conv2d"), backend.array_module(w.data)
        W = w.data
        o = W.shape[0]
        n = self.x_shape[0]
        grads = [None, None]
        L = g.shape[2] * g.shape[3]
        g3 = g.data.reshape(n, o, L)
        rows = self.cols.shape[0]
        if self.groups == 1 and not x.requires_grad and rows <= 64:
            # first layer (images need no gradient) with few columns rows (C*kh*kw, 9 for MNIST):
            # dW = sum_n g[n] @ X[:, n, :]^T as a batched matmul on strided views of g and X
            # skips the (O, N*L) copy of g, which is most of the work here (measured 2.2 vs 3.6 ms)
            if w.requires_grad:
                Xn = self.cols.reshape(rows, n, L).transpose(1, 2, 0)
                grads[1] = xp.matmul(g3, Xn).sum(axis=0).reshape(W.shape)
            if need_b:
                grads.append(g3.sum(axis=(0, 2)))
            elif len(self.inputs) > 2:
                grads.append(None)
            return tuple(None if a is None else Tensor._wrap(a) for a in grads)
        # the output gradient as G (O, N*L) (the forward's block copy reversed) and db, in one pass
        G, db = k.nchw_to_gemm(g3)
        if self.groups == 1:
            if w.requires_grad:
                grads[1] = (G @ self.cols.T).reshape(W.shape)
            if x.requires_grad:
                grads[0] = k.col2im(W.reshape(o, -1).T @ G, self.x_shape, *self.geometry)
        else:
            gr = self.groups
            Gg = G.reshape(gr, o // gr, n * L)
            Xg = self.cols.reshape(gr, rows // gr, n * L)
            if w.requires_grad:
                grads[1] = xp.matmul(Gg, Xg.transpose(0, 2, 1)).reshape(W.shape)
            if x.requires_grad:
                Wg = W.reshape(gr, o // gr, -1)
                dcols = xp.matmul(Wg.transpose(0, 2, 1), Gg).reshape(self.cols.shape)
                grads[0] = k.col2im(dcols, self.x_shape, *self.geometry)
        if len(self.inputs) > 2:
            grads.append(db if need_b else None)
        return tuple(None if a is None else Tensor._wrap(a) for a in grads)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, like PyTorch) of x (N, C, H, W) with weight
    (O, C/groups, kh, kw) plus bias (O,).  stride/padding/dilation: an int or a pair."""
    op = "conv2d"
    stride = _pair(stride, "stride", op, 1)
    padding = _pair(padding, "padding", op, 0)
    dilation = _pair(dilation, "dilation", op, 1)
    if not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight (O, C/groups, kh, kw), got shape {weight.shape}")
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if c != cg * groups:
        raise ValueError(
            f"{op}: input of shape {x.shape} has {c} channels but weight of shape {weight.shape} "
            f"expects {cg * groups} (= {cg} x groups={groups})"
        )
    if o % groups:
        raise ValueError(f"{op}: weight of shape {weight.shape}: {o} output channels are not divisible by groups={groups}")
    if x.dtype != weight.dtype or x.dtype.kind != "f":
        raise TypeError(f"{op}: input ({x.dtype}) and weight ({weight.dtype}) must have the same floating dtype")
    if bias is not None and (bias.shape != (o,) or bias.dtype != x.dtype):
        raise ValueError(f"{op}: bias must have shape ({o},) and dtype {x.dtype}, got {bias.shape} {bias.dtype}")
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if ekh > h + 2 * padding[0] or ekw > w + 2 * padding[1]:
        raise ValueError(
            f"{op}: kernel of size ({kh}, {kw}) (dilated: ({ekh}, {ekw})) is larger than the padded "
            f"input ({h + 2 * padding[0]}, {w + 2 * padding[1]}) for input shape {x.shape}, padding {padding}"
        )
    out_size = (backend.cpu_kernels.conv_output_size(h, kh, stride[0], padding[0], dilation[0]),
                backend.cpu_kernels.conv_output_size(w, kw, stride[1], padding[1], dilation[1]))
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, stride=stride, padding=padding, dilation=dilation,
                        groups=int(groups), out_size=out_size)


from ..tensor import Tensor  # noqa: E402
