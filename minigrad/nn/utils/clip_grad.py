"""Gradient clipping (PyTorch's ``torch.nn.utils.clip_grad``): clip gradients before ``optimizer.step()``.

    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
"""
import math

import numpy as np

from ... import backend
from ...tensor import Tensor


def _with_grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    total = (sum_p ||g_p||^q)^(1/q) over every parameter's gradient (q = ``norm_type``; inf:
    the largest |g|); if total > max_norm every g is multiplied by max_norm / (total + 1e-6).
    Returns the total norm (before clipping) as a 0-d tensor.  A NaN or inf total raises with
    ``error_if_nonfinite=True``; otherwise the gradients are scaled by it and become NaN, so the
    problem stays visible (the NaN policy of docs/autograd.md)."""
    params = _with_grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not params:
        return Tensor(np.zeros((), dtype=backend.get_default_dtype()))
    devices = {p.grad.device for p in params}
    if len(devices) > 1:
        raise RuntimeError(f"clip_grad_norm_: gradients are on several devices ({sorted(map(str, devices))})")
    xp = backend.array_module(params[0].grad.array)
    grads = [p.grad.array for p in params]
    if norm_type == math.inf:
        norms = [xp.abs(g).max() if g.size else xp.zeros((), g.dtype) for g in grads]
        total = xp.stack([n.astype(np.float64) for n in norms]).max()
    elif norm_type == 2.0:  # the usual case: one kernel per gradient, float64 sums
        sum_of_squares = backend.kernels(grads[0]).sum_of_squares
        total = sum(sum_of_squares(g) for g in grads) ** 0.5
    else:
        total = sum(xp.sum(xp.abs(g.astype(np.float64)) ** norm_type) for g in grads) ** (1.0 / norm_type)
    total = xp.asarray(total, dtype=np.float64)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           f"{float(total)}; pass error_if_nonfinite=False to scale them anyway")
    coef = max_norm / (total + 1e-6)
    # clamp at 1: never scale up.  On the GPU this stays on the device (no host sync).
    coef = xp.minimum(coef, 1.0)
    for g in grads:
        g *= coef.astype(g.dtype)
    return Tensor._wrap(total.astype(params[0].grad.dtype))


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for p in _with_grads(parameters):
        xp = backend.array_module(p.grad.array)
        xp.clip(p.grad.array, -clip_value, clip_value, out=p.grad.array)
