"""Fused parameter updates: one pass over memory per parameter instead of ~10 NumPy calls.

Each update exists twice with identical math: a numba kernel (used on the CPU for contiguous
float arrays while numba is enabled) and an array-module version written with in-place ``out=``
NumPy/CuPy calls (the GPU, non-contiguous arrays, ``MINIGRAD_DISABLE_NUMBA=1``).
Scalars are converted to the parameter dtype first so float32 stays float32 (SIMD) and the
two paths round the same way.
"""
import numpy as np

from .. import backend

try:
    from numba import njit
except Exception:  # numba is a dependency, but the NumPy path must work without it
    njit = None


def _use_numba(*arrays):
    if njit is None or not backend.numba_enabled():
        return False
    for a in arrays:
        if type(a) is not np.ndarray or not a.flags.c_contiguous:
            return False
    return True


# -- SGD ---------------------------------------------------------------------------------------

if njit is not None:

    @njit(cache=True, error_model="numpy")
    def _sgd_nb(x, g, buf, lr, wd, momentum, undamped, nesterov, first):
        for i in range(x.size):
            d = g[i]
            if wd != 0:
                d = d + wd * x[i]
            if momentum != 0:
                if first:
                    b = d
                else:
                    b = momentum * buf[i] + undamped * d
                buf[i] = b
                if nesterov:
                    d = d + momentum * b
                else:
                    d = b
            x[i] = x[i] - lr * d

    @njit(cache=True, error_model="numpy")
    def _adam_nb(x, g, m, v, vmax, step_size, b1, c1, b2, c2, eps, inv_sqrt_bc2, wd, decay, amsgrad):
        # c1 = 1 - b1 and c2 = 1 - b2 come in already in the array dtype (no float64 promotion)
        for i in range(x.size):
            gi = g[i]
            if wd != 0:
                gi = gi + wd * x[i]
            xi = x[i] * decay
            mi = b1 * m[i] + c1 * gi
            vi = b2 * v[i] + c2 * gi * gi
            m[i] = mi
            v[i] = vi
            if amsgrad:
                if vmax[i] > vi:
                    vi = vmax[i]
                vmax[i] = vi
            x[i] = xi - step_size * (mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps))


def sgd_update(x, g, buf, lr, wd, momentum, dampening, nesterov, first):
    """x <- x - lr * d, with d = g + wd x, and with momentum
    buf <- d (first step) or momentum buf + (1 - dampening) d;  d <- buf  (or d + momentum buf, nesterov)."""
    t = x.dtype.type
    if _use_numba(x, g) and (buf is None or _use_numba(buf)):
        _sgd_nb(x.reshape(-1), g.reshape(-1), x.reshape(-1) if buf is None else buf.reshape(-1),
                t(lr), t(wd), t(momentum), t(1 - dampening), nesterov, first)
        return
    xp = backend.array_module(x)
    d = g
    if wd != 0:
        d = xp.multiply(x, t(wd))
        d += g
    if momentum != 0:
        if first:
            buf[...] = d
        else:
            buf *= t(momentum)
            if dampening == 0:
                buf += d
            else:
                buf += t(1 - dampening) * d
        if nesterov:
            d = d + t(momentum) * buf
        else:
            d = buf
    if d is g or d is buf:
        d = xp.multiply(d, t(lr))
    else:
        d *= t(lr)
    x -= d


def adam_update(x, g, m, v, vmax, lr, b1, b2, eps, step, wd, decoupled):
    """Adam / AdamW (see docs/optim.md):
    AdamW first decays x <- x (1 - lr wd); Adam adds wd x to the gradient (L2) instead.
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  (amsgrad: vmax <- max(vmax, v), used for v)
    x <- x - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""
    t = x.dtype.type
    bc1 = 1 - b1 ** step
    bc2 = 1 - b2 ** step
    step_size = lr / bc1
    inv_sqrt_bc2 = 1 / bc2 ** 0.5
    decay = 1 - lr * wd if decoupled else 1.0
    l2 = 0.0 if decoupled else wd
    amsgrad = vmax is not None
    if _use_numba(x, g, m, v) and (not amsgrad or _use_numba(vmax)):
        _adam_nb(x.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                 vmax.reshape(-1) if amsgrad else m.reshape(-1),
                 t(step_size), t(b1), t(1 - b1), t(b2), t(1 - b2), t(eps), t(inv_sqrt_bc2), t(l2), t(decay), amsgrad)
        return
    xp = backend.array_module(x)
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
    if amsgrad:
        xp.maximum(vmax, v, out=vmax)
    xp.sqrt(vmax if amsgrad else v, out=tmp)
    tmp *= t(inv_sqrt_bc2)
    tmp += t(eps)
    xp.divide(m, tmp, out=tmp)
    tmp *= t(step_size)
    x -= tmp
