"""Batch normalization over (N, C) or (N, C, H, W).  Derivation: docs/derivations/batchnorm.md.

Statistics are per channel C, over the reduced axes R = (0,) or (0, 2, 3) (m = count over R).
"""
from .. import autograd, backend
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

    The backward is written with minigrad ops; under create_graph it recomputes xhat and
    sigma from x on the tape, so second derivatives are exact (gradgradcheck covers it).
    """

    def forward(self, x, *wb, has_weight, has_bias, running_mean, running_var, training,
                momentum, eps):
        xp = backend.array_module(x)
        self.has_weight, self.has_bias = has_weight, has_bias
        self.axes = (0,) if x.ndim == 2 else (0, 2, 3)
        self.shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        self.training, self.eps = training, eps
        w = wb[0] if has_weight else None
        b = wb[-1] if has_bias else None
        if training:
            m = x.size // x.shape[1]
            mu = x.mean(axis=self.axes, keepdims=True)
            xc = x - mu
            var = (xc * xc).mean(axis=self.axes, keepdims=True)
            if running_mean is not None:
                rm, rv = running_mean.data, running_var.data
                # the running variance uses the unbiased estimate, as in PyTorch
                rm[...] = (1 - momentum) * rm + momentum * mu.reshape(-1)
                rv[...] = (1 - momentum) * rv + momentum * var.reshape(-1) * (m / (m - 1))
                running_mean._version += 1
                running_var._version += 1
        else:
            mu = running_mean.data.reshape(self.shape).astype(x.dtype)
            var = running_var.data.reshape(self.shape).astype(x.dtype)
            xc = x - mu
        self.mu = mu
        self.inv_std = 1 / xp.sqrt(var + eps)
        self.xhat = xc * self.inv_std
        y = self.xhat
        if w is not None:
            y = y * w.reshape(self.shape)
        if b is not None:
            y = y + b.reshape(self.shape)
        if y is self.xhat:
            y = y.copy()
        return y

    def backward(self, g):
        x = self.saved_tensors[0]
        has_w = self.has_weight
        w = self.inputs[1] if has_w else None
        axes, shape = self.axes, self.shape
        if autograd.is_grad_enabled() and self.training:
            # create_graph: rebuild xhat and 1/sigma from x on the tape (they depend on x)
            mu = x.mean(axis=axes, keepdims=True)
            xc = x - mu
            inv_std = ((xc * xc).mean(axis=axes, keepdims=True) + self.eps) ** -0.5
            xhat = xc * inv_std
        else:
            inv_std = Tensor._wrap(self.inv_std)
            if autograd.is_grad_enabled():  # eval: mu and sigma are constants, xhat is linear in x
                xhat = (x - Tensor._wrap(self.mu)) * inv_std
            else:
                xhat = Tensor._wrap(self.xhat)
        scale = inv_std if w is None else w.reshape(shape) * inv_std
        if self.training:
            dx = scale * (g - g.mean(axis=axes, keepdims=True)
                          - xhat * (g * xhat).mean(axis=axes, keepdims=True))
        else:
            dx = g * scale
        grads = [dx if x.requires_grad else None]
        if has_w:
            grads.append((g * xhat).sum(axis=axes) if w.requires_grad else None)
        if self.has_bias:
            grads.append(g.sum(axis=axes) if self.inputs[-1].requires_grad else None)
        return tuple(grads)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalize each channel of x (N, C) or (N, C, H, W), then scale by weight and shift by
    bias (both (C,) or None).  training=True uses the batch statistics and updates
    running_mean/running_var in place (if given) with ``momentum``; training=False uses them."""
    op = "batch_norm"
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape {x.shape}")
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
                           running_mean=running_mean, running_var=running_var,
                           training=bool(training), momentum=float(momentum), eps=float(eps))
