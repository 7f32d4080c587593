"""The kernel table, readable: every kernel minigrad's ops call, as plain array code.

This is the kernel file to read first (docs/architecture.md, "Reading path", reads it
after the ops that call it).  Each function takes arrays and returns arrays (nothing here
knows about Tensors or autograd), states its math in the docstring, and is written once
against ``xp = array_module(x)``, so the same lines run on NumPy (CPU) and CuPy (GPU).

Two more modules expose exactly these names with the same semantics (the contract,
docs/architecture.md; tests/test_kernels_contract.py holds them to this file):

* ``cpu_kernels``: this module plus numba kernels for the hot paths (im2col/col2im, pooling,
  the activations, the softmax family, normalisation, attention, dropout, embedding, the
  recurrent cells, the optimizer updates); each falls back to the code here
  when numba is off (MINIGRAD_DISABLE_NUMBA=1) or the input does not suit it.
* ``cuda_kernels`` (the package ``minigrad/backend/cuda``): this module plus the project's own
  CUDA C kernels (backend/cuda/kernels/*.cu).

``backend.kernels(array)`` picks the module for an array's device; ops call only that.

Conventions: arrays in, arrays out; names ending in ``_`` update their arguments in place;
inputs may be non-contiguous; outputs are new arrays; float32 and float64 everywhere (labels
and indices are int64); NaN in gives NaN out wherever the math says so; arrays of
inconsistent sizes raise ValueError naming the kernel and the shapes.
"""
import math

import numpy as np

from . import array_module

__all__ = [
    # elementwise activations (any shape)
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward", "gelu", "gelu_backward", "silu", "silu_backward",
    # row-wise: the softmax family
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward", "logsumexp",
    "cross_entropy_forward", "cross_entropy_backward",
    # normalization
    "batch_norm_forward", "batch_norm_backward", "layer_norm_forward", "layer_norm_backward",
    # convolution (channels-last columns) and pooling
    "channels_last", "is_channels_last", "im2col", "col2im", "conv2d_forward", "conv2d_backward",
    "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
    # random numbers, embedding, matrix products, optimizer updates
    "dropout_mask", "embedding_backward", "matmul", "linear", "sgd_step_", "adam_step_", "rmsprop_step_",
    # reductions
    "sum_of_squares",
]


def _shape_error(kernel, **arrays):
    listed = ", ".join(f"{name} {tuple(a.shape)}" for name, a in arrays.items())
    return ValueError(f"{kernel}: arrays of inconsistent shapes: {listed}")


def _same_shape(kernel, **arrays):
    """Raise ValueError unless all the given arrays have one shape."""
    first = None
    for a in arrays.values():
        if first is None:
            first = a.shape
        elif a.shape != first:
            raise _shape_error(kernel, **arrays)


# ======================================================================================
# Elementwise activations.  Each *_backward(g, ...) returns g * f'(x), from whichever of
# x or y = f(x) gives the derivative most cheaply.
# ======================================================================================


def relu(x):
    """max(x, 0).  NaN stays NaN; the output keeps x's memory layout (order K), so a
    channels-last conv output stays channels-last."""
    return array_module(x).maximum(x, 0)


def relu_backward(g, y):
    """g where y > 0 else 0, with y = relu(x) (y > 0 exactly where x > 0)."""
    _same_shape("relu_backward", g=g, y=y)
    return array_module(g).where(y > 0, g, 0).astype(g.dtype, copy=False)


def leaky_relu(x, negative_slope):
    """x if x > 0 else s x   (s = negative_slope)."""
    return array_module(x).where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(g, x, negative_slope):
    """g if x > 0 else s g   (the derivative at 0 is s, as in PyTorch)."""
    _same_shape("leaky_relu_backward", g=g, x=x)
    return array_module(g).where(x > 0, g, g * g.dtype.type(negative_slope))


def sigmoid(x):
    """1 / (1 + e^-x), from e = exp(-|x|) <= 1: 1/(1+e) for x >= 0 and e/(1+e) for x < 0, so
    no exp overflows and tiny results keep their relative precision."""
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1, e) / (1 + e)


def sigmoid_backward(g, y):
    """g y (1 - y), with y = sigmoid(x)."""
    _same_shape("sigmoid_backward", g=g, y=y)
    return g * y * (1 - y)


def tanh(x):
    """tanh x."""
    return array_module(x).tanh(x)


def tanh_backward(g, y):
    """g (1 - y^2), with y = tanh(x)."""
    _same_shape("tanh_backward", g=g, y=y)
    return g * (1 - y * y)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_C = 0.044715
_erf_python = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    """The error function, elementwise.  NumPy has none, so the NumPy path calls math.erf per
    element (correctly rounded, slow; cpu_kernels runs the same math.erf in a numba loop)."""
    xp = array_module(x)
    if xp is np:
        return np.asarray(_erf_python(x), dtype=object).astype(x.dtype)
    from . import special  # noqa: PLC0415  (cupyx.scipy.special, only on the GPU)

    return special(xp).erf(x)


def _check_approximate(kernel, approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{kernel}: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu(x, approximate="none"):
    """x Phi(x), Phi the standard normal CDF:
        "none":  0.5 x (1 + erf(x / sqrt 2))
        "tanh":  0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)"""
    _check_approximate("gelu", approximate)
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + _GELU_C * (x * x * x))
        return 0.5 * x * (1 + array_module(x).tanh(u))
    return 0.5 * x * (1 + _erf(x * _INV_SQRT_2))


def gelu_backward(g, x, approximate="none"):
    """g gelu'(x):
        "none":  Phi(x) + x phi(x),   phi(x) = exp(-x^2/2) / sqrt(2 pi)
        "tanh":  0.5 (1 + t) + 0.5 x (1 - t^2) u',   t = tanh u,  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)"""
    _check_approximate("gelu_backward", approximate)
    _same_shape("gelu_backward", g=g, x=x)
    xp = array_module(x)
    if approximate == "tanh":
        with np.errstate(over="ignore", invalid="ignore"):  # x^2 may overflow: handled below
            x2 = x * x
            t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * (x2 * x)))
            du = _SQRT_2_OVER_PI * (1 + (3 * _GELU_C) * x2)
            s = 1 - t * t
            # where tanh has saturated (s = 0) the second term is 0: x^2 in du may have
            # overflowed to inf there (float32 x = 1e20), and 0 * inf would be NaN
            return g * (0.5 * (1 + t) + xp.where(s == 0, 0, 0.5 * x * s * du))
    cdf = 0.5 * (1 + _erf(x * _INV_SQRT_2))
    pdf = _INV_SQRT_2PI * xp.exp(-0.5 * (x * x))
    return g * (cdf + x * pdf)


def silu(x):
    """x sigmoid(x)   (also called swish)."""
    return x * sigmoid(x)


def silu_backward(g, x):
    """g s (1 + x (1 - s)),  s = sigmoid(x)."""
    _same_shape("silu_backward", g=g, x=x)
    s = sigmoid(x)
    return g * s * (1 + x * (1 - s))


# ======================================================================================
# The softmax family, along one axis
# ======================================================================================


def softmax(x, axis):
    """exp(x - m) / sum exp(x - m) along ``axis``, m the max along it (no overflow for huge
    logits; a row of all -inf gives NaN, as in PyTorch)."""
    xp = array_module(x)
    if x.size == 0:
        return xp.empty_like(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax_backward(g, y, axis):
    """y (g - sum(g y)) along ``axis``: the Jacobian diag(y) - y y^T applied to g (y = softmax)."""
    _same_shape("softmax_backward", g=g, y=y)
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


def log_softmax(x, axis):
    """(x - m) - log sum exp(x - m) along ``axis`` (finite even where softmax underflows to 0)."""
    xp = array_module(x)
    if x.size == 0:
        return xp.empty_like(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def log_softmax_backward(g, y, axis):
    """g - exp(y) sum(g) along ``axis`` (y = log_softmax(x), so exp(y) is the softmax)."""
    _same_shape("log_softmax_backward", g=g, y=y)
    return g - array_module(y).exp(y) * g.sum(axis=axis, keepdims=True)


def logsumexp(x, axes):
    """log sum exp(x) over ``axes`` (a tuple of non-negative ints), keepdims=True:
    m + log sum exp(x - m) with m the max (replaced by 0 where it is not finite, so a slice
    of all -inf gives -inf and one holding +inf gives +inf).  An empty slice gives -inf."""
    xp = array_module(x)
    axes = tuple(axes)
    if any(x.shape[a] == 0 for a in axes):
        kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        return xp.full(kept, -np.inf, dtype=x.dtype)
    m = x.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):  # log 0 = -inf for a slice of all -inf
        return xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m


def _labels(kernel, x, target, weight, ignore_index):
    """(safe, valid, bad, w_t) for rows of x (N, C) and labels target (N,):
    valid = target != ignore_index; bad = valid rows whose label is outside [0, C);
    safe = the labels with 0 wherever not (valid and in range), so indexing never goes out
    of bounds; w_t = weight[safe] (1 without a weight)."""
    xp = array_module(x)
    if x.ndim != 2 or target.shape != x.shape[:1] or (weight is not None and weight.shape != x.shape[1:]):
        arrays = dict(x=x, target=target) if weight is None else dict(x=x, target=target, weight=weight)
        raise _shape_error(kernel, **arrays)
    if array_module(target) is not xp or (weight is not None and array_module(weight) is not xp):
        where = ", ".join(f"{name} on {'the GPU' if array_module(a) is not np else 'the CPU'}"
                          for name, a in (("x", x), ("target", target), ("weight", weight)) if a is not None)
        raise TypeError(f"{kernel}: the arrays must be on one device, got {where}")
    c = x.shape[1]
    valid = target != ignore_index
    in_range = (target >= 0) & (target < c)
    safe = xp.where(valid & in_range, target, 0)
    w_t = 1 if weight is None else weight[safe]
    return safe, valid, valid & ~in_range, w_t


def cross_entropy_forward(x, target, weight, ignore_index, label_smoothing):
    """Per-row softmax cross-entropy of logits x (N, C) against int64 labels (N,).

    Returns (losses (N,), sumexp (N,)): with m_n the row max, sumexp_n = sum_c exp(x_nc - m_n)
    (what the backward needs besides x), log p = (x - m) - log sumexp, and
        losses_n = -(1 - e) w_t log p_t - (e / C) sum_c w_c log p_c
    (t = target_n, e = label_smoothing, w = weight or 1).  Rows whose target is ignore_index
    get 0; a label outside [0, C) (not ignore_index) gives NaN.  Everything is formed from
    x - m, never from x - lse: in float32 the logsumexp of logits near 1e4 is rounded to a
    grid of 1e-3, and x - lse would carry that error into every log p and p."""
    xp = array_module(x)
    safe, valid, bad, w_t = _labels("cross_entropy_forward", x, target, weight, ignore_index)
    n, c = x.shape
    shifted = x - x.max(axis=1, keepdims=True)
    sumexp = xp.exp(shifted).sum(axis=1)
    log_sum = xp.log(sumexp)
    losses = log_sum - shifted[xp.arange(n), safe]
    if weight is not None:
        losses *= w_t
    e = label_smoothing
    if e:
        w_sum = c if weight is None else weight.sum()
        smooth = (shifted.sum(axis=1) if weight is None else shifted @ weight) - log_sum * w_sum
        losses = (1 - e) * losses - (e / c) * smooth
    losses = xp.where(valid, losses, 0)
    losses = xp.where(bad, np.nan, losses).astype(x.dtype, copy=False)
    return losses, sumexp.astype(x.dtype, copy=False)


def cross_entropy_backward(x, target, sumexp, grow, weight, ignore_index, label_smoothing):
    """dL/dx (N, C) of cross_entropy_forward, scaled per row by grow (N,) (the upstream
    gradient with the reduction folded in):
        dx_nc = grow_n [ (1 - e) w_t (p_c - [c = t]) + (e / C) (p_c sum_k w_k - w_c) ]
    with p = exp(x - m) / sumexp (the softmax; m the row max, recomputed: it is exact, and
    sumexp is the forward's).  Ignored rows get 0; rows with a bad label NaN."""
    xp = array_module(x)
    safe, valid, bad, w_t = _labels("cross_entropy_backward", x, target, weight, ignore_index)
    n, c = x.shape
    if sumexp.shape != (n,) or grow.shape != (n,):
        raise _shape_error("cross_entropy_backward", x=x, sumexp=sumexp, grow=grow)
    e = label_smoothing
    dx = xp.exp(x - x.max(axis=1, keepdims=True)) / sumexp[:, None]   # p
    onehot_coef = (1 - e) * w_t                                 # the factor of -[c = t]
    if weight is not None:  # (without weights the factor of p is (1 - e) + (e / C) C = 1)
        dx *= (onehot_coef + (e / c) * weight.sum())[:, None]
    dx[xp.arange(n), safe] -= onehot_coef
    if e:
        dx -= (e / c) * (1 if weight is None else weight)
    row = xp.where(bad, np.nan, grow).astype(x.dtype, copy=False)
    return xp.where(valid[:, None], dx * row[:, None], 0)  # ignored rows: exactly 0, whatever x holds


# ======================================================================================
# Normalization
# ======================================================================================


def _channel_axes(x):
    """The axes reduced by batch norm, and the shape that broadcasts a (C,) array over x."""
    return ((0,) if x.ndim == 2 else (0, 2, 3)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    """Normalize each channel of x (N, C) or (N, C, H, W) over the other axes R:
        y = (x - mean) invstd w + b,    invstd = 1 / sqrt(var + eps)
    mean/var None: the batch statistics (biased variance, training); given: used as they are
    (eval).  Returns (y, mean, invstd), mean and invstd (C,) in x's dtype."""
    xp = array_module(x)
    axes, shape = _channel_axes(x)
    if mean is None:
        mean = x.mean(axis=axes)
        xc = x - mean.reshape(shape)
        var = (xc * xc).mean(axis=axes)
    else:
        mean = mean.astype(x.dtype)
        xc = x - mean.reshape(shape)
    invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    y = xc * invstd.reshape(shape)
    if weight is not None:
        y *= weight.reshape(shape)
    if bias is not None:
        y += bias.reshape(shape)
    return y, mean, invstd


def batch_norm_backward(g, x, weight, mean, invstd, training):
    """(dx, dweight, dbias) of batch_norm_forward, with xhat = (x - mean) invstd and mean_R
    the mean over the reduced axes:
        training:  dx = w invstd (g - mean_R(g) - xhat mean_R(g xhat))
        eval:      dx = g w invstd          (mean and invstd are constants)
        dweight = sum_R(g xhat),   dbias = sum_R(g)        (w = 1 when weight is None)"""
    _same_shape("batch_norm_backward", g=g, x=x)
    axes, shape = _channel_axes(x)
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    dbias = g.sum(axis=axes)
    dweight = (g * xhat).sum(axis=axes)
    scale = (invstd if weight is None else weight * invstd).reshape(shape)
    if training:
        m = x.size // x.shape[1]
        dx = (g - (dbias / m).reshape(shape) - xhat * (dweight / m).reshape(shape)) * scale
    else:
        dx = g * scale
    return dx, dweight, dbias


def layer_norm_forward(x, weight, bias, eps):
    """Normalize each row of x (M, N) over its N entries:
        y = (x - mean) rstd w + b,   rstd = 1 / sqrt(var + eps)   (biased variance)
    Returns (y, mean (M,), rstd (M,)); weight and bias are (N,) or None."""
    xp = array_module(x)
    mean = x.mean(axis=1)
    xc = x - mean[:, None]
    rstd = (1 / xp.sqrt((xc * xc).mean(axis=1) + eps)).astype(x.dtype, copy=False)
    y = xc * rstd[:, None]
    if weight is not None:
        y *= weight
    if bias is not None:
        y += bias
    return y, mean, rstd


def layer_norm_backward(g, x, weight, mean, rstd):
    """(dx, dweight, dbias) of layer_norm_forward, with xhat = (x - mean) rstd, gw = g w and
    means over each row:
        dx = rstd (gw - mean(gw) - xhat mean(gw xhat)),   dweight = sum_rows(g xhat),   dbias = sum_rows(g)"""
    _same_shape("layer_norm_backward", g=g, x=x)
    xhat = (x - mean[:, None]) * rstd[:, None]
    gw = g if weight is None else g * weight
    dx = rstd[:, None] * (gw - gw.mean(axis=1, keepdims=True) - xhat * (gw * xhat).mean(axis=1, keepdims=True))
    return dx, (g * xhat).sum(axis=0), g.sum(axis=0)


# ======================================================================================
# Convolution: im2col / col2im on channels-last arrays (docs/derivations/conv.md)
# ======================================================================================


def is_channels_last(x):
    """True when a 4-D (N, C, H, W) array is laid out as (N, H, W, C) in memory."""
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous


def channels_last(x):
    """(N, C, H, W) -> the same values as a C-contiguous (N, H, W, C) array: a free view when
    x is channels-last already (as conv2d's outputs are) or has one channel, else one copy."""
    return array_module(x).ascontiguousarray(x.transpose(0, 2, 3, 1))


def _tap_slices(i, j, sh, sw, dh, dw, oh, ow):
    """Rows/cols of the padded input that kernel tap (i, j) reads for all outputs."""
    return (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def im2col(x, kernel, stride, padding, dilation, out_size, ones_column=False):
    """x (N, H, W, C) -> cols (N*oh*ow, kh*kw*C): one row per output pixel (n, oy, ox), one
    column per tap (i, j, c), cols[(n, oy, ox), (i, j, c)] = x[n, oy*sh - ph + i*dh, ox*sw - pw + j*dw, c]
    (0 in the padding).  ``ones_column`` appends a column of ones (the bias input)."""
    xp = array_module(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, h, w, c = x.shape
    extra = int(bool(ones_column))
    padded = xp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))) if (ph or pw) else x
    cols = xp.empty((n, oh, ow, kh * kw * c + extra), dtype=x.dtype)
    taps = cols[..., :kh * kw * c].reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            taps[:, :, :, i, j] = padded[:, rows, columns]
    cols[..., kh * kw * c:] = 1
    return cols.reshape(n * oh * ow, kh * kw * c + extra)


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_size):
    """The adjoint of im2col: cols (N*oh*ow, kh*kw*C) -> (N, H, W, C), every entry added back
    onto the input pixel it was read from (overlapping taps sum; padding is dropped)."""
    xp = array_module(cols)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, h, w, c = x_shape
    if cols.shape != (n * oh * ow, kh * kw * c):
        raise ValueError(f"col2im: cols of shape {tuple(cols.shape)} do not fit an input of shape "
                         f"{tuple(x_shape)} with kernel {kernel} and output size {out_size}")
    padded = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            padded[:, rows, columns] += cols[:, :, :, i, j]
    return xp.ascontiguousarray(padded[:, ph:ph + h, pw:pw + w])


# ======================================================================================
# Pooling over NCHW planes.  Window (oy, ox) covers rows oy*sh - ph + i*dh (i < kh) and
# columns ox*sw - pw + j*dw (j < kw); out_size may be the ceil-mode size, whose last window
# reaches past the bottom/right padding.
# ======================================================================================


def _pool_pad(xp, x, kernel, stride, padding, dilation, out_size, value):
    """x padded by ``value``: padding on the top/left, and on the bottom/right as much as the
    last window reaches (ceil mode may reach past the padding, floor mode not as far)."""
    h, w = x.shape[2:]
    extra = [max((o - 1) * s + d * (k - 1) + 1 - size - p, 0)
             for o, s, d, k, size, p in zip(out_size, stride, dilation, kernel, (h, w), padding)]
    if not (padding[0] or padding[1] or extra[0] or extra[1]):
        return x
    width = ((0, 0), (0, 0), (padding[0], extra[0]), (padding[1], extra[1]))
    return xp.pad(x, width, constant_values=value)


def _window_positions(xp, out, stride, pad, dilation, tap):
    """Input coordinate of tap ``tap`` for every output position along one axis."""
    return xp.arange(out) * stride - pad + tap * dilation


def _check_pool(kernel, x_shape, out):
    if len(x_shape) != 4 or tuple(out.shape[:2]) != tuple(x_shape[:2]):
        raise ValueError(f"{kernel}: array of shape {tuple(out.shape)} does not fit an input of shape {tuple(x_shape)}")


def _lowest(dtype):
    """The smallest value of a dtype: -inf for floats, the minimum of an integer type."""
    dtype = np.dtype(dtype)
    return -np.inf if dtype.kind in "fc" else (False if dtype.kind == "b" else np.iinfo(dtype).min)


def maxpool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """(out, argmax): out = the max of each window, argmax (int32) = the flat index y*W + x of
    the winner inside its (n, c) plane.  Padding (the dtype's lowest value: -inf, or an
    integer type's minimum) never wins; the first maximum in row-major window order wins
    ties; a NaN wins and the first NaN stays."""
    xp = array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    padded = _pool_pad(xp, x, kernel, stride, padding, dilation, out_size, _lowest(x.dtype))
    best = xp.full((n, c, oh, ow), _lowest(x.dtype), dtype=x.dtype)
    idx = xp.full((n, c, oh, ow), -1, dtype=np.int32)
    for i in range(kh):
        y = _window_positions(xp, oh, sh, ph, dh, i)[:, None]
        for j in range(kw):
            xx = _window_positions(xp, ow, sw, pw, dw, j)[None, :]
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            v = padded[:, :, rows, columns]
            real = (y >= 0) & (y < h) & (xx >= 0) & (xx < w)
            take = real & ((idx < 0) | (v > best) | (xp.isnan(v) & ~xp.isnan(best)))
            best = xp.where(take, v, best)
            idx = xp.where(take, (y * w + xx).astype(np.int32), idx)
    return best, idx


def maxpool2d_backward(g, argmax, x_shape, kernel, stride, padding, dilation):
    """dx (x_shape): every g[n, c, oy, ox] added onto the input its window's argmax names
    (overlapping windows that chose the same input add up).  Written as a gather over the
    taps, the way the CUDA kernel does it, so no two writes collide."""
    xp = array_module(g)
    _same_shape("maxpool2d_backward", g=g, argmax=argmax)
    _check_pool("maxpool2d_backward", x_shape, g)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = g.shape[2:]
    padded = xp.zeros((n, c, max(ph + h, (oh - 1) * sh + dh * (kh - 1) + 1),
                       max(pw + w, (ow - 1) * sw + dw * (kw - 1) + 1)), dtype=g.dtype)
    for i in range(kh):
        y = _window_positions(xp, oh, sh, ph, dh, i)[:, None]
        for j in range(kw):
            xx = _window_positions(xp, ow, sw, pw, dw, j)[None, :]
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            # the tap's flat index y*W + x names an input only where the tap is inside it
            hit = (argmax == y * w + xx) & (y >= 0) & (y < h) & (xx >= 0) & (xx < w)
            padded[:, :, rows, columns] += xp.where(hit, g, 0)
    return xp.ascontiguousarray(padded[:, :, ph:ph + h, pw:pw + w])


def _avg_divisors(xp, x_shape, kernel, stride, padding, out_size, count_include_pad, dtype):
    """The divisor of every window (oh, ow), PyTorch's rule: count_include_pad -> the window
    clipped to the padded input, (min(y0 + kh, H + ph) - y0) (min(x0 + kw, W + pw) - x0)
    with y0 = oy*sh - ph; else the number of real (non-padding) elements in the window."""
    counts = []
    for size, k, s, p, o in zip(x_shape[2:], kernel, stride, padding, out_size):
        start = xp.arange(o) * s - p
        if count_include_pad:
            counts.append(xp.minimum(start + k, size + p) - start)
        else:
            counts.append(xp.minimum(start + k, size) - xp.maximum(start, 0))
    return (counts[0][:, None] * counts[1][None, :]).astype(dtype)


def avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad):
    """The mean of each window: the sum of its real elements (padding adds 0) divided by the
    window's divisor (see _avg_divisors)."""
    xp = array_module(x)
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = out_size
    padded = _pool_pad(xp, x, kernel, stride, padding, (1, 1), out_size, 0)
    out = xp.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, 1, 1, oh, ow)
            out += padded[:, :, rows, columns]
    return out / _avg_divisors(xp, x.shape, kernel, stride, padding, out_size, count_include_pad, x.dtype)


def avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size, count_include_pad):
    """The adjoint of avgpool2d_forward: each g[n, c, oy, ox] / divisor added onto every real
    input of its window."""
    xp = array_module(g)
    _check_pool("avgpool2d_backward", x_shape, g)
    if tuple(g.shape[2:]) != tuple(out_size):
        raise ValueError(f"avgpool2d_backward: g of shape {tuple(g.shape)} does not match out_size {tuple(out_size)}")
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, out_size
    share = g / _avg_divisors(xp, x_shape, kernel, stride, padding, out_size, count_include_pad, g.dtype)
    padded = xp.zeros((n, c, max(ph + h, (oh - 1) * sh + kh), max(pw + w, (ow - 1) * sw + kw)), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, 1, 1, oh, ow)
            padded[:, :, rows, columns] += share
    return xp.ascontiguousarray(padded[:, :, ph:ph + h, pw:pw + w])


# ======================================================================================
# Dropout: a counter-based generator, so every device draws the same mask
# ======================================================================================

# Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
# SC 2011): a 4-word counter is scrambled by 10 rounds keyed by a 2-word key.  Each round
# multiplies words 0 and 2 by these constants, keeping both halves of each 64-bit product...
_PHILOX_M0, _PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
# ...and between rounds the key advances by the Weyl constants (golden ratio, sqrt(3) - 1).
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
_LO32 = 0xFFFFFFFF


def _philox4x32(counter, key, rounds=10):
    """Philox4x32-R of a batch of counters: ``counter`` is four arrays of 32-bit words (held
    in uint64), ``key`` two Python ints.  One round, with hi/lo the halves of a 64-bit product:
        (c0, c1, c2, c3) -> (hi(M1 c2) ^ c1 ^ k0,  lo(M1 c2),  hi(M0 c0) ^ c3 ^ k1,  lo(M0 c0))
    Returns the four output words (uint64 arrays holding 32-bit values)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _PHILOX_W0) & _LO32, (k1 + _PHILOX_W1) & _LO32
        p0 = c0 * _PHILOX_M0  # < 2^64: no overflow in uint64
        p1 = c2 * _PHILOX_M1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _LO32, (p0 >> 32) ^ c3 ^ k1, p0 & _LO32
    return c0, c1, c2, c3


def dropout_mask(shape, p, seed, offset, dtype, *, like=None):
    """An array of ``shape`` holding 0 (dropped, probability p) or 1/(1-p) (kept).

    Element i (C order) uses block b = offset + i // 4: Philox4x32-10 with key
    (seed lo32, seed hi32) and counter (lo32(b), hi32(b), 0, 0) gives four words; element i
    takes word i % 4 and u = (word >> 8) 2^-24, uniform on [0, 1) with 24 bits; kept iff u >= p.
    The same (seed, offset) gives the same mask on every device; the caller advances offset
    by ceil(size / 4) per call.  The mask lives with ``like`` (an array of the tensor it is
    for; NumPy when None)."""
    size = math.prod(shape)
    blocks = np.uint64(offset) + np.arange((size + 3) // 4, dtype=np.uint64)
    zero = np.zeros_like(blocks)
    words = _philox4x32((blocks & _LO32, blocks >> 32, zero, zero), (seed & _LO32, (seed >> 32) & _LO32))
    u = (np.stack(words, axis=1).reshape(-1)[:size] >> 8).astype(np.float64) * 2.0 ** -24
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    mask = np.where(u >= p, scale, 0.0).astype(dtype).reshape(shape)
    return mask if like is None else array_module(like).asarray(mask)


# ======================================================================================
# Embedding, matrix products
# ======================================================================================


def embedding_backward(g, indices, num_embeddings):
    """dW (num_embeddings, D) for rows W[indices] that received gradients g (M, D): row m of g
    is added to dW[indices[m]] (repeated indices accumulate, in index order)."""
    xp = array_module(g)
    if g.ndim != 2 or indices.shape != g.shape[:1]:
        raise _shape_error("embedding_backward", g=g, indices=indices)
    if indices.size and bool(((indices < 0) | (indices >= num_embeddings)).any()):
        raise ValueError(f"embedding_backward: an index is outside [0, {num_embeddings})")
    dw = xp.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    xp.add.at(dw, indices, g)  # (NumPy: in index order; CuPy's uses atomics, cuda_kernels its own)
    return dw


def matmul(a, b):
    """a @ b for a, b with ndim >= 2: (..., m, k) @ (..., k, n) -> (..., m, n), batch dims
    broadcast (NumPy's rules)."""
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise _shape_error("matmul", a=a, b=b)
    try:
        return a @ b
    except ValueError:  # batch dimensions that do not broadcast
        raise _shape_error("matmul", a=a, b=b) from None


def linear(x, w, b):
    """x (M, K) @ w (N, K)^T + b (N,) (b may be None) -> (M, N)."""
    if (x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]
            or (b is not None and tuple(b.shape) != (w.shape[0],))):
        raise _shape_error("linear", x=x, w=w) if b is None else _shape_error("linear", x=x, w=w, b=b)
    out = x @ w.T
    if b is not None:
        out += b
    return out


def sum_of_squares(x):
    """s = sum_i x_i^2 over every element of x (any shape, float), accumulated in float64 and
    returned as a 0-d float64 array on x's device: the gradient norms of clip_grad_norm_,
    where float32 sums of a large model's squares lose digits.  inf and NaN propagate."""
    xp = array_module(x)
    flat = x.reshape(-1).astype(xp.float64)
    return xp.asarray(xp.dot(flat, flat))


def _conv_sizes(kernel_name, x, wmat, kernel, out_size, g=None):
    """(taps = kh*kw*C, 1 if wmat has the bias row else 0, output pixels per image) of a
    convolution; ValueError naming the kernel unless x is (N, H, W, C), wmat (taps [+ 1], O)
    and g, if given, (N*oh*ow, O)."""
    taps = kernel[0] * kernel[1] * x.shape[3] if x.ndim == 4 else -1
    rows = out_size[0] * out_size[1]
    if (x.ndim != 4 or wmat.ndim != 2 or wmat.shape[0] not in (taps, taps + 1)
            or (g is not None and tuple(g.shape) != (x.shape[0] * rows, wmat.shape[1]))):
        shapes = dict(x=x, wmat=wmat) if g is None else dict(g=g, x=x, wmat=wmat)
        raise _shape_error(kernel_name, **shapes)
    return taps, wmat.shape[0] - taps, rows


def _convolution(im2col, col2im, matmul):
    """conv2d_forward and conv2d_backward written with a table's im2col, col2im and matmul
    (the reference's own just below; the CUDA table's with its CUDA C kernels)."""

    def conv2d_forward(x, wmat, kernel, stride, padding, dilation, out_size):
        """(y, saved) of a convolution as one matrix product (ops/conv.py derives it):
            y = cols wmat (N*oh*ow, O),   cols = im2col(x)
        for x (N, H, W, C) channels-last and wmat (kh*kw*C, O), or (kh*kw*C + 1, O) with the
        bias as its last row (cols then gets im2col's column of ones).  ``saved`` is what
        conv2d_backward reads: here cols; a table may keep nothing and unroll x again there."""
        _, ones, _ = _conv_sizes("conv2d_forward", x, wmat, kernel, out_size)
        cols = im2col(x, kernel, stride, padding, dilation, out_size, ones_column=ones)
        return matmul(cols, wmat), cols

    def conv2d_backward(g, x, wmat, saved, kernel, stride, padding, dilation, out_size, need_x, need_w):
        """(dW2, dx) of conv2d_forward given g = dL/dy (N*oh*ow, O), each None unless needed:
            dW2 = cols^T g   (the shape of wmat: with the bias row, its last row is db)
            dx = col2im(g wmat[:taps]^T)   (N, H, W, C)
        cols from ``saved``, or unrolled again from x when the forward kept nothing."""
        taps, ones, _ = _conv_sizes("conv2d_backward", x, wmat, kernel, out_size, g)
        dW2 = dx = None
        if need_w:
            cols = saved if saved is not None else im2col(x, kernel, stride, padding, dilation, out_size,
                                                          ones_column=ones)
            # For row-major columns OpenBLAS runs this product faster as the transpose of
            # g^T cols (MNIST CNN conv2: 7.8 against 8.8 ms); for the one-channel layout (cols a
            # transposed view) cols^T g is the faster (1.5 against 2.7 ms for conv1)
            dW2 = matmul(g.T, cols).T if cols.flags.c_contiguous else matmul(cols.T, g)
        if need_x:
            dx = col2im(matmul(g, wmat[:taps].T), x.shape, kernel, stride, padding, dilation, out_size)
        return dW2, dx

    return conv2d_forward, conv2d_backward


conv2d_forward, conv2d_backward = _convolution(im2col, col2im, matmul)


# ======================================================================================
# Optimizer updates, in place, over lists of arrays (one call per parameter group)
# ======================================================================================


def _check_step(kernel, params, **lists):
    """Every list entry must match its parameter in size and dtype (and lists in length)."""
    for name, arrays in lists.items():
        if arrays is None:
            continue
        if len(arrays) != len(params):
            raise ValueError(f"{kernel}: {len(params)} params but {len(arrays)} {name}")
        for i, (p, a) in enumerate(zip(params, arrays)):
            if a.size != p.size or a.dtype != p.dtype:
                raise ValueError(
                    f"{kernel}: {name}[{i}] has shape {tuple(a.shape)} and dtype {a.dtype}, but "
                    f"params[{i}] has shape {tuple(p.shape)} and dtype {p.dtype}"
                )


def _check_sgd(params, grads, bufs, momentum):
    if momentum and bufs is None:
        raise ValueError("sgd_step_: momentum needs a list of bufs")
    _check_step("sgd_step_", params, grads=grads, bufs=bufs)


def sgd_step_(params, grads, bufs, lr, weight_decay, momentum, dampening, nesterov, first):
    """For each parameter x with gradient g (PyTorch's SGD):
        d = g + wd x
        momentum:  buf = d (first) or momentum buf + (1 - dampening) d
                   d = d + momentum buf (nesterov) or buf
        x -= lr d
    bufs is None when momentum is 0."""
    _check_sgd(params, grads, bufs, momentum)
    for i, (x, g) in enumerate(zip(params, grads)):
        _sgd_one(x, g.reshape(x.shape), None if bufs is None else bufs[i].reshape(x.shape),
                 lr, weight_decay, momentum, dampening, nesterov, first)


def _sgd_one(x, g, buf, lr, wd, momentum, dampening, nesterov, first):
    """sgd_step_ for one array, with in-place ``out=`` calls and scalars in x's dtype (so
    float32 stays float32 and rounds like the numba kernel)."""
    xp = array_module(x)
    t = x.dtype.type
    d = g
    if wd != 0:
        d = xp.multiply(x, t(wd))
        d += g
    if momentum != 0:
        if first:
            buf[...] = d
        else:
            buf *= t(momentum)
            buf += d if dampening == 0 else t(1 - dampening) * d
        d = d + t(momentum) * buf if nesterov else buf
    x -= xp.multiply(d, t(lr))


def adam_step_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps, step,
               weight_decay, decoupled):
    """For each parameter x with gradient g, at step t (Adam; AdamW when decoupled):
        decoupled: x *= 1 - lr wd          else: g += wd x
        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
        amsgrad (max_exp_avg_sqs given): vmax = max(vmax, v), used for v
        x -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)"""
    _check_step("adam_step_", params, grads=grads, exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs,
                max_exp_avg_sqs=max_exp_avg_sqs)
    scalars = _adam_scalars(lr, beta1, beta2, step, weight_decay, decoupled)
    for i, (x, g) in enumerate(zip(params, grads)):
        vmax = None if max_exp_avg_sqs is None else max_exp_avg_sqs[i].reshape(x.shape)
        _adam_one(x, g.reshape(x.shape), exp_avgs[i].reshape(x.shape), exp_avg_sqs[i].reshape(x.shape), vmax,
                  beta1, beta2, eps, *scalars)


def rmsprop_step_(params, grads, square_avgs, grad_avgs, bufs, lr, alpha, eps, weight_decay, momentum):
    """For each parameter x with gradient g (PyTorch's RMSprop):
        g += wd x
        v = alpha v + (1 - alpha) g^2                      running mean of g^2
        centered (grad_avgs given):  a = alpha a + (1 - alpha) g,   s = sqrt(v - a^2) + eps
        else:                                                       s = sqrt(v) + eps
        momentum (bufs given):  buf = momentum buf + g / s,   x -= lr buf
        else:                                                 x -= lr g / s"""
    _check_step("rmsprop_step_", params, grads=grads, square_avgs=square_avgs, grad_avgs=grad_avgs, bufs=bufs)
    if momentum and bufs is None:
        raise ValueError("rmsprop_step_: momentum needs a list of bufs")
    for i, (x, g) in enumerate(zip(params, grads)):
        xp, t = array_module(x), x.dtype.type
        g = g.reshape(x.shape)
        if weight_decay != 0:
            g = g + t(weight_decay) * x
        v = square_avgs[i].reshape(x.shape)
        v *= t(alpha)
        v += t(1 - alpha) * (g * g)
        if grad_avgs is None:
            s = xp.sqrt(v)
        else:
            a = grad_avgs[i].reshape(x.shape)
            a *= t(alpha)
            a += t(1 - alpha) * g
            s = xp.sqrt(v - a * a)
        s += t(eps)
        if bufs is None:
            x -= t(lr) * (g / s)
        else:
            buf = bufs[i].reshape(x.shape)
            buf *= t(momentum)
            buf += g / s
            x -= t(lr) * buf


def _adam_scalars(lr, beta1, beta2, step, weight_decay, decoupled):
    """(step_size, 1/sqrt(1 - b2^t), decay, l2): what every element of the step shares."""
    step_size = lr / (1 - beta1 ** step)
    inv_sqrt_bc2 = 1 / (1 - beta2 ** step) ** 0.5
    decay = 1 - lr * weight_decay if decoupled else 1.0
    return step_size, inv_sqrt_bc2, decay, 0.0 if decoupled else weight_decay


def _adam_one(x, g, m, v, vmax, b1, b2, eps, step_size, inv_sqrt_bc2, decay, l2):
    """adam_step_ for one array (in-place ``out=`` calls, scalars in x's dtype)."""
    xp = array_module(x)
    t = x.dtype.type
    if l2 != 0:
        g = g + t(l2) * x
    if decay != 1.0:
        x *= t(decay)
    tmp = xp.empty_like(x)  # (not multiply's result: for a 0-d x that is a scalar)
    xp.multiply(g, t(1 - b1), out=tmp)
    m *= t(b1)
    m += tmp
    xp.multiply(g, g, out=tmp)
    tmp *= t(1 - b2)
    v *= t(b2)
    v += tmp
    if vmax is not None:
        xp.maximum(vmax, v, out=vmax)
    xp.sqrt(v if vmax is None else vmax, out=tmp)
    tmp *= t(inv_sqrt_bc2)
    tmp += t(eps)
    xp.divide(m, tmp, out=tmp)
    tmp *= t(step_size)
    x -= tmp


# ======================================================================================
# Attention: softmax(Q K^T scale + mask) V as one kernel pair (the derivation, step by
# step, is docs/derivations/attention.md)
# ======================================================================================

__all__ += ["attention_forward", "attention_backward"]


def _check_attention(kernel, q, k, v, mask, **more):
    """q (B, Tq, D), k (B, Tk, D), v (B, Tk, Dv); mask None or 3-D with every side 1 or
    (B, Tq, Tk)'s; ``more``: arrays that must have the shapes named by their keys."""
    ok = q.ndim == k.ndim == v.ndim == 3 and q.shape[0] == k.shape[0] == v.shape[0] \
        and q.shape[2] == k.shape[2] and k.shape[1] == v.shape[1]
    b, tq, tk, dv = q.shape[0], q.shape[1], k.shape[1], v.shape[2]
    if ok and mask is not None:
        ok = mask.ndim == 3 and all(m in (1, n) for m, n in zip(mask.shape, (b, tq, tk)))
    expected = {"g": (b, tq, dv), "out": (b, tq, dv), "lse": (b, tq)}
    ok = ok and all(tuple(a.shape) == expected[name] for name, a in more.items())
    if not ok:
        arrays = dict(q=q, k=k, v=v, **({} if mask is None else {"mask": mask}), **more)
        raise _shape_error(kernel, **arrays)


def _attention_scores(q, k, mask, is_causal, scale):
    """S = scale Q K^T + mask (B, Tq, Tk); causal: S_ij = -inf for j > i (PyTorch's
    top-left aligned triangle when Tq != Tk).  Both masks are added in place."""
    xp = array_module(q)
    s = q @ k.transpose(0, 2, 1)
    s *= s.dtype.type(scale)
    if mask is not None:
        s += mask
    if is_causal:
        s += xp.where(xp.tri(s.shape[1], s.shape[2], dtype=bool), s.dtype.type(0), s.dtype.type(-np.inf))
    return s


def _attention_keep(like, shape, dropout_p, seed, offset, dtype):
    """The dropout multipliers M (0 or 1/(1-p)) of the attention weights, or None; made on
    ``like``'s device by its table's dropout_mask (on a GPU: the Philox kernel, no host copy)."""
    if not dropout_p:
        return None
    from . import kernels  # noqa: PLC0415  (the table of like's device; backend imports this module)

    return kernels(like).dropout_mask(shape, dropout_p, seed, offset, dtype, like=like)


def attention_forward(q, k, v, mask, is_causal, scale, dropout_p, seed, offset):
    """(out (B, Tq, Dv), lse (B, Tq)) of attention over B independent (batch, head) pairs:

        S = scale Q K^T + mask   (mask: additive, -inf where attention is not allowed;
                                  is_causal: -inf above the diagonal)
        lse_i = log sum_j exp S_ij,    P = exp(S - lse)      (the row softmax)
        out = (P * M) V          M = dropout_mask((B, Tq, Tk), dropout_p, seed, offset) when
                                 dropout_p > 0 (element (b, i, j) in C order), else 1

    A row masked everywhere attends to nothing: out = 0 and lse = -inf there (PyTorch's
    choice; a plain softmax would give NaN).  lse is what backward needs to rebuild P."""
    _check_attention("attention_forward", q, k, v, mask)
    xp = array_module(q)
    b, tq, tk, dv = q.shape[0], q.shape[1], k.shape[1], v.shape[2]
    if tk == 0:
        return xp.zeros((b, tq, dv), dtype=q.dtype), xp.full((b, tq), -np.inf, dtype=q.dtype)
    p = _attention_scores(q, k, mask, is_causal, scale)   # S, turned into P in place
    m = p.max(axis=2, keepdims=True)
    m = xp.where(m == -np.inf, m.dtype.type(0), m)  # a row masked everywhere: no shift (its sum is 0)
    p -= m
    xp.exp(p, out=p)
    total = p.sum(axis=2, keepdims=True)
    p /= xp.where(total == 0, 1, total)    # ... and its weights stay 0
    with np.errstate(divide="ignore"):     # log 0 = -inf for such a row, on purpose
        lse = (m + xp.log(total))[..., 0]
    keep = _attention_keep(q, p.shape, dropout_p, seed, offset, p.dtype)
    if keep is not None:
        p *= keep
    return p @ v, lse


def attention_backward(g, q, k, v, out, lse, mask, is_causal, scale, dropout_p, seed, offset):
    """(dq, dk, dv) of attention_forward given g = dL/dout, from the saved row log-sum-exps
    (P is rebuilt, never stored; same mask, causality, scale and dropout stream):

        P = exp(S - lse),  P~ = P * M
        dV = P~^T g
        dP = (g V^T) * M
        dS = P * (dP - D),    D_i = sum_j P_ij dP_ij = sum_d g_id out_id
        dQ = scale dS K,      dK = scale dS^T Q"""
    _check_attention("attention_backward", q, k, v, mask, g=g, out=out, lse=lse)
    xp = array_module(q)
    # P = exp(S - lse), in place; rows masked everywhere have lse = -inf: subtract +inf there
    p = _attention_scores(q, k, mask, is_causal, scale)
    p -= xp.where(lse == -np.inf, np.inf, lse)[..., None]
    xp.exp(p, out=p)
    keep = _attention_keep(q, p.shape, dropout_p, seed, offset, p.dtype)
    ds = g @ v.transpose(0, 2, 1)          # dP, turned into dS in place
    if keep is not None:
        dv = (p * keep).transpose(0, 2, 1) @ g
        ds *= keep
    else:
        dv = p.transpose(0, 2, 1) @ g
    ds -= (g * out).sum(axis=2, keepdims=True)
    ds *= p
    ds *= ds.dtype.type(scale)
    return ds @ k, ds.transpose(0, 2, 1) @ q, dv


# ======================================================================================
# More optimizer updates: Adagrad and Adadelta, one call per parameter group
# (numba in cpu_kernels.py, one multi-tensor launch of kernels/optim.cu on the GPU).
# ======================================================================================

__all__ += ["adagrad_step_", "adadelta_step_"]


def adagrad_step_(params, grads, sums, lr, lr_decay, weight_decay, eps, step):
    """For each parameter x with gradient g, at step t (PyTorch's Adagrad):
        g += wd x
        s += g^2                                    every squared gradient so far
        x -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)"""
    _check_step("adagrad_step_", params, grads=grads, sums=sums)
    for x, g, s in zip(params, grads, sums):
        xp, t = array_module(x), x.dtype.type
        g, s = g.reshape(x.shape), s.reshape(x.shape)
        if weight_decay != 0:
            g = g + t(weight_decay) * x
        s += g * g
        x -= t(lr / (1 + (step - 1) * lr_decay)) * (g / (xp.sqrt(s) + t(eps)))


def adadelta_step_(params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay):
    """For each parameter x with gradient g (PyTorch's Adadelta, Zeiler 2012):
        g += wd x
        v = rho v + (1 - rho) g^2                    running mean of g^2
        d = sqrt(u + eps) / sqrt(v + eps) * g        the step, in the units of x
        u = rho u + (1 - rho) d^2                    running mean of d^2
        x -= lr d"""
    _check_step("adadelta_step_", params, grads=grads, square_avgs=square_avgs, acc_deltas=acc_deltas)
    for x, g, v, u in zip(params, grads, square_avgs, acc_deltas):
        xp, t = array_module(x), x.dtype.type
        g, v, u = g.reshape(x.shape), v.reshape(x.shape), u.reshape(x.shape)
        if weight_decay != 0:
            g = g + t(weight_decay) * x
        v *= t(rho)
        v += t(1 - rho) * (g * g)
        d = xp.sqrt(u + t(eps)) / xp.sqrt(v + t(eps)) * g
        u *= t(rho)
        u += t(1 - rho) * (d * d)
        x -= t(lr) * d


# Recurrent cells: one time step of an Elman RNN, an LSTM and a GRU, forward and
# backward.  The time loop is Python (nn/rnn.py); each step is two matrix products (the
# input's and the hidden state's) and the gates' elementwise math, fused here.  Derivation,
# with a worked example: docs/derivations/rnn.md.
#
# Shapes, with G gates (RNN 1, GRU 3, LSTM 4) of H units each and PyTorch's gate order:
#   x (B, I), h (B, P), w_ih (G*H, I), w_hh (G*H, P), b_ih, b_hh (G*H,) or None;
#   P = H except for an LSTM with a projection (proj_size), where h is the projected state.
# ======================================================================================

__all__ += ["rnn_cell_forward", "rnn_cell_backward", "lstm_cell_forward", "lstm_cell_backward",
            "gru_cell_forward", "gru_cell_backward", "rnn_step_forward", "rnn_step_backward",
            "lstm_step_forward", "lstm_step_backward", "gru_step_forward", "gru_step_backward"]


def _check_cell(kernel, gates, x, h, w_ih, w_hh, b_ih, b_hh, **more):
    """Raise ValueError unless the arrays fit one cell of ``gates`` gates (shapes above);
    ``more`` holds arrays that must have the shapes their keys end in: "c_BH" (B, H),
    "saved_B4H" (B, 4*H), "ghc_2BH" (2, B, H).  Returns (B, H)."""
    ok = (x.ndim == h.ndim == w_ih.ndim == w_hh.ndim == 2 and x.shape[0] == h.shape[0]
          and w_ih.shape[0] % gates == 0 and w_hh.shape[0] == w_ih.shape[0]
          and w_ih.shape[1] == x.shape[1] and w_hh.shape[1] == h.shape[1]
          and all(b is None or tuple(b.shape) == w_ih.shape[:1] for b in (b_ih, b_hh)))
    b, hidden = x.shape[0] if x.ndim else 0, w_ih.shape[0] // gates if w_ih.ndim else 0
    shapes = {"BH": (b, hidden), "B4H": (b, 4 * hidden), "2BH": (2, b, hidden)}
    ok = ok and all(tuple(a.shape) == shapes[name.rsplit("_", 1)[1]] for name, a in more.items())
    if not ok:
        arrays = dict(x=x, h=h, w_ih=w_ih, w_hh=w_hh)
        arrays.update({k: v for k, v in (("b_ih", b_ih), ("b_hh", b_hh)) if v is not None})
        arrays.update({name.rsplit("_", 1)[0]: a for name, a in more.items()})
        raise _shape_error(kernel, **arrays)
    return b, hidden


def _gate_inputs(x, h, w_ih, w_hh, b_ih, b_hh):
    """The two matrix products of a step, x w_ih^T + b_ih and h w_hh^T + b_hh (G*H wide each)."""
    gi, gh = x @ w_ih.T, h @ w_hh.T
    if b_ih is not None:
        gi += b_ih
    if b_hh is not None:
        gh += b_hh
    return gi, gh


def _cell_weight_grads(da_i, da_h, x, h, w_ih, w_hh, need_dx):
    """(dx, dh, dw_ih, dw_hh, db_ih, db_hh) from the gradients of the two products of a step,
    da_i = dL/d(x w_ih^T + b_ih) and da_h = dL/d(h w_hh^T + b_hh) (B, G*H):
        dx = da_i w_ih,  dh = da_h w_hh,  dw_ih = da_i^T x,  dw_hh = da_h^T h,  db = column sums
    dx is None unless ``need_dx`` (a first layer's input, the data, needs no gradient: one
    product fewer per step)."""
    db_ih = da_i.sum(axis=0)
    return (da_i @ w_ih if need_dx else None, da_h @ w_hh, da_i.T @ x, da_h.T @ h, db_ih,
            db_ih if da_h is da_i else da_h.sum(axis=0))


def _check_nonlinearity(kernel, nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{kernel}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity):
    """h' (B, H) of an Elman RNN step:
        a = x w_ih^T + b_ih + h w_hh^T + b_hh,     h' = tanh(a)  or  relu(a)"""
    _check_nonlinearity("rnn_cell_forward", nonlinearity)
    _check_cell("rnn_cell_forward", 1, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    gi, gh = _gate_inputs(x, h, w_ih, w_hh, b_ih, b_hh)
    out = array_module(x).empty_like(gi)
    rnn_step_forward(gi, gh, nonlinearity, out)
    return out


def rnn_cell_backward(g, x, h, h_new, w_ih, w_hh, nonlinearity, need_dx=True):
    """(dx, dh, dw_ih, dw_hh, db) of rnn_cell_forward given g = dL/dh', from h' itself
    (dx None unless need_dx):
        da = g (1 - h'^2)  (tanh)   or   g [h' > 0]  (relu)
        dx = da w_ih,  dh = da w_hh,  dw_ih = da^T x,  dw_hh = da^T h,  db = sum_rows(da)
    (db is the gradient of b_ih and of b_hh alike: both are added to a)."""
    _check_nonlinearity("rnn_cell_backward", nonlinearity)
    _check_cell("rnn_cell_backward", 1, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g, h_new_BH=h_new)
    da = array_module(g).empty(g.shape, dtype=g.dtype)
    rnn_step_backward(g, h_new, nonlinearity, da)
    return _cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)[:5]  # (db_ih = db_hh: one of them)


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """(hc (2, B, H), saved) of an LSTM step; hc[0] = h', hc[1] = c' (one array: the op's
    single output); saved = (gates (B, 4H), tanh(c') (B, H)), what backward needs:
        a = x w_ih^T + b_ih + h w_hh^T + b_hh = [a_i, a_f, a_g, a_o]
        i = sigmoid(a_i),  f = sigmoid(a_f),  g = tanh(a_g),  o = sigmoid(a_o)
        c' = f c + i g,     h' = o tanh(c'),    gates = [i, f, g, o]"""
    b, hidden = _check_cell("lstm_cell_forward", 4, x, h, w_ih, w_hh, b_ih, b_hh, c_BH=c)
    xp = array_module(x)
    gates, gh = _gate_inputs(x, h, w_ih, w_hh, b_ih, b_hh)  # gates: the input's product until the step
    hc, tc = xp.empty((2, b, hidden), dtype=gates.dtype), xp.empty((b, hidden), dtype=gates.dtype)
    lstm_step_forward(gates, gh, c, hc[0], hc[1], tc)
    return hc, (gates, tc)


def lstm_cell_backward(ghc, x, h, c, saved, w_ih, w_hh, need_dx=True):
    """(dx, dh, dc, dw_ih, dw_hh, db) of lstm_cell_forward (dx None unless need_dx) given
    ghc = dL/dhc (2, B, H), i.e.
    gh = dL/dh' and gc = dL/dc' (what flows back along c from the next step), from
    saved = ([i, f, g, o], tanh(c')):
        dc' = gc + gh o (1 - tanh(c')^2)            (c' reaches the loss along both paths)
        da_i = dc' g i (1 - i),   da_f = dc' c f (1 - f),   da_g = dc' i (1 - g^2),
        da_o = gh tanh(c') o (1 - o),                dc = dc' f
        dx = da w_ih,  dh = da w_hh,  dw_ih = da^T x,  dw_hh = da^T h,  db = sum_rows(da)"""
    gates, tc = saved
    _, hidden = _check_cell("lstm_cell_backward", 4, x, h, w_ih, w_hh, None, None, c_BH=c, ghc_2BH=ghc,
                            gates_B4H=gates, tc_BH=tc)
    xp = array_module(x)
    da, dc = xp.empty((x.shape[0], 4 * hidden), dtype=gates.dtype), xp.empty(c.shape, dtype=gates.dtype)
    lstm_step_backward(ghc[0], ghc[1], c, gates, tc, da, dc)
    dx, dh, dw_ih, dw_hh, db, _ = _cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)
    return dx, dh, dc, dw_ih, dw_hh, db


def gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh):
    """(h' (B, H), saved (B, 4H)) of a GRU step (PyTorch's formulation, gates [r, z, n]):
        gi = x w_ih^T + b_ih = [gi_r, gi_z, gi_n],   gh = h w_hh^T + b_hh = [gh_r, gh_z, gh_n]
        r = sigmoid(gi_r + gh_r),   z = sigmoid(gi_z + gh_z),   n = tanh(gi_n + r gh_n)
        h' = (1 - z) n + z h
    saved = [r, z, n, gh_n], what backward needs."""
    b, hidden = _check_cell("gru_cell_forward", 3, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    xp = array_module(x)
    gi, gh = _gate_inputs(x, h, w_ih, w_hh, b_ih, b_hh)
    h_new, saved = xp.empty((b, hidden), dtype=gi.dtype), xp.empty((b, 4 * hidden), dtype=gi.dtype)
    gru_step_forward(gi, gh, h, h_new, saved)
    return h_new, saved


def gru_cell_backward(g, x, h, saved, w_ih, w_hh, need_dx=True):
    """(dx, dh, dw_ih, dw_hh, db_ih, db_hh) of gru_cell_forward (dx None unless need_dx) given
    g = dL/dh', from
    saved = [r, z, n, gh_n]:
        dn = g (1 - z),   dz = g (h - n),   da_n = dn (1 - n^2)          (a_n = gi_n + r gh_n)
        da_r = da_n gh_n r (1 - r),   da_z = dz z (1 - z)
        dgi = [da_r, da_z, da_n],     dgh = [da_r, da_z, da_n r]        (gh_n enters times r)
        dx = dgi w_ih,  dh = g z + dgh w_hh,  dw_ih = dgi^T x,  dw_hh = dgh^T h,
        db_ih = sum_rows(dgi),  db_hh = sum_rows(dgh)"""
    _, hidden = _check_cell("gru_cell_backward", 3, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g, saved_B4H=saved)
    xp = array_module(x)
    dgi, dgh = (xp.empty((g.shape[0], 3 * hidden), dtype=g.dtype) for _ in range(2))
    g_z = xp.empty(g.shape, dtype=g.dtype)
    gru_step_backward(g, h, saved, dgi, dgh, g_z)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _cell_weight_grads(dgi, dgh, x, h, w_ih, w_hh, need_dx)
    return dx, dh + g_z, dw_ih, dw_hh, db_ih, db_hh


# -- the gates of one step, from the step's two products ------------------------------------
# What the cell kernels above and a whole-sequence op (ops/rnn.py: LSTMSequence) share.  A
# layer computes the input's product x_t W_ih^T + b for ALL its steps as one matrix product
# before its time loop; each step then only multiplies the state, h W_hh^T, and calls one of
# these.  They write into the arrays given (slices of a layer's (T, ...) buffers) and return
# None.  ``xw`` / ``gi`` hold the input's product with its bias(es) added, ``hw`` / ``gh`` the
# state's (a GRU keeps b_hh on the state's side: r multiplies gh_n + b_hn); the LSTM's forward
# writes its gates over its input's product (``gates``: in, then out).


_GATE_WIDTHS = {"BH": 1, "B4H": 4}  # widths in units of H; "BGH": the gates' (a_in's)


def _check_gates(kernel, gates, a_in, a_h, **more):
    """Raise ValueError unless a_in and a_h are (B, gates*H) and each array of ``more`` has
    the shape its key ends in ("_BH" (B, H), "_BGH" (B, gates*H), "_B4H").  Returns
    (B, H).  (Called once per time step: plain comparisons, no temporaries.)"""
    shape = a_in.shape
    if len(shape) == 2 and shape[1] % gates == 0 and a_h.shape == shape:
        b, hidden = shape[0], shape[1] // gates
        for name, a in more.items():
            width = _GATE_WIDTHS.get(name[name.rfind("_") + 1:], gates)
            if a.shape != (b, width * hidden):
                break
        else:
            return b, hidden
    raise _shape_error(kernel, **{"input product": a_in, "state product": a_h},
                       **{name.rsplit("_", 1)[0]: a for name, a in more.items()})


def rnn_step_forward(xw, hw, nonlinearity, out):
    """out = tanh(xw + hw) or relu(xw + hw) (B, H): an Elman RNN step's new state."""
    _check_nonlinearity("rnn_step_forward", nonlinearity)
    _check_gates("rnn_step_forward", 1, xw, hw, out_BH=out)
    a = xw + hw
    out[...] = array_module(a).tanh(a) if nonlinearity == "tanh" else relu(a)


def rnn_step_backward(g, h_new, nonlinearity, da):
    """da = g (1 - h'^2) (tanh) or g [h' > 0] (relu): dL/da of a step from g = dL/dh' and h'."""
    _check_nonlinearity("rnn_step_backward", nonlinearity)
    _check_gates("rnn_step_backward", 1, g, h_new, da_BH=da)
    da[...] = tanh_backward(g, h_new) if nonlinearity == "tanh" else relu_backward(g, h_new)


def lstm_step_forward(gates, hw, c, h_new, c_new, tc):
    """An LSTM step's gates from a = xw + hw = [a_i, a_f, a_g, a_o] (B, 4H) and the cell state c,
    where ``gates`` holds the input's product xw on entry and the gates on return:
        i = sigmoid(a_i),  f = sigmoid(a_f),  g = tanh(a_g),  o = sigmoid(a_o)
        c' = f c + i g,    h' = o tanh(c')
    written to gates = [i, f, g, o] (B, 4H), h_new, c_new and tc = tanh(c') (B, H).  (A step's
    input products are read once, so its gates take their place: a layer keeps one (T, B, 4H)
    buffer for both, and the gates are written to memory the step has just read.)"""
    _, hidden = _check_gates("lstm_step_forward", 4, gates, hw, c_BH=c, h_new_BH=h_new, c_new_BH=c_new, tc_BH=tc)
    a = gates + hw
    gates[...] = sigmoid(a)
    gates[:, 2 * hidden:3 * hidden] = array_module(a).tanh(a[:, 2 * hidden:3 * hidden])
    i, f, g, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c_new[...] = f * c + i * g
    tc[...] = array_module(a).tanh(c_new)
    h_new[...] = o * tc


def lstm_step_backward(gh, gc, c, gates, tc, da, dc):
    """The gates' gradients of an LSTM step, given gh = dL/dh' and gc = dL/dc' (B, H) (each
    what the loss sends directly plus what the next step sends back), from c, the step's
    gates = [i, f, g, o] (B, 4H) and tc = tanh(c') (B, H):
        dc' = gc + gh o (1 - tanh(c')^2)            (c' reaches the loss along both paths)
        da = [dc' g i (1 - i),  dc' c f (1 - f),  dc' i (1 - g^2),  gh tanh(c') o (1 - o)]
        dc = dc' f
    written to da (B, 4H) and dc (B, H)."""
    _, hidden = _check_gates("lstm_step_backward", 4, da, gates, gh_BH=gh, gc_BH=gc, c_BH=c, tc_BH=tc, dc_BH=dc)
    i, f, g, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    dc_new = gc + gh * o * (1 - tc * tc)
    da[:, :hidden] = dc_new * g * i * (1 - i)
    da[:, hidden:2 * hidden] = dc_new * c * f * (1 - f)
    da[:, 2 * hidden:3 * hidden] = dc_new * i * (1 - g * g)
    da[:, 3 * hidden:] = gh * tc * o * (1 - o)
    dc[...] = dc_new * f


def gru_step_forward(gi, gh, h, h_new, saved):
    """A GRU step's gates from gi = [gi_r, gi_z, gi_n] and gh = [gh_r, gh_z, gh_n] (B, 3H):
        r = sigmoid(gi_r + gh_r),   z = sigmoid(gi_z + gh_z),   n = tanh(gi_n + r gh_n)
        h' = (1 - z) n + z h
    written to h_new (B, H) and saved = [r, z, n, gh_n] (B, 4H)."""
    _, hidden = _check_gates("gru_step_forward", 3, gi, gh, h_BH=h, h_new_BH=h_new, saved_B4H=saved)
    saved[:, :2 * hidden] = sigmoid(gi[:, :2 * hidden] + gh[:, :2 * hidden])
    r, z = saved[:, :hidden], saved[:, hidden:2 * hidden]
    saved[:, 3 * hidden:] = gh[:, 2 * hidden:]
    saved[:, 2 * hidden:3 * hidden] = n = array_module(gi).tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
    h_new[...] = (1 - z) * n + z * h


def gru_step_backward(g, h, saved, dgi, dgh, g_z):
    """The gates' gradients of a GRU step given g = dL/dh', from h and saved = [r, z, n, gh_n]:
        dn = g (1 - z),   dz = g (h - n),   da_n = dn (1 - n^2)          (a_n = gi_n + r gh_n)
        da_r = da_n gh_n r (1 - r),   da_z = dz z (1 - z)
        dgi = [da_r, da_z, da_n],     dgh = [da_r, da_z, da_n r]        (gh_n enters times r)
        g_z = g z                                                       (h's direct share of dh)
    written to dgi, dgh (B, 3H) and g_z (B, H)."""
    _, hidden = _check_gates("gru_step_backward", 3, dgi, dgh, g_BH=g, h_BH=h, saved_B4H=saved, g_z_BH=g_z)
    r, z, n, ghn = (saved[:, k * hidden:(k + 1) * hidden] for k in range(4))
    da_n = g * (1 - z) * (1 - n * n)
    dgi[:, :hidden] = da_n * ghn * r * (1 - r)
    dgi[:, hidden:2 * hidden] = g * (h - n) * z * (1 - z)
    dgi[:, 2 * hidden:] = da_n
    dgh[:, :2 * hidden] = dgi[:, :2 * hidden]
    dgh[:, 2 * hidden:] = da_n * r
    g_z[...] = g * z
