"""2-D convolution (NCHW) as im2col + one matrix product.  Derivation: docs/derivations/conv.md.

Shapes: x (N, C, H, W), weight (O, C/groups, kh, kw), bias (O,), output (N, O, oh, ow) with
    oh = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1     (and the same for ow).

The forward unrolls every receptive field into a column (``im2col``) so that the whole
convolution of the batch is ONE matrix product; the backward is two matrix products and the
adjoint of the unrolling (``col2im``).  The kernels come from the kernel table
(``backend.kernels(x)``: reference.py, with numba versions in cpu_kernels.py).
"""
from .. import backend
from .._arguments import positive_int, sizes
from ..autograd import Function, register


def output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """The output length along one axis (PyTorch's formula):
        floor((size + 2 p - d (k - 1) - 1) / s) + 1          (ceil instead of floor in ceil mode,
    where the last window must still start inside the input or the left padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


@register
class Conv2d(Function):
    """y[n, o, p, q] = b[o] + sum_{c, i, j} W[o, c, i, j] * x[n, c, p*sh - ph + i*dh, q*sw - pw + j*dw]

    With X = im2col(x) (one ROW per output pixel (n, p, q), one column per tap (i, j, c);
    shape (N*oh*ow, kh*kw*C)) and W2 = W laid out as (kh*kw*C, O):
        forward     Y  = X @ W2  (+ b)           (N*oh*ow, O): already the output, channels-last
        backward    dW2 = X^T @ G,   dX = G @ W2^T,   dx = col2im(dX),   db = sum of G's rows
    where G is the output gradient as (N*oh*ow, O).  The bias rides in the same products: X
    gets a column of ones and W2 the row b, so Y = [X 1] @ [W2; b] and the last row of
    [X 1]^T @ G is db (no separate passes over the output).  With groups, channels split into
    ``groups`` independent blocks and each product is done per block.

    Layout: the output is an (N, O, oh, ow) array whose memory is (N, oh, ow, O)
    ("channels-last", as PyTorch's channels_last format).  That is what the GEMM writes, so no
    transpose is needed; elementwise ops and 2x2 max pooling keep the layout, and the next
    conv2d's im2col then reads each pixel's channels as one contiguous run.

    The kernel table does both (``conv2d_forward`` / ``conv2d_backward``): the reference keeps
    X for the backward; the CPU table runs a batch of small images in pieces and unrolls each
    piece's X again in the backward (it is in cache then, and never goes to memory).

    once_differentiable: the backward uses the raw arrays, so a second derivative through
    conv2d raises instead of being silently wrong.
    """

    saves_inputs = {0: (1,), 1: (0,), 2: ()}  # dx reads W, dW reads x (its columns)

    once_differentiable = True

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups, out_size):
        k = backend.kernels(x)
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        oh, ow = out_size
        og = o // groups
        self.geometry = ((kh, kw), stride, padding, dilation, out_size)
        self.groups, self.x_nhwc_shape = groups, (n, h, wd, c)
        xp = backend.array_module(x)
        x_nhwc = k.channels_last(x)                                 # a view for conv outputs
        self.saved, self.wmats = [], []
        y = None
        for gi in range(groups):
            xg = x_nhwc if groups == 1 else x_nhwc[..., gi * cg:(gi + 1) * cg]
            wmat = w[gi * og:(gi + 1) * og].transpose(2, 3, 1, 0).reshape(kh * kw * cg, og)
            if b is not None:
                wmat = xp.concatenate([wmat, b[None, gi * og:(gi + 1) * og]])
            # im2col(xg) @ wmat, one GEMM per group; saved: the columns (or nothing: the CPU
            # table unrolls the input again in backward, piece by piece, while it is in cache)
            yg, saved = k.conv2d_forward(xg, wmat, *self.geometry)
            if groups == 1:
                y = yg
            else:
                if y is None:
                    y = xp.empty((n * oh * ow, o), dtype=x.dtype)
                y[:, gi * og:(gi + 1) * og] = yg
            self.saved.append(saved)
            self.wmats.append(wmat)
        return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)        # NCHW view, channels-last memory

    def backward(self, g):
        x, w = self.inputs[0], self.inputs[1]
        k, xp = backend.kernels(w.array), backend.array_module(w.array)
        n, h, wd, c = self.x_nhwc_shape
        o, cg, kh, kw = w.shape
        og = o // self.groups
        G = k.channels_last(g.array).reshape(-1, o)                   # a view when g is channels-last
        has_b = len(self.inputs) > 2
        need_w = w.requires_grad or (has_b and self.inputs[2].requires_grad)
        taps = kh * kw * cg                                          # rows of W2 (then the bias row)
        gw = xp.empty(w.shape, dtype=w.dtype)
        gb = xp.empty(o, dtype=w.dtype) if has_b else None
        gx = xp.empty((n, h, wd, c), dtype=w.dtype) if x.requires_grad else None
        # x as (N, H, W, C) without a copy: a table copies it only where it unrolls x again (the
        # CPU table's pieces); the reference and CUDA tables read their saved columns
        x_nhwc = x.array.transpose(0, 2, 3, 1)
        for gi, (saved, wmat) in enumerate(zip(self.saved, self.wmats)):
            Gg = G if self.groups == 1 else G[:, gi * og:(gi + 1) * og]
            xg = x_nhwc if self.groups == 1 else x_nhwc[..., gi * cg:(gi + 1) * cg]
            dW2, dx = k.conv2d_backward(Gg, xg, wmat, saved, *self.geometry, gx is not None, need_w)
            if need_w:
                gw[gi * og:(gi + 1) * og] = dW2[:taps].reshape(kh, kw, cg, og).transpose(3, 2, 0, 1)
                if has_b:
                    gb[gi * og:(gi + 1) * og] = dW2[taps]
            if gx is not None:
                if self.groups == 1:
                    gx = dx
                else:
                    gx[..., gi * cg:(gi + 1) * cg] = dx
        grads = [None if gx is None else Tensor._wrap(gx.transpose(0, 3, 1, 2)),
                 Tensor._wrap(gw) if w.requires_grad else None]
        if has_b:
            grads.append(Tensor._wrap(gb) if self.inputs[2].requires_grad else None)
        return tuple(grads)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, like PyTorch) of x (N, C, H, W) with weight
    (O, C/groups, kh, kw) plus bias (O,).  stride/padding/dilation: an int or a pair."""
    op = "conv2d"
    stride = sizes(stride, 2, "stride", op, 1)
    padding = sizes(padding, 2, "padding", op, 0)
    dilation = sizes(dilation, 2, "dilation", op, 1)
    groups = positive_int(groups, "groups", op)
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
    out_size = (output_size(h, kh, stride[0], padding[0], dilation[0]),
                output_size(w, kw, stride[1], padding[1], dilation[1]))
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, out_size=out_size)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation, like PyTorch) of x (N, C, L) (or unbatched (C, L))
    with weight (O, C/groups, k) plus bias (O,).

    A 1-D convolution is a 2-D one over an image of height 1: x becomes (N, C, 1, L), the
    weight (O, C/groups, 1, k), and the height axis is dropped again.  So it runs conv2d's
    kernels (im2col + one GEMM) and its gradient is conv2d's, through the two reshapes."""
    op = "conv1d"
    (stride,), (padding,) = sizes(stride, 1, "stride", op, 1), sizes(padding, 1, "padding", op, 0)
    (dilation,) = sizes(dilation, 1, "dilation", op, 1)
    groups = positive_int(groups, "groups", op)
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 3-D input (N, C, L) or an unbatched 2-D one (C, L), got shape {x.shape}")
    if weight.ndim != 3:
        raise ValueError(f"{op}: expected a 3-D weight (O, C/groups, k), got shape {weight.shape}")
    (c, length), (o, cg, k) = x.shape[-2:], weight.shape
    if c != cg * groups:
        raise ValueError(f"{op}: input of shape {x.shape} has {c} channels but weight of shape "
                         f"{weight.shape} expects {cg * groups} (= {cg} x groups={groups})")
    if dilation * (k - 1) + 1 > length + 2 * padding:
        raise ValueError(f"{op}: kernel of size {k} (dilated: {dilation * (k - 1) + 1}) is larger than the "
                         f"padded input ({length + 2 * padding}) for input shape {x.shape}, padding {padding}")
    batched = x.ndim == 3
    x4 = x.reshape(x.shape[:-1] + (1, length)) if batched else x.reshape((1, c, 1, length))
    w4 = weight.reshape((o, cg, 1, k))
    try:
        y = conv2d(x4, w4, bias, (1, stride), (0, padding), (1, dilation), groups)
    except (ValueError, TypeError) as e:  # (groups, dtypes, bias: conv2d checks them)
        raise type(e)(f"{op} (run as conv2d on (N, C, 1, L)): {e}") from None
    return y.reshape(y.shape[:2] + y.shape[3:]) if batched else y.reshape((y.shape[1], y.shape[3]))


from ..tensor import Tensor  # noqa: E402
