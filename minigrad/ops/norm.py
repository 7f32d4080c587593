"""Normalization: batch norm over (N, C) or (N, C, H, W) (statistics per channel C, over the
reduced axes R = (0,) or (0, 2, 3), m = count over R; derivation: docs/derivations/batchnorm.md),
and layer norm over the last axes of each sample.
"""
import math

from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor


@register
class BatchNorm(Function):
    """Forward (per channel):
        mu = mean_R(x),  var = mean_R((x - mu)^2)           (training: the batch; eval: running stats)
        sigma = sqrt(var + eps),  xhat = (x - mu) / sigma,  y = w * xhat + b

    Backward, training (one fused formula, mean_R over the reduced axes):
        dx = (w / sigma) * (g - mean_R(g) - xhat * mean_R(g * xhat))
        dw = sum_R(g * xhat),   db = sum_R(g)
    Backward, eval (mu and sigma are constants):  dx = g * w / sigma.

    backward writes these formulas with minigrad ops, recomputing xhat and sigma from x on
    the tape, so second derivatives are exact (gradgradcheck covers it); fused_backward is the
    kernel (batch_norm_backward) the engine runs when the gradient is not recorded.
    """

    def forward(self, x, *wb, has_weight, has_bias, running, training, momentum, eps):
        k = backend.kernels(x)
        self.has_weight, self.has_bias = has_weight, has_bias
        self.training, self.eps = training, eps
        w = wb[0] if has_weight else None
        b = wb[-1] if has_bias else None
        if training:
            y, self.mean, self.invstd = k.batch_norm_forward(x, w, b, eps)
            if running is not None:  # the buffers (Tensors), updated here in place
                running_mean, running_var = running
                m = x.size // x.shape[1]
                var = 1 / (self.invstd * self.invstd) - eps  # the batch's (biased) variance
                rm, rv = running_mean.array, running_var.array
                # the running variance uses the unbiased estimate, as in PyTorch
                rm[...] = (1 - momentum) * rm + momentum * self.mean
                rv[...] = (1 - momentum) * rv + momentum * var * (m / (m - 1))
                running_mean._version += 1
                running_var._version += 1
        else:
            y, self.mean, self.invstd = k.batch_norm_forward(x, w, b, eps, running[0].array, running[1].array)
        return y

    def fused_backward(self, g):
        x, w = self.inputs[0], (self.inputs[1] if self.has_weight else None)
        grads = backend.kernels(g.array).batch_norm_backward(
            g.array, x.array, None if w is None else w.array, self.mean, self.invstd, self.training)
        return _wanted(self, *(Tensor._wrap(a) for a in grads))

    def backward(self, g):
        """In training, xhat and 1/sigma are recomputed from x on the tape (they depend on x)."""
        x, w = self.inputs[0], (self.inputs[1] if self.has_weight else None)
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if self.training:
            xc = x - x.mean(axis=axes, keepdims=True)
            inv_std = ((xc * xc).mean(axis=axes, keepdims=True) + self.eps) ** -0.5
            xhat = xc * inv_std
        else:  # mu and sigma are constants, xhat is linear in x
            inv_std = Tensor._wrap(self.invstd.reshape(shape))
            xhat = (x - Tensor._wrap(self.mean.reshape(shape))) * inv_std
        scale = inv_std if w is None else w.reshape(shape) * inv_std
        if self.training:
            dx = scale * (g - g.mean(axis=axes, keepdims=True)
                          - xhat * (g * xhat).mean(axis=axes, keepdims=True))
        else:
            dx = g * scale
        return _wanted(self, dx, (g * xhat).sum(axis=axes), g.sum(axis=axes))


def _wanted(record, dx, dw, db):
    """(dx, dw, db) as the gradients of a norm's inputs (x, then weight and bias when given),
    None for those that need none."""
    grads = [dx]
    if record.has_weight:
        grads.append(dw)
    if record.has_bias:
        grads.append(db)
    return tuple(d if t.requires_grad else None for d, t in zip(grads, record.inputs))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalize each channel of x (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W), then scale
    by weight and shift by bias (both (C,) or None).  training=True uses the batch statistics and
    updates running_mean/running_var in place (if given) with ``momentum``; training=False uses
    them.  (The op and its kernels see 2-D or 4-D arrays: other ranks are reshaped to
    (N, C, -1, 1), which keeps every channel's values together.)"""
    op = "batch_norm"
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C) or (N, C, ...), got shape {x.shape}")
    if x.ndim not in (2, 4):
        y = batch_norm(x.reshape(x.shape[:2] + (-1, 1)), running_mean, running_var, weight, bias,
                       training, momentum, eps)
        return y.reshape(x.shape)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got {x.dtype}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for input of shape {x.shape}, got {tuple(t.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError(f"{op}: eval mode (training=False) needs running_mean and running_var")
    if training and x.numel() // max(c, 1) <= 1:
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got input of shape {x.shape}")
    if isinstance(running_mean, Tensor) is False and running_mean is not None:
        raise TypeError(f"{op}: running_mean and running_var must be tensors")
    inputs = [x] + [t for t in (weight, bias) if t is not None]
    return BatchNorm.apply(*inputs, has_weight=weight is not None, has_bias=bias is not None,
                           running=None if running_mean is None else (running_mean, running_var),
                           training=bool(training), momentum=float(momentum), eps=float(eps))


@register
class LayerNorm(Function):
    """Normalize over the last axes (the ``normalized_shape``, N elements per row), per row:
        mu = mean(x),  var = mean((x - mu)^2),  rstd = 1 / sqrt(var + eps)
        xhat = (x - mu) rstd,   y = w * xhat + b          (w, b of normalized_shape, or absent)

    Backward (means over each row's N elements, gw = g * w):
        dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))
        dw = sum over rows of g * xhat,   db = sum over rows of g

    backward writes these formulas with minigrad ops, recomputing xhat and rstd from x on the
    tape, so second derivatives are exact; fused_backward is the kernel (layer_norm_backward,
    on the (rows, N) matrix) the engine runs when the gradient is not recorded."""

    def forward(self, x, *wb, has_weight, has_bias, eps, shape):
        self.has_weight, self.has_bias, self.eps, self.shape = has_weight, has_bias, eps, shape
        size = math.prod(shape)
        w = wb[0].reshape(size) if has_weight else None
        b = wb[-1].reshape(size) if has_bias else None
        y, self.mean, self.rstd = backend.kernels(x).layer_norm_forward(x.reshape(-1, size), w, b, eps)
        return y.reshape(x.shape)

    def fused_backward(self, g):
        x, w = self.inputs[0], (self.inputs[1] if self.has_weight else None)
        size = math.prod(self.shape)
        dx, dw, db = backend.kernels(g.array).layer_norm_backward(
            g.array.reshape(-1, size), x.array.reshape(-1, size), None if w is None else w.array.reshape(size),
            self.mean, self.rstd)
        return _wanted(self, Tensor._wrap(dx.reshape(x.shape)), Tensor._wrap(dw.reshape(self.shape)),
                       Tensor._wrap(db.reshape(self.shape)))

    def backward(self, g):
        x, w = self.inputs[0], (self.inputs[1] if self.has_weight else None)
        axes = tuple(range(x.ndim - len(self.shape), x.ndim))
        xc = x - x.mean(axis=axes, keepdims=True)
        rstd = ((xc * xc).mean(axis=axes, keepdims=True) + self.eps) ** -0.5
        xhat = xc * rstd
        gw = g if w is None else g * w
        dx = rstd * (gw - gw.mean(axis=axes, keepdims=True) - xhat * (gw * xhat).mean(axis=axes, keepdims=True))
        rows = tuple(range(x.ndim - len(axes)))
        return _wanted(self, dx, (g * xhat).sum(axis=rows), g.sum(axis=rows))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize x over its last axes, which must have shape ``normalized_shape`` (an int or a
    tuple), then scale by weight and shift by bias (both of normalized_shape, or None), as
    PyTorch's F.layer_norm."""
    op = "layer_norm"
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or any(not isinstance(n, int) or n < 1 for n in shape):
        raise ValueError(f"{op}: normalized_shape must be a positive int or a non-empty tuple of them, "
                         f"got {normalized_shape!r}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got {x.dtype}")
    if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"{op}: input of shape {x.shape} does not end with normalized_shape {shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ValueError(f"{op}: {name} must have shape {shape}, got {t.shape}")
    inputs = [x] + [t for t in (weight, bias) if t is not None]
    return LayerNorm.apply(*inputs, has_weight=weight is not None, has_bias=bias is not None,
                           eps=float(eps), shape=shape)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalization (Wu & He 2018), as PyTorch's F.group_norm: the C channels of x
    (N, C, ...) are split into ``num_groups`` groups, and each sample's group is normalized
    over its channels and positions together; then per-channel ``weight`` and ``bias`` (C,).

    Each (sample, group) is one row of layer norm: x reshaped to (N, G, C/G * positions) and
    normalized over the last axis is exactly group norm, so it runs the layer-norm kernels
    (and their backward and second derivatives); the affine part is a broadcast multiply-add.
    docs/derivations/layernorm.md, "Group norm"."""
    op = "group_norm"
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C, ...), got shape {x.shape}")
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
        raise ValueError(f"{op}: num_groups must be a positive int, got {num_groups!r}")
    n, c = x.shape[:2]
    if c % num_groups:
        raise ValueError(f"{op}: the {c} channels of an input of shape {x.shape} cannot be split into "
                         f"{num_groups} groups (num_channels must be divisible by num_groups)")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got {x.dtype}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for input of shape {x.shape}, got {tuple(t.shape)}")
    row = math.prod(x.shape[1:]) // num_groups
    y = layer_norm(x.reshape((n, num_groups, row)), row, eps=eps).reshape(x.shape)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(per_channel)
    if bias is not None:
        y = y + bias.reshape(per_channel)
    return y
