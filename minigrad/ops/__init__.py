"""The op library: one module per family, each op a Function with forward and backward
side by side.  This file gathers the functional forms and attaches them to Tensor as
methods and operators, so ``x.exp()``, ``x + y`` and ``ops.exp(x)`` are the same call.
"""
from ..autograd import REGISTRY, Function  # noqa: F401
from ..tensor import Tensor
from .elementwise import (  # noqa: F401
    abs, add, astype, clip, cos, div, eq, exp, ge, gt, le, lift, log, lt, maximum, minimum,
    mul, ne, neg, pow, radd, rdiv, rmul, rpow, rsub, sign, sin, sqrt, sub, to_device, where,
)
from .reduce import (  # noqa: F401
    argmax, argmin, logsumexp, max, mean, min, normalize_axis, sum, var,
)
from .matmul import linear, matmul, rmatmul  # noqa: F401
from .activation import (  # noqa: F401
    gelu, leaky_relu, log_softmax, relu, sigmoid, silu, softmax, tanh,
)
from .shape import broadcast_to, expand, reshape, sum_to, view  # noqa: F401
from .conv import conv2d  # noqa: F401
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from .norm import batch_norm, layer_norm  # noqa: F401
from .loss import (  # noqa: F401
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
)
from .shape import (  # noqa: F401
    _T, cat, concatenate, flatten, getitem, pad, permute, split, squeeze, stack, transpose,
    unsqueeze,
)

# -- operators ------------------------------------------------------------------------------
Tensor.__add__, Tensor.__radd__ = add, radd
Tensor.__sub__, Tensor.__rsub__ = sub, rsub
Tensor.__mul__, Tensor.__rmul__ = mul, rmul
Tensor.__truediv__, Tensor.__rtruediv__ = div, rdiv
Tensor.__neg__ = neg
Tensor.__pow__, Tensor.__rpow__ = pow, rpow
Tensor.__abs__ = abs
Tensor.__eq__, Tensor.__ne__ = eq, ne
Tensor.__lt__, Tensor.__le__, Tensor.__gt__, Tensor.__ge__ = lt, le, gt, ge
Tensor.__hash__ = lambda self: id(self)  # defining __eq__ removes the default hash

# -- methods --------------------------------------------------------------------------------
for _name in ("add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "sign",
              "sin", "cos", "clip", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
              "sum", "mean", "reshape", "view", "expand", "broadcast_to", "sum_to"):
    setattr(Tensor, _name, globals()[_name])
Tensor.clamp = clip
Tensor.where = lambda self, cond, other: where(cond, self, other)

# -- shape methods (minigrad/ops/shape.py) ---------------------------------------------------
for _name in ("flatten", "squeeze", "unsqueeze", "transpose", "permute", "split"):
    setattr(Tensor, _name, globals()[_name])
Tensor.__getitem__ = getitem
Tensor.swapaxes = transpose
Tensor.T = property(_T)

# -- reduction, matmul and activation methods (reduce.py, matmul.py, activation.py) ---------
for _name in ("var", "max", "min", "argmax", "argmin", "logsumexp", "matmul",
              "relu", "sigmoid", "tanh", "softmax", "log_softmax"):
    setattr(Tensor, _name, globals()[_name])
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, rmatmul
