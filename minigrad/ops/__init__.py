"""The op library: one module per family, each op a Function with forward and backward
side by side.  This file gathers the functional forms and attaches them to Tensor as
methods and operators, so ``x.exp()``, ``x + y`` and ``ops.exp(x)`` are the same call.
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

# -- operators ------------------------------------------------------------------------------
Tensor.__add__, Tensor.__radd__ = add, radd
Tensor.__sub__, Tensor.__rsub__ = sub, rsub
Tensor.__mul__, Tensor.__rmul__ = mul, rmul
Tensor.__truediv__, Tensor.__rtruediv__ = div, rdiv
Tensor.__neg__ = neg
Tensor.__pow__, Tensor.__rpow__ = pow, rpow
Tensor.__abs__ = abs
Tensor.__floordiv__, Tensor.__rfloordiv__ = floor_divide, rfloordiv
Tensor.__and__ = Tensor.__rand__ = bitwise_and
Tensor.__or__ = Tensor.__ror__ = bitwise_or
Tensor.__xor__ = Tensor.__rxor__ = bitwise_xor
Tensor.__invert__ = bitwise_not
Tensor.__eq__, Tensor.__ne__ = eq, ne
Tensor.__lt__, Tensor.__le__, Tensor.__gt__, Tensor.__ge__ = lt, le, gt, ge
Tensor.__hash__ = lambda self: id(self)  # defining __eq__ removes the default hash

# -- methods --------------------------------------------------------------------------------
for _name in ("add", "sub", "mul", "div", "floor_divide", "neg", "pow", "exp", "log", "log1p", "sqrt", "abs", "sign",
              "sin", "cos", "clip", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
              "sum", "mean", "reshape", "view", "expand", "broadcast_to", "sum_to"):
    setattr(Tensor, _name, globals()[_name])
Tensor.clamp = clip
Tensor.where = lambda self, cond, other: where(cond, self, other)

# -- shape methods (minigrad/ops/shape.py) ---------------------------------------------------
for _name in ("flatten", "squeeze", "unsqueeze", "transpose", "permute", "split", "chunk", "tril", "triu"):
    setattr(Tensor, _name, globals()[_name])
Tensor.__getitem__ = getitem
Tensor.swapaxes = transpose
Tensor.T = property(_T)

# -- reduction, matmul and activation methods (reduce.py, matmul.py, activation.py) ---------
for _name in ("var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "logsumexp", "matmul",
              "clone", "gather", "isclose", "allclose", "equal",
              "relu", "sigmoid", "tanh", "softmax", "log_softmax"):
    setattr(Tensor, _name, globals()[_name])
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, rmatmul

# -- in-place methods (tensor.py: Tensor._inplace) ------------------------------------------------
# x.mul_(y) stores mul(x, y) in x's memory; while gradients are recorded the write goes on the
# tape.  needs_old: the op's backward reads its input's values, which the write overwrites.


def _inplace_method(name, fn, needs_old):
    def method(self, *args, **kwargs):
        return self._inplace(name, lambda t: fn(t, *args, **kwargs), args + tuple(kwargs.values()),
                             needs_old)

    method.__name__ = name
    method.__doc__ = f"In place: ``x.{name}(...)`` stores ``{fn.__name__}(x, ...)`` in x's memory."
    return method


def _add_scaled(x, other, alpha=1):
    return add(x, other if alpha == 1 else other * alpha)


def _sub_scaled(x, other, alpha=1):
    return sub(x, other if alpha == 1 else other * alpha)


for _name, _fn, _needs_old in (
        ("add_", _add_scaled, False), ("sub_", _sub_scaled, False), ("mul_", mul, True),
        ("div_", div, True), ("pow_", pow, True), ("neg_", neg, False), ("exp_", exp, False),
        ("log_", log, True), ("sqrt_", sqrt, False), ("abs_", abs, True), ("sin_", sin, True),
        ("cos_", cos, True), ("clamp_", clip, False), ("clip_", clip, False), ("relu_", relu, False),
        ("sigmoid_", sigmoid, False), ("tanh_", tanh, False), ("masked_fill_", masked_fill, False)):
    setattr(Tensor, _name, _inplace_method(_name, _fn, _needs_old))
for _name, _fn, _needs_old in (
        ("leaky_relu_", leaky_relu, True), ("silu_", silu, True), ("floor_", floor, False),
        ("ceil_", ceil, False), ("round_", round, False), ("trunc_", trunc, False),
        ("addcmul_", addcmul, False), ("addcdiv_", addcdiv, False)):
    setattr(Tensor, _name, _inplace_method(_name, _fn, _needs_old))
Tensor.__iadd__, Tensor.__isub__ = Tensor.add_, Tensor.sub_
Tensor.__imul__, Tensor.__itruediv__ = Tensor.mul_, Tensor.div_
Tensor.masked_fill = masked_fill


# -- more methods, under PyTorch's names ------------------------------------------------------------
for _name in ("all", "any", "cumsum", "norm", "mm", "bmm", "contiguous", "expand_as", "view_as",
              "index_select", "repeat", "argsort", "sort", "topk", "floor", "ceil", "round", "trunc",
              "addcmul", "addcdiv", "multinomial"):
    setattr(Tensor, _name, globals()[_name])
Tensor.is_contiguous = lambda self: bool(self.array.flags.c_contiguous)
Tensor.type_as = lambda self, other: self.to(device=other.device, dtype=other.dtype)
Tensor.type_as.__doc__ = "This tensor converted to ``other``'s dtype and device."
