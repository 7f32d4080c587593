"""Multi-head attention (PyTorch's nn.MultiheadAttention), built on the fused
``F.scaled_dot_product_attention`` op (minigrad/ops/attention.py).

With E = embed_dim split into H heads of size d = E / H:

    Q = query W_q^T + b_q,   K = key W_k^T + b_k,   V = value W_v^T + b_v     (each E wide)
    head h:   O_h = softmax(Q_h K_h^T / sqrt(d) + mask) V_h                  (columns h*d ... h*d + d)
    out = [O_1 | ... | O_H] W_o^T + b_o
"""
import numbers

import numpy as np

from .. import backend
from ..ops import attention_weights, linear, matmul, scaled_dot_product_attention
from ..tensor import Tensor
from . import init
from .functional import dropout
from .layers import Linear, _empty
from .module import Module
from .parameter import Parameter


class MultiheadAttention(Module):
    """Attention from ``query`` positions to ``key``/``value`` positions with ``num_heads``
    heads (PyTorch's arguments and parameter names: in_proj_weight (3E, E), in_proj_bias (3E,),
    out_proj; q/k/v_proj_weight when kdim or vdim differ from embed_dim).

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False) -> (output, weights or None)

    Shapes: (L, N, E) for the query and (S, N, kdim / vdim) for key / value, or (N, L, E) ...
    with ``batch_first=True``, or unbatched (L, E).  As in PyTorch, a bool ``attn_mask``
    ((L, S) or (N*H, L, S)) and ``key_padding_mask`` ((N, S)) are True where attention is NOT
    allowed (the opposite of F.scaled_dot_product_attention's bool mask); float masks are
    added to the scores.  ``is_causal=True`` makes position i attend to positions j <= i;
    unlike PyTorch (where it is only a hint about attn_mask) it needs no attn_mask.
    need_weights=False takes the fused path (the attention weights are never formed);
    need_weights=True also returns them, averaged over the heads unless
    average_attn_weights=False.  ``dropout`` acts on the attention weights in training.
    (PyTorch's add_bias_kv and add_zero_attn are not implemented.)"""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, kdim=None, vdim=None, batch_first=False,
                 device=None, dtype=None):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"MultiheadAttention: {name} must be a positive integer, got {value!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout!r}")
        self.embed_dim, self.num_heads, self.dropout = int(embed_dim), int(num_heads), float(dropout)
        self.head_dim = self.embed_dim // self.num_heads
        self.kdim = self.embed_dim if kdim is None else int(kdim)
        self.vdim = self.embed_dim if vdim is None else int(vdim)
        self.batch_first = bool(batch_first)
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(_empty((3 * e, e), device, dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(_empty((e, e), device, dtype))
            self.k_proj_weight = Parameter(_empty((e, self.kdim), device, dtype))
            self.v_proj_weight = Parameter(_empty((e, self.vdim), device, dtype))
        if bias:
            self.in_proj_bias = Parameter(_empty((3 * e,), device, dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's initialisation: Xavier-uniform projections, zero biases."""
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if w is not None:
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    # -- forward ----------------------------------------------------------------------------
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be 3-D (batched) or 2-D "
                             f"(unbatched), got shapes {query.shape}, {key.shape}, {value.shape}")
        self_attention = query is key and key is value
        if not batched:  # one sequence: a batch of one
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        self._check_shapes(query, key, value)
        n, tq, tk = query.shape[0], query.shape[1], key.shape[1]
        q, k, v = self._project(query, key, value, self_attention)
        mask = self._mask(attn_mask, key_padding_mask, query, n, tq, tk, batched)
        causal = bool(is_causal)
        if causal and mask is not None:  # the fused op takes one or the other: fold the triangle in
            xp = backend.array_module(mask)
            mask = mask + xp.where(xp.tri(tq, tk, dtype=bool), 0, -np.inf).astype(mask.dtype)
            causal = False
        mask_t = None if mask is None else Tensor._wrap(mask)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            weights = attention_weights(q, k, mask_t, is_causal=causal)
            out = matmul(dropout(weights, p, self.training), v)
            if average_attn_weights:
                weights = weights.mean(axis=1)
            if not batched:
                weights = weights.squeeze(0)
        else:
            out = scaled_dot_product_attention(q, k, v, attn_mask=mask_t, dropout_p=p, is_causal=causal)
        out = self.out_proj(out.transpose(1, 2).reshape(n, tq, self.embed_dim))
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _check_shapes(self, query, key, value):
        """Batch-first (N, L, E) query, (N, S, kdim) key, (N, S, vdim) value."""
        ok = (query.shape[-1] == self.embed_dim and key.shape[-1] == self.kdim and value.shape[-1] == self.vdim
              and query.shape[0] == key.shape[0] == value.shape[0] and key.shape[1] == value.shape[1])
        if not ok:
            raise ValueError(
                f"MultiheadAttention(embed_dim={self.embed_dim}, kdim={self.kdim}, vdim={self.vdim}): query, key "
                f"and value of shapes {query.shape}, {key.shape}, {value.shape} (batch first) do not fit: the last "
                "dimensions must be embed_dim, kdim and vdim, key and value one length, one batch size")

    def _project(self, query, key, value, self_attention):
        """(Q, K, V), each (N, H, T, d): for self-attention one matrix product whose (N, T, 3E)
        result is viewed as (3, N, H, T, d) (no copies), else one product per input with its
        slice of the weights."""
        e, h, d = self.embed_dim, self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        if w is not None and self_attention:
            n, length = query.shape[:2]
            qkv = linear(query, w, b).reshape(n, length, 3, h, d).permute(2, 0, 3, 1, 4)
            return qkv[0], qkv[1], qkv[2]
        ws = (w[:e], w[e:2 * e], w[2 * e:]) if w is not None else (self.q_proj_weight, self.k_proj_weight,
                                                                       self.v_proj_weight)
        bs = (None,) * 3 if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        return tuple(linear(t, wi, bi).reshape(t.shape[0], t.shape[1], h, d).transpose(1, 2)
                     for t, wi, bi in zip((query, key, value), ws, bs))

    def _mask(self, attn_mask, key_padding_mask, query, n, tq, tk, batched):
        """attn_mask and key_padding_mask as one additive NumPy/CuPy array broadcastable to
        (N, H, L, S) (bool True -> -inf), or None."""
        h = self.num_heads
        total = None
        for name, m, shapes in (
                ("attn_mask", attn_mask, {(tq, tk): (1, 1, tq, tk), (n * h, tq, tk): (n, h, tq, tk)}),
                ("key_padding_mask", key_padding_mask, {(n, tk) if batched else (tk,): (n, 1, 1, tk)})):
            if m is None:
                continue
            if not isinstance(m, Tensor) or m.dtype.kind not in "bf":
                raise TypeError(f"MultiheadAttention: {name} must be a bool or floating Tensor, got "
                                f"{getattr(m, 'dtype', type(m).__name__)}")
            if tuple(m.shape) not in shapes:
                raise ValueError(f"MultiheadAttention: {name} of shape {m.shape} should have one of the shapes "
                                 f"{sorted(shapes)} (L={tq}, S={tk}, N={n}, num_heads={h})")
            xp = backend.array_module(m.array)
            dtype = query.dtype
            a = xp.where(m.array, dtype.type(-np.inf), dtype.type(0)) if m.dtype == bool else m.array.astype(dtype)
            a = a.reshape(shapes[tuple(m.shape)])
            total = a if total is None else total + a
        return total
