"""Scaled dot-product attention, softmax(Q K^T * scale + mask) V, as ONE op whose backward
is derived by hand (docs/derivations/attention.md), not replayed from matmul and softmax
records: the (Tq, Tk) matrix of attention weights is never kept for backward, only the
row log-sum-exps.

Shapes follow PyTorch's ``F.scaled_dot_product_attention``: q (..., Tq, D), k (..., Tk, D),
v (..., Tk, Dv) -> (..., Tq, Dv).  The leading (batch, head) dimensions broadcast, and so does
``attn_mask`` against (..., Tq, Tk).  The kernels (``attention_forward`` /
``attention_backward`` of the table) see B = prod(leading dims) independent problems:
q (B, Tq, D), k (B, Tk, D), v (B, Tk, Dv), and an additive mask (Bm, Tqm, Tkm) whose sides
are 1 (broadcast) or full.
"""
import math
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor
from .activation import softmax
from .elementwise import astype, where
from .matmul import matmul
from .reduce import sum
from .shape import reshape, transpose


def _as_batch(a, batch):
    """An array (..., m, n) as (B, m, n) over the broadcast batch shape: a view unless the
    array really is broadcast (then NumPy copies)."""
    if a.shape[:-2] != batch:
        a = backend.array_module(a).broadcast_to(a, batch + a.shape[-2:])
    return a.reshape((-1,) + a.shape[-2:])


def _mask_as_batch(mask, batch):
    """The additive mask as the kernels take it: (1, ., .) when it is the same for every
    batch entry (no copy), else (B, ., .)."""
    if mask is None:
        return None
    if all(n == 1 for n in mask.shape[:-2]):
        return mask.reshape((1,) + mask.shape[-2:])
    return _as_batch(mask, batch)


def _causal(xp, tq, tk, dtype):
    """0 on and below the diagonal, -inf above it (PyTorch's top-left aligned triangle)."""
    return xp.where(xp.tri(tq, tk, dtype=bool), dtype.type(0), dtype.type(-np.inf))


@register
class ScaledDotProductAttention(Function):
    """Per (batch, head), with Q (Tq, D), K (Tk, D), V (Tk, Dv) and an additive mask A
    (-inf where attention is not allowed; is_causal: above the diagonal):

        S = scale Q K^T + A
        P = softmax(S) row-wise          lse_i = log sum_j exp S_ij is kept, P is not
        O = (P * M) V                    M: dropout multipliers (0 or 1/(1-p)), else 1

    Backward (g = dL/dO), P rebuilt as exp(S - lse):

        dV = (P * M)^T g
        dP = (g V^T) * M
        dS = P * (dP - D),   D_i = sum_j P_ij dP_ij = sum_d g_id O_id
        dQ = scale dS K,     dK = scale dS^T Q

    A row masked everywhere attends to nothing (O = 0, no gradient), as in PyTorch.
    backward runs these formulas as minigrad ops, with P recomputed from Q and K on the tape,
    so second derivatives are exact (gradgradcheck covers it); fused_backward is the kernel
    (attention_backward) the engine runs when the gradient is not recorded."""

    saves_output = True

    def forward(self, q, k, v, mask, is_causal, scale, dropout_p):
        batch = q.shape[:-2]
        if k.shape[:-2] != batch or v.shape[:-2] != batch or mask is not None:  # (the common case is quick)
            batch = np.broadcast_shapes(batch, k.shape[:-2], v.shape[:-2], () if mask is None else mask.shape[:-2])
        self.batch, self.is_causal, self.scale, self.dropout_p = batch, is_causal, scale, dropout_p
        self.mask = _mask_as_batch(mask, batch)
        q3, k3, v3 = (_as_batch(a, batch) for a in (q, k, v))
        self.seed, self.offset = (backend.philox_seed_offset(q3.shape[0] * q3.shape[1] * k3.shape[1])
                                  if dropout_p else (0, 0))
        out, self.lse = backend.kernels(q).attention_forward(
            q3, k3, v3, self.mask, is_causal, scale, dropout_p, self.seed, self.offset)
        return out.reshape(batch + out.shape[1:])

    def fused_backward(self, g):
        q, k, v = self.inputs
        out = self.saved_output.array
        args = [_as_batch(a, self.batch) for a in (g.array, q.array, k.array, v.array, out)]
        grads = backend.kernels(g.array).attention_backward(
            *args, self.lse, self.mask, self.is_causal, self.scale, self.dropout_p, self.seed, self.offset)
        return tuple(Tensor._wrap(d.reshape(self.batch + d.shape[1:])) if t.requires_grad else None
                     for d, t in zip(grads, (q, k, v)))

    def backward(self, g):
        """(The engine sums each gradient back over the batch dimensions its input was
        broadcast along.)"""
        q, k, v = self.inputs
        tq, tk = q.shape[-2], k.shape[-2]
        mask = None if self.mask is None else _unbatch(self.mask, self.batch)
        if self.is_causal:
            causal = _causal(backend.array_module(g.array), tq, tk, g.dtype)
            mask = causal if mask is None else mask + causal
        p = _weights(q, k, mask, self.scale)
        keep = None
        if self.dropout_p:
            keep = backend.kernels(g.array).dropout_mask(
                (math.prod(self.batch), tq, tk), self.dropout_p, self.seed, self.offset, g.dtype)
            keep = Tensor._wrap(backend.array_module(g.array).asarray(keep).reshape(self.batch + (tq, tk)))
        dp = matmul(g, transpose(v, -1, -2))
        if keep is not None:
            dp = dp * keep
        ds = p * (dp - sum(p * dp, axis=-1, keepdims=True)) * self.scale
        dv = matmul(transpose(p if keep is None else p * keep, -1, -2), g)
        return matmul(ds, k), matmul(transpose(ds, -1, -2), q), dv


def _unbatch(mask, batch):
    """The kernels' (1 or B, ., .) mask back in the broadcast batch shape."""
    return mask[0] if mask.shape[0] == 1 else mask.reshape(batch + mask.shape[1:])


def _weights(q, k, mask, scale):
    """P = softmax(scale q k^T + mask) with minigrad ops (on the tape); ``mask`` an additive
    array or None.  Rows the mask closes everywhere get P = 0 (not softmax's NaN)."""
    s = matmul(q, transpose(k, -1, -2)) * scale
    if mask is None:
        return softmax(s, -1)
    xp = backend.array_module(mask)
    s = s + Tensor._wrap(mask)
    # (always the guarded form: asking whether every row is open would make the host wait for
    # a GPU; where all are, it gives softmax(s) and its gradient exactly)
    open_rows = (mask > -np.inf).any(axis=-1, keepdims=True)
    open_rows = Tensor._wrap(xp.broadcast_to(open_rows, s.shape))
    zero = Tensor._wrap(xp.zeros((), dtype=s.dtype))
    return where(open_rows, softmax(where(open_rows, s, zero), -1), zero)


# -- the functional forms -----------------------------------------------------------------


def _additive_mask(op, attn_mask, query, target):
    """attn_mask as an additive tensor of query's dtype (bool: True = may attend -> 0,
    False -> -inf), checked to broadcast to ``target`` (..., Tq, Tk); None stays None.
    A floating mask of query's dtype stays the caller's memory (a view sharing its version
    counter), so the engine refuses a backward after the mask was edited in place."""
    if attn_mask is None:
        return None
    if not isinstance(attn_mask, Tensor):
        raise TypeError(f"{op}: attn_mask must be a Tensor (bool or floating) or None, got {type(attn_mask).__name__}")
    if attn_mask.requires_grad:
        raise ValueError(f"{op}: attn_mask requires grad, but the mask is a constant here (no gradient "
                         "reaches it); pass attn_mask.detach() if that is what you want")
    if attn_mask.device != query.device:
        raise RuntimeError(f"{op}: attn_mask is on {attn_mask.device} but query is on {query.device}")
    m = attn_mask.array
    if m.dtype.kind not in "bf":
        raise TypeError(f"{op}: attn_mask must be bool or floating, got dtype {m.dtype}")
    try:  # the last two sides must fit (Tq, Tk); leading ones broadcast with the batch
        if np.broadcast_shapes(m.shape[-2:], target[-2:]) != target[-2:]:
            raise ValueError
        np.broadcast_shapes(m.shape, target)
    except ValueError:
        raise ValueError(f"{op}: attn_mask of shape {tuple(m.shape)} does not broadcast to the attention "
                         f"scores' shape {target} (..., Tq, Tk)") from None
    xp = backend.array_module(m)
    dtype = query.dtype
    if m.dtype == bool:
        mask = Tensor._wrap(xp.where(m, dtype.type(0), dtype.type(-np.inf)))  # (a new array)
    else:
        mask = attn_mask.detach() if m.dtype == dtype else astype(attn_mask.detach(), dtype)
    return reshape(mask, (1,) * (2 - m.ndim) + m.shape) if m.ndim < 2 else mask


def _check_qkv(op, query, key, value):
    """Validate shapes/dtypes; return the broadcast shape of the scores (..., Tq, Tk)."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} must have at least 2 dimensions (..., T, features), got shape {t.shape}")
    qs, ks, vs = query.shape, key.shape, value.shape
    if not (query.dtype == key.dtype == value.dtype) or query.dtype.kind != "f":
        raise TypeError(f"{op}: query, key and value must share one floating dtype, got "
                        f"{query.dtype}, {key.dtype}, {value.dtype}")
    problem = None
    if qs[-1] != ks[-1]:
        problem = "query and key must have the same last dimension (D)"
    elif ks[-2] != vs[-2]:
        problem = "key and value must have the same length (Tk, dimension -2)"
    batch = qs[:-2]
    if problem is None and not (ks[:-2] == vs[:-2] == batch):  # (equal batches: no broadcasting to check)
        try:
            batch = np.broadcast_shapes(batch, ks[:-2], vs[:-2])
        except ValueError:
            problem = "the batch dimensions (all but the last two) do not broadcast"
    if problem:
        raise ValueError(f"{op}: {problem}: query {qs}, key {ks}, value {vs}")
    return batch + (qs[-2], ks[-2])


def _scale(op, scale, query):
    if scale is None:
        return 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"{op}: scale must be a number or None, got {scale!r}")
    return float(scale)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """softmax(query key^T * scale + mask) value, fused (PyTorch's F.scaled_dot_product_attention).

    query (..., Tq, D), key (..., Tk, D), value (..., Tk, Dv) -> (..., Tq, Dv); leading
    dimensions broadcast.  ``attn_mask``: bool (True = may attend) or floating (added to the
    scores), broadcastable to (..., Tq, Tk), a constant.  ``is_causal``: position i attends to
    positions j <= i (not together with attn_mask, as in PyTorch).  ``dropout_p``: dropout on
    the attention weights (always applied when > 0, as in PyTorch: pass 0.0 in evaluation).
    ``scale`` defaults to 1/sqrt(D)."""
    op = "scaled_dot_product_attention"
    target = _check_qkv(op, query, key, value)
    if attn_mask is not None and is_causal:
        raise ValueError(f"{op}: attn_mask and is_causal=True cannot be used together (as in PyTorch); "
                         "fold the causal triangle into the mask instead")
    if dropout_p != 0 and (isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) or not 0.0 < dropout_p <= 1.0):
        raise ValueError(f"{op}: dropout_p must be a number in [0, 1], got {dropout_p!r}")
    mask = _additive_mask(op, attn_mask, query, target)
    return ScaledDotProductAttention.apply(query, key, value, mask=mask, is_causal=bool(is_causal),
                                           scale=_scale(op, scale, query), dropout_p=float(dropout_p))


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None):
    """The attention weights softmax(query key^T * scale + mask), (..., Tq, Tk), as ordinary
    differentiable ops (what MultiheadAttention returns with need_weights=True).  Arguments
    as for scaled_dot_product_attention."""
    op = "attention_weights"
    target = _check_qkv(op, query, key, key)
    mask = _additive_mask(op, attn_mask, query, target)
    mask = None if mask is None else mask.array  # (no backward reads it: the softmax keeps its output)
    if is_causal:
        causal = _causal(backend.array_module(query.array), target[-2], target[-1], query.dtype)
        mask = causal if mask is None else mask + causal
    return _weights(query, key, mask, _scale(op, scale, query))
