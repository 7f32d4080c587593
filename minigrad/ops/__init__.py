"""The op library: one module per family, each op a Function with forward and backward
side by side.  This file gathers the functional forms; tensor.py attaches them to Tensor as
operators and methods (at its end), so ``x.exp()``, ``x + y`` and ``ops.exp(x)`` are the same call.
"""
from ..autograd import REGISTRY, Function  # noqa: F401
from ..tensor import Tensor
from .elementwise import (  # noqa: F401
    abs, add, allclose, astype, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, clip, clone, cos,
    div, eq, equal, exp, floor_divide, ge, gt, isclose, le, lift, log, log1p, lt, masked_fill, maximum, minimum,
    mul, ne, neg, one_hot, pow,
    promote_types, radd, rdiv, result_type, rfloordiv, rmul, rpow, rsub, sign, sin, sqrt, sub,
    to_device, where,
)
from .reduce import (  # noqa: F401
    amax, amin, argmax, argmin, logsumexp, max, mean, min, normalize_axis, std, sum, var,
)
from .matmul import linear, matmul, rmatmul  # noqa: F401
from .activation import (  # noqa: F401
    gelu, leaky_relu, log_softmax, relu, sigmoid, silu, softmax, tanh,
)
from .shape import broadcast_to, expand, index_put, reshape, sum_to, view  # noqa: F401
from .conv import conv2d  # noqa: F401
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from .norm import batch_norm, layer_norm  # noqa: F401
from .embedding import embedding  # noqa: F401
from .attention import attention_weights, scaled_dot_product_attention  # noqa: F401
from .rnn import gru_cell, lstm_cell, rnn_cell  # noqa: F401
from .loss import (  # noqa: F401
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
)
from .shape import (  # noqa: F401
    _T, cat, chunk, concatenate, flatten, gather, getitem, pad, permute, split, squeeze, stack,
    transpose, tril, triu, unsqueeze,
)
# -- the names PyTorch scripts reach for (tests/test_pytorch_scripts.py runs such scripts) --------
from .elementwise import addcdiv, addcmul, ceil, clamp, floor, round, trunc  # noqa: F401,E402
from .reduce import all, any, cumsum, norm  # noqa: F401,E402
from .matmul import bmm, einsum, mm  # noqa: F401,E402
from .shape import contiguous, expand_as, index_select, repeat, view_as  # noqa: F401,E402
from .sort import argsort, sort, topk  # noqa: F401,E402
from .conv import conv1d  # noqa: F401,E402
from .norm import group_norm  # noqa: F401,E402
from .interpolate import interpolate  # noqa: F401,E402
from ..tensor import linspace, multinomial, rand_like, randn_like, randperm  # noqa: F401,E402

# The public functional forms: ``from minigrad.ops import *`` and hence the top-level
# ``minigrad.exp``, ``minigrad.cat``, ... are exactly these (the rest above is internal: operator
# helpers, the submodules).  A new op is public once it is imported above and listed here.
__all__ = [
    # elementwise.py
    "abs", "add", "allclose", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "clip",
    "clone", "cos", "div", "eq", "equal", "exp", "floor_divide", "ge", "gt", "isclose", "le", "log", "log1p", "lt",
    "masked_fill", "maximum", "minimum", "mul", "ne", "neg", "one_hot", "pow", "promote_types",
    "result_type", "sign", "sin", "sqrt", "sub", "where",
    # reduce.py
    "amax", "amin", "argmax", "argmin", "logsumexp", "max", "mean", "min", "std", "sum", "var",
    # matmul.py, activation.py
    "linear", "matmul",
    "gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "silu", "softmax", "tanh",
    # shape.py
    "broadcast_to", "cat", "chunk", "concatenate", "expand", "flatten", "gather", "pad", "permute",
    "reshape", "split", "squeeze", "stack", "sum_to", "transpose", "tril", "triu", "unsqueeze", "view",
    # conv.py, pool.py, norm.py, embedding.py, attention.py, loss.py
    "conv2d", "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "batch_norm", "layer_norm",
    "embedding", "scaled_dot_product_attention",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "mse_loss",
    "nll_loss",
    # rounding, clamp, addcmul/addcdiv (elementwise.py); cumsum, norm, all, any (reduce.py);
    # mm, bmm, einsum (matmul.py); sort.py; index_select (shape.py); conv1d; group_norm
    "addcdiv", "addcmul", "ceil", "clamp", "floor", "round", "trunc",
    "all", "any", "cumsum", "norm", "bmm", "einsum", "mm",
    "argsort", "sort", "topk", "index_select", "conv1d", "group_norm",
]
