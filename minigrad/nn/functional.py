"""The functional interface (PyTorch's ``torch.nn.functional``, imported as ``F``): every layer
and loss as a plain function of tensors.  Most are the ops themselves; ``dropout`` is here.
"""
from .. import backend
from .._arguments import check_probability
from ..ops import (  # noqa: F401  (re-exported: F.relu, F.cross_entropy, ...)
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, flatten, gelu,
    linear, log_softmax, mse_loss, nll_loss, sigmoid, softmax, tanh,
)
from ..ops.dropout import DropoutMask
from ..tensor import Tensor
from ..ops import (  # noqa: F401,E402  (convolution, pooling, normalization)
    adaptive_avg_pool2d, avg_pool2d, batch_norm, conv2d, layer_norm, max_pool2d, one_hot,
)
from ..ops.shape import functional_pad as pad  # noqa: F401,E402  (PyTorch's convention)
from ..ops import embedding, scaled_dot_product_attention  # noqa: F401,E402  (Transformers)
from ..ops import conv1d, group_norm, interpolate  # noqa: F401,E402
from ..ops import clamp as _clamp, norm as _norm
from ..ops import leaky_relu as _leaky_relu, relu as _relu, silu as _silu
from ..ops.interpolate import upsample  # noqa: F401,E402


# -- activations with PyTorch's ``inplace`` flag ------------------------------------------------
# inplace=True writes the result into x's memory (x.relu_()): recorded on the tape like any
# in-place op, so the gradient is right, and the engine raises if a value some backward still
# needs is overwritten (as PyTorch does).


def relu(x, inplace=False):
    """max(x, 0); ``inplace=True`` overwrites x (``x.relu_()``)."""
    return x.relu_() if inplace else _relu(x)


def leaky_relu(x, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope * x; ``inplace=True`` overwrites x."""
    return x.leaky_relu_(negative_slope) if inplace else _leaky_relu(x, negative_slope)


def silu(x, inplace=False):
    """x * sigmoid(x); ``inplace=True`` overwrites x."""
    return x.silu_() if inplace else _silu(x)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """x / max(||x||_p, eps) along ``dim``: unit vectors (PyTorch's F.normalize)."""
    return input / _clamp(_norm(input, p, dim, keepdim=True), min=eps)


def dropout(x, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) while
    ``training``; the identity otherwise (random numbers from the seeded generator).
    ``inplace=True`` writes the result into x."""
    check_probability(p)
    if not training or p == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating-point tensor, got dtype {x.dtype}")
    if inplace:
        if p == 1:
            return x.mul_(0.0)
        return x._inplace("dropout_", lambda t: DropoutMask.apply(t, p=float(p)))
    if p == 1:
        return x * 0.0
    return DropoutMask.apply(x, p=float(p))


def _channel_dropout(op, ranks, x, p, training, inplace):
    """Zero whole channels: dropout of a mask of ones of shape (N, C, 1, ...), broadcast over
    the positions, times x.  The gradient is g times the same mask."""
    check_probability(p, op)
    if x.ndim not in ranks:
        raise ValueError(f"{op}: expected a {' or '.join(f'{r}-D' for r in ranks)} input "
                         f"(N, C, ...), got shape {x.shape}")
    if not training or p == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {x.dtype}")
    xp = backend.array_module(x.array)
    keep = dropout(Tensor._wrap(xp.ones(x.shape[:2] + (1,) * (x.ndim - 2), dtype=x.dtype)), p)
    return x.mul_(keep) if inplace else x * keep


def dropout1d(x, p=0.5, training=True, inplace=False):
    """Channel dropout for (N, C, L): each channel of each sample is zeroed with probability
    p (the rest scaled by 1/(1-p)), all its positions together."""
    return _channel_dropout("dropout1d", (3,), x, p, training, inplace)


def dropout2d(x, p=0.5, training=True, inplace=False):
    """Channel dropout for (N, C, H, W) (a 3-D input is read as (N, C, L), as PyTorch does now)."""
    return _channel_dropout("dropout2d", (3, 4), x, p, training, inplace)


def dropout3d(x, p=0.5, training=True, inplace=False):
    """Channel dropout for (N, C, D, H, W)."""
    return _channel_dropout("dropout3d", (5,), x, p, training, inplace)
