"""Layer normalization over the trailing dimensions.  Derivation: docs/derivations/layernorm.md.

Each row (the last ``len(normalized_shape)`` dimensions, N numbers) is normalized on its own,
so the statistics are per sample and per position, never across the batch: the same in
training and evaluation, and no running averages.
"""
import math
import numbers

from .. import autograd, backend
from ..autograd import Function, register
from ..tensor import Tensor


@register
class LayerNorm(Function):
    """Forward, for each row x of N numbers:
        mu = mean(x),  var = mean((x - mu)^2),  rstd = 1 / sqrt(var + eps)
        xhat = (x - mu) rstd,   y = w * xhat + b

    Backward (means over the row's N entries, gw = g * w):
        dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))
        dw = sum over rows of g * xhat,   db = sum over rows of g

    Both directions are kernels of the table (layer_norm_forward / layer_norm_backward, on
    (M, N) rows).  Under create_graph the backward is written with minigrad ops instead,
    recomputing xhat and rstd from x on the tape, so second derivatives are exact."""

    def forward(self, x, *wb, ndim, has_weight, has_bias, eps):
        self.ndim, self.has_weight, self.has_bias, self.eps = ndim, has_weight, has_bias, eps
        n = math.prod(x.shape[x.ndim - ndim:])
        w = wb[0].reshape(n) if has_weight else None
        b = wb[-1].reshape(n) if has_bias else None
        y, self.mean, self.rstd = backend.kernels(x).layer_norm_forward(x.reshape(-1, n), w, b, eps)
        return y.reshape(x.shape)

    def backward(self, g):
        x = self.saved_tensors[0]
        w = self.inputs[1] if self.has_weight else None
        if autograd.is_grad_enabled():
            dx, dw, db = self._backward_ops(g, x, w)
        else:
            n = math.prod(x.shape[x.ndim - self.ndim:])
            dx, dw, db = backend.kernels(g.data).layer_norm_backward(
                g.data.reshape(-1, n), x.data.reshape(-1, n), None if w is None else w.data.reshape(n),
                self.mean, self.rstd)
            shape = x.shape[x.ndim - self.ndim:]
            dx, dw, db = Tensor._wrap(dx.reshape(x.shape)), Tensor._wrap(dw.reshape(shape)), Tensor._wrap(db.reshape(shape))
        grads = [dx if x.requires_grad else None]
        if self.has_weight:
            grads.append(dw if w.requires_grad else None)
        if self.has_bias:
            grads.append(db if self.inputs[-1].requires_grad else None)
        return tuple(grads)

    def _backward_ops(self, g, x, w):
        """The backward formulas with minigrad ops (create_graph): xhat and rstd depend on x,
        so they are recomputed from it on the tape."""
        rows = tuple(range(x.ndim - self.ndim, x.ndim))
        xc = x - x.mean(axis=rows, keepdims=True)
        rstd = ((xc * xc).mean(axis=rows, keepdims=True) + self.eps) ** -0.5
        xhat = xc * rstd
        gw = g if w is None else g * w
        dx = rstd * (gw - gw.mean(axis=rows, keepdims=True) - xhat * (gw * xhat).mean(axis=rows, keepdims=True))
        lead = tuple(range(x.ndim - self.ndim))
        return dx, (g * xhat).sum(axis=lead), g.sum(axis=lead)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize ``input`` over its last dimensions ``normalized_shape`` (an int or a tuple),
    then scale by ``weight`` and shift by ``bias`` (both of shape normalized_shape, or None).
    PyTorch's F.layer_norm."""
    op = "layer_norm"
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(int(n) for n in normalized_shape)
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got {input.dtype}")
    nd = len(normalized_shape)
    if nd == 0 or input.shape[input.ndim - nd:] != normalized_shape or input.ndim < nd:
        raise ValueError(f"{op}: normalized_shape {normalized_shape} must be non-empty and equal the last "
                         f"dimensions of the input, got input of shape {input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != normalized_shape:
            raise ValueError(f"{op}: {name} must have shape {normalized_shape}, got {tuple(t.shape)}")
    inputs = [input] + [t for t in (weight, bias) if t is not None]
    return LayerNorm.apply(*inputs, ndim=nd, has_weight=weight is not None, has_bias=bias is not None,
                           eps=float(eps))
