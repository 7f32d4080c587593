"""Elementwise ops: arithmetic, powers, exp/log, trigonometry, min/max, clip, where, comparisons.

Each op is a Function whose backward multiplies the incoming gradient ``g`` by the local
derivative.  Broadcasting is undone by the engine (``ops.shape.sum_to``), so a backward here
may return gradients of the broadcast shape.  Derivations: docs/derivations/elementwise.md.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor


def lift(value, like):
    """Turn a Python number or an array into a constant tensor that fits next to ``like``.

    A Python float next to a float32 tensor stays float32 (as in PyTorch and NumPy 2)."""
    if isinstance(value, Tensor):
        return value
    xp = backend.array_module(like.array)
    if isinstance(value, (numbers.Number, np.generic)):
        kind = like.dtype.kind
        if kind in "fc":
            dtype = like.dtype
        elif isinstance(value, (bool, np.bool_)):
            dtype = like.dtype
        elif isinstance(value, numbers.Integral):
            dtype = like.dtype if kind in "iu" else np.int64
        else:
            dtype = backend.get_default_dtype()
        return Tensor._wrap(xp.full((), value, dtype=dtype))  # made on the device: no upload (asarray would copy)
    return Tensor._wrap(xp.asarray(value))


def _binary_shape_check(name, x, y):
    try:
        return np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(
            f"{name}: shapes {x.shape} and {y.shape} cannot be broadcast together "
            "(trailing dimensions must be equal or 1)"
        ) from None


# -- dtype promotion: the one place that decides result dtypes (docs/differences.md) --------
#
# PyTorch's rules, in three functions every op goes through:
#   lift(value, like)    the dtype of a Python number next to a tensor (above);
#   result_type(x, y)    the dtype a binary op computes in;
#   floating(x)          the dtype a float op (exp, sigmoid, softmax, true division, mean
#                        pooling, ...) computes an integer or bool tensor in: the default dtype
#                        (get_default_dtype(), float32), never NumPy's float64.
# ``promote(x, y)`` casts two tensors (on the tape) to their result type.
#
# Kinds rank bool < integer < floating.  A dimensioned tensor decides the result dtype; a 0-d
# tensor or a Python number (``lift`` makes it a 0-d tensor) only matters when its kind is
# higher, so int_tensor * 0.5 is float32 (the default dtype, where NumPy gives float64),
# float32_tensor * float64_scalar_tensor stays float32, and int32 + int64 0-d stays int32.

_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def promote_types(a, b):
    """The dtype two tensors of dtypes a and b combine into: the higher kind wins (int32 and
    float16 give float16), within a kind the wider type (NumPy's rule there)."""
    a, b = np.dtype(a), np.dtype(b)
    if a == b:
        return a
    ra, rb = _KIND_RANK[a.kind], _KIND_RANK[b.kind]
    if ra != rb:
        return a if ra > rb else b
    return np.promote_types(a, b)


def result_type(x, y):
    """PyTorch's result dtype of a binary op on x and y: tensors (0-d ones count for less) or
    Python numbers (which count like 0-d tensors)."""
    if not isinstance(x, Tensor):
        x = lift(x, y) if isinstance(y, Tensor) else Tensor(x)
    if not isinstance(y, Tensor):
        y = lift(y, x)
    if x.dtype == y.dtype:
        return x.dtype
    if bool(x.ndim) != bool(y.ndim):
        big, small = (x.dtype, y.dtype) if x.ndim else (y.dtype, x.dtype)
        if _KIND_RANK[small.kind] <= _KIND_RANK[big.kind]:
            return big
    return promote_types(x.dtype, y.dtype)


def promote(x, y):
    """x and y cast (on the tape) to their result dtype."""
    dtype = result_type(x, y)
    return (x if x.dtype == dtype else astype(x, dtype)), (y if y.dtype == dtype else astype(y, dtype))


def floating(x):
    """x itself when floating, else x cast (on the tape) to the default dtype: what every
    float op computes an integer or bool tensor in (exp of an int tensor is float32)."""
    return x if x.dtype.kind in "fc" else astype(x, backend.get_default_dtype())


class _Binary(Function):
    """Shared forward guard for broadcasting binary ops: a clear error instead of NumPy's."""

    def forward(self, x, y):
        try:
            return self.compute(x, y)
        except ValueError:
            _binary_shape_check(self.name.lower(), x, y)
            raise


# -- arithmetic ---------------------------------------------------------------------------


@register
class Add(_Binary):
    """z = x + y        dL/dx = g,   dL/dy = g"""

    saves_inputs = False

    def compute(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


@register
class Sub(_Binary):
    """z = x - y        dL/dx = g,   dL/dy = -g"""

    saves_inputs = False

    def compute(self, x, y):
        return x - y

    def backward(self, g):
        return g, -g


@register
class Mul(_Binary):
    """z = x * y        dL/dx = g * y,   dL/dy = g * x"""

    saves_inputs = {0: (1,), 1: (0,)}  # dL/dx reads y, dL/dy reads x

    def compute(self, x, y):
        return x * y

    def backward(self, g):
        x, y = self.saved_tensors
        return g * y, g * x


@register
class Div(_Binary):
    """z = x / y        dL/dx = g / y,   dL/dy = -g * x / y^2

    dL/dy is computed as -g ((x / y) / y) (PyTorch's form), never through y * y, which
    overflows (y = 1e20) or underflows (y = 1e-30) in float32 where x / y^2 does not."""

    saves_inputs = {0: (1,), 1: (0, 1)}

    def compute(self, x, y):
        return x / y

    def backward(self, g):
        x, y = self.saved_tensors
        return g / y, -g * ((x / y) / y)


@register
class Neg(Function):
    """z = -x           dL/dx = -g"""

    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


# -- powers, exp, log ---------------------------------------------------------------------


@register
class PowScalar(Function):
    """z = x ** p (p a constant)        dL/dx = g * p * x ** (p - 1),  and 0 when p = 0

    (As in PyTorch: at x = 0 this is inf for 0 < p < 1; for p = 0 it is 0, not 0 * inf.)"""

    def forward(self, x, p):
        self.p = p
        with np.errstate(divide="ignore", invalid="ignore"):
            return x ** p

    def backward(self, g):
        (x,) = self.saved_tensors
        if self.p == 0:
            return g * 0
        return g * (self.p * x ** (self.p - 1))  # (PyTorch's order: g * p rounds tiny g away)


@register
class RPowScalar(Function):
    """z = a ** x (a a constant; NaN where a < 0 and x is not an integer)

    dL/dx = g * z * ln(a),  and 0 where a = 0 and x >= 0 (PyTorch's convention for 0 ** x)"""

    saves_output = True

    def forward(self, x, a):
        self.a = a
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return x.dtype.type(a) ** x

    def backward(self, g):
        z = self.saved_output
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a = float(np.log(self.a)) if self.a >= 0 else float("nan")
        if self.a == 0:
            (x,) = self.saved_tensors
            return where(x >= 0, lift(0, g), g * (z * log_a))
        return g * (z * log_a)  # (the local derivative first: g * z may overflow)


@register
class Pow(_Binary):
    """z = x ** y (both tensors)

    dL/dx = g * y * x ** (y - 1)   (0 where y = 0)
    dL/dy = g * z * ln(x)          (0 where x = 0 and y >= 0: the limit of x^y ln x)

    The two conventions are PyTorch's; without them 0 ** y would give 0 * inf = NaN."""

    saves_output = True

    def compute(self, x, y):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return x ** y

    def backward(self, g):
        x, y = self.saved_tensors
        zero = lift(0, g)
        gx = where(y == 0, zero, g * (y * x ** (y - 1))) if x.requires_grad else None
        gy = None
        if y.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):  # log 0: masked by the where
                gy = where((x == 0) & (y >= 0), zero, g * (self.saved_output * log(x)))
        return gx, gy


@register
class Exp(Function):
    """z = e^x          dL/dx = g * z"""

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return backend.array_module(x).exp(x)

    def backward(self, g):
        return g * self.saved_output


@register
class Log(Function):
    """z = ln x         dL/dx = g / x"""

    def forward(self, x):
        return backend.array_module(x).log(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g / x


@register
class Log1p(Function):
    """z = ln(1 + x)    dL/dx = g / (1 + x)

    Accurate for tiny x, where 1 + x rounds to 1 (float32 log(1 - 1e-8) is 0, log1p(-1e-8)
    is -1e-8): the losses' log(1 - p) needs it."""

    def forward(self, x):
        return backend.array_module(x).log1p(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g / (1 + x)


@register
class Sqrt(Function):
    """z = sqrt(x)      dL/dx = g / (2 z)"""

    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return backend.array_module(x).sqrt(x)

    def backward(self, g):
        return g / (2 * self.saved_output)


@register
class Abs(Function):
    """z = |x|          dL/dx = g * sign(x)   (sign(0) = 0: the subgradient PyTorch uses)"""

    def forward(self, x):
        return backend.array_module(x).abs(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * sign(x)


@register
class Sign(Function):
    """z = sign(x)      dL/dx = 0   (piecewise constant; PyTorch also gives zeros, not an error)"""

    saves_inputs = False

    def forward(self, x):
        return backend.array_module(x).sign(x)

    def backward(self, g):
        return g * 0


@register
class DivRounded(_Binary):
    """z = floor(x / y) ("floor", Python's //, of the exact quotient) or trunc(x / y) ("trunc")

    dL/dx = dL/dy = 0: piecewise constant in x and y (PyTorch's div with a rounding_mode)."""

    saves_inputs = False

    def forward(self, x, y, mode):
        self.mode = mode
        return super().forward(x, y)

    def compute(self, x, y):
        xp = backend.array_module(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.mode == "floor":
                # floor of the exact quotient (Python's //, PyTorch's): computed from fmod, not
                # as floor(x / y), whose rounded quotient can cross an integer (float32
                # 1 / 0.1 rounds to 10, but 0.1 is slightly above 1/10, so 1 // 0.1 = 9) or
                # underflow to -0 (1e-45 // -1e30 is -1)
                return xp.floor_divide(x, y)
            return xp.trunc(x / y).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * 0, g * 0


# -- trigonometry -------------------------------------------------------------------------


@register
class Sin(Function):
    """z = sin x        dL/dx = g * cos x"""

    def forward(self, x):
        return backend.array_module(x).sin(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * cos(x)


@register
class Cos(Function):
    """z = cos x        dL/dx = -g * sin x"""

    def forward(self, x):
        return backend.array_module(x).cos(x)

    def backward(self, g):
        (x,) = self.saved_tensors
        return -g * sin(x)


# -- selection: maximum, minimum, clip, where -----------------------------------------------


@register
class Maximum(_Binary):
    """z = max(x, y) elementwise

    dL/dx = g * [x > y] + g/2 * [x == y],  dL/dy likewise: a tie splits the gradient evenly
    (the same choice as the max reduction, and as PyTorch)."""

    saves_inputs = False  # the tie shares, computed in forward

    def compute(self, x, y):
        xp = backend.array_module(x)
        z = xp.maximum(x, y)
        self.x_share = (x > y) + 0.5 * (x == y)
        return z

    def backward(self, g):
        share = lift(self.x_share.astype(g.dtype), g)
        return g * share, g * (1 - share)


@register
class Minimum(_Binary):
    """z = min(x, y) elementwise    dL/dx = g * [x < y] + g/2 * [x == y] (ties split evenly)"""

    saves_inputs = False  # the tie shares, computed in forward

    def compute(self, x, y):
        xp = backend.array_module(x)
        z = xp.minimum(x, y)
        self.x_share = (x < y) + 0.5 * (x == y)
        return z

    def backward(self, g):
        share = lift(self.x_share.astype(g.dtype), g)
        return g * share, g * (1 - share)


@register
class Clip(Function):
    """z = min(max(x, low), high)     dL/dx = g * [low <= x <= high]

    At exactly ``low`` or ``high`` the gradient passes (as in PyTorch's clamp)."""

    saves_inputs = False  # the mask, computed in forward

    def forward(self, x, low=None, high=None):
        xp = backend.array_module(x)
        inside = xp.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        self.inside = inside
        return xp.clip(x, low, high)

    def backward(self, g):
        return g * lift(self.inside.astype(g.dtype), g)


@register
class Where(Function):
    """z = x where cond else y      dL/dx = g * cond,  dL/dy = g * (1 - cond),  cond gets none"""

    saves_inputs = (0,)  # the condition

    def forward(self, cond, x, y):
        xp = backend.array_module(x)
        if cond.dtype != bool:
            raise TypeError(f"where: the condition must be a bool tensor, got dtype {cond.dtype}")
        try:
            return xp.where(cond, x, y)
        except ValueError:
            raise ValueError(
                f"where: shapes cond {cond.shape}, x {x.shape}, y {y.shape} cannot be broadcast together"
            ) from None

    def backward(self, g):
        cond = self.inputs[0]
        zero = lift(0, g)
        return None, where(cond, g, zero), where(cond, zero, g)


# -- dtype and device ---------------------------------------------------------------------


@register
class Cast(Function):
    """z = x converted to another dtype      dL/dx = g (cast back to x's dtype by the engine)"""

    saves_inputs = False

    def forward(self, x, dtype):
        return x.astype(dtype, copy=False)

    def backward(self, g):
        return g


@register
class Clone(Function):
    """z = a copy of x in new memory        dL/dx = g"""

    saves_inputs = False

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


class ToDevice(Function):
    """z = x copied to another device        dL/dx = g copied back to x's device

    Not in the registry: its gradient check needs a GPU (tests/test_devices.py)."""

    saves_inputs = False

    def forward(self, x, device):
        self.source = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, g):
        return to_device(g, self.source)


# -- comparisons (not differentiable: they return bool tensors) ---------------------------


class _Compare(Function):
    differentiable = False

    def forward(self, x, y):
        try:
            return self.compute(x, y)
        except ValueError:
            _binary_shape_check(self.name.lower(), x, y)
            raise


class Eq(_Compare):
    compute = staticmethod(lambda x, y: x == y)


class Ne(_Compare):
    compute = staticmethod(lambda x, y: x != y)


class Lt(_Compare):
    compute = staticmethod(lambda x, y: x < y)


class Le(_Compare):
    compute = staticmethod(lambda x, y: x <= y)


class Gt(_Compare):
    compute = staticmethod(lambda x, y: x > y)


class Ge(_Compare):
    compute = staticmethod(lambda x, y: x >= y)


# -- bitwise / logical (not differentiable: bool and integer tensors) ----------------------


class _Bitwise(_Compare):
    def forward(self, x, y):
        if x.dtype.kind not in "biu" or y.dtype.kind not in "biu":
            raise TypeError(f"{self.op}: needs bool or integer tensors, got {x.dtype} and {y.dtype}")
        return super().forward(x, y)


class BitwiseAnd(_Bitwise):
    op = "bitwise_and"
    compute = staticmethod(lambda x, y: x & y)


class BitwiseOr(_Bitwise):
    op = "bitwise_or"
    compute = staticmethod(lambda x, y: x | y)


class BitwiseXor(_Bitwise):
    op = "bitwise_xor"
    compute = staticmethod(lambda x, y: x ^ y)


class BitwiseNot(Function):
    differentiable = False

    def forward(self, x):
        if x.dtype.kind not in "biu":
            raise TypeError(f"bitwise_not: needs a bool or integer tensor, got {x.dtype}")
        return ~x


# -- functional forms ---------------------------------------------------------------------


def _binary(fn, true_division=False):
    def op(x, y):
        if not isinstance(x, Tensor):
            x = lift(x, y)
        x, y = promote(x, lift(y, x))
        if true_division and x.dtype.kind in "biu":  # int / int is a float, as in Python
            x, y = floating(x), floating(y)
        return fn.apply(x, y)

    op.__name__ = fn.__name__.lower()
    op.__doc__ = fn.__doc__
    return op


def _reflected(fn):
    forward = _binary(fn, true_division=fn is Div)

    def op(x, y):
        return forward(lift(y, x), x)

    op.__name__ = "r" + fn.__name__.lower()
    return op


add, sub, mul = _binary(Add), _binary(Sub), _binary(Mul)
radd, rsub, rmul, rdiv = _reflected(Add), _reflected(Sub), _reflected(Mul), _reflected(Div)
maximum, minimum = _binary(Maximum), _binary(Minimum)
eq, ne, lt, le, gt, ge = (_binary(c) for c in (Eq, Ne, Lt, Le, Gt, Ge))
_true_div = _binary(Div, true_division=True)
bitwise_and, bitwise_or, bitwise_xor = _binary(BitwiseAnd), _binary(BitwiseOr), _binary(BitwiseXor)


def bitwise_not(x):
    """~x: logical not of a bool tensor, bitwise not of an integer one."""
    return BitwiseNot.apply(x)


def div(x, y, rounding_mode=None):
    """x / y (true division: integers give the default float dtype), or with
    ``rounding_mode="floor"`` / ``"trunc"`` the quotient rounded down / toward zero, keeping
    an integer dtype (PyTorch's div; ``x // y`` is the floor mode)."""
    if rounding_mode is None:
        return _true_div(x, y)
    if rounding_mode not in ("floor", "trunc"):
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    if not isinstance(x, Tensor):
        x = lift(x, y)
    x, y = promote(x, lift(y, x))
    return DivRounded.apply(x, y, mode=rounding_mode)


def floor_divide(x, y):
    """x // y: the quotient rounded toward minus infinity (div with rounding_mode="floor")."""
    return div(x, y, rounding_mode="floor")


def rfloordiv(x, y):
    return floor_divide(lift(y, x), x)


def pow(x, y):
    """x ** y for tensor ** number, number ** tensor, or tensor ** tensor (PyTorch's dtypes:
    an int tensor ** 0.5 or 0.7 ** an int tensor is float32; NaN where a negative base meets
    a non-integer exponent)."""
    if isinstance(x, Tensor) and isinstance(y, (numbers.Number, np.generic)) and not isinstance(y, bool):
        if x.dtype.kind in "biu" and not isinstance(y, numbers.Integral):
            x = floating(x)
        return PowScalar.apply(x, p=y)
    if not isinstance(x, Tensor) and isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, bool):
        if y.dtype.kind in "biu" and not isinstance(x, numbers.Integral):
            y = floating(y)
        return RPowScalar.apply(y, a=x)
    if not isinstance(x, Tensor):
        x = lift(x, y)
    x, y = promote(x, lift(y, x))
    return Pow.apply(x, y)


def rpow(x, base):
    return pow(base, x)


def _unary(fn, to_float=False):
    def op(x):
        return fn.apply(floating(x) if to_float else x)

    op.__name__ = fn.__name__.lower()
    op.__doc__ = fn.__doc__
    return op


neg, abs, sign = _unary(Neg), _unary(Abs), _unary(Sign)
exp, log, log1p, sqrt, sin, cos = (_unary(f, to_float=True) for f in (Exp, Log, Log1p, Sqrt, Sin, Cos))


def clip(x, min=None, max=None):
    """Clamp to [min, max] (PyTorch's clamp); either bound may be None.  The bounds are numbers
    or tensors (broadcast against x, and differentiable: a bound receives the gradient where it
    is the result).  Where x equals a bound, the gradient goes to x; where min > max, every
    element is max (as in PyTorch and NumPy).  An integer x with a float bound gives floats."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        # min(max(x, lo), hi) written with where, so that ties pass the gradient to x (maximum
        # and minimum would split it) and each bound gets it exactly where it was chosen
        z = x
        if min is not None:
            z = where(z < min, min, z)
        if max is not None:
            z = where(z > max, max, z)
        return z
    for bound in (min, max):
        if bound is not None and not isinstance(bound, (numbers.Real, np.generic)):
            raise TypeError(f"clip: min and max must be numbers, tensors or None, got {type(bound).__name__}")
    for bound in (min, max):  # an int tensor clipped at 0.5 is float32, as in PyTorch
        if bound is not None and result_type(x, bound) != x.dtype:
            x = astype(x, result_type(x, bound))
    return Clip.apply(x, low=min, high=max)


clamp = clip


def where(cond, x, y):
    """x where cond is True, else y (numbers are allowed for x or y)."""
    if not isinstance(x, Tensor):
        x = lift(x, y) if isinstance(y, Tensor) else Tensor(x)
    x, y = promote(x, lift(y, x))
    # (a condition that is not a Tensor is copied: its owner could edit it, unseen, before backward)
    cond = cond if isinstance(cond, Tensor) else Tensor._wrap(backend.array_module(x.array).array(cond))
    return Where.apply(cond, x, y)


def masked_fill(x, mask, value):
    """x with ``value`` wherever the bool ``mask`` (broadcast to x's shape) is True.

    The gradient reaches x where the mask is False, and a tensor ``value`` where it is True."""
    if not isinstance(mask, Tensor):
        mask = Tensor._wrap(backend.array_module(x.array).array(mask))  # (a copy, as where's condition)
    if mask.dtype != bool:
        raise TypeError(f"masked_fill: the mask must be a bool tensor, got dtype {mask.dtype}")
    try:
        np.broadcast_shapes(mask.shape, x.shape)
        if np.broadcast_shapes(mask.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"masked_fill: a mask of shape {mask.shape} does not broadcast to the "
                         f"tensor's shape {x.shape}") from None
    value = lift(value, x)
    if value.ndim:
        raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
    return Where.apply(mask, value.astype(x.dtype) if value.dtype != x.dtype else value, x)


def clone(x):
    """A copy with its own memory that stays on the tape (gradients flow through it)."""
    return Clone.apply(x)


def isclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Elementwise |a - b| <= atol + rtol * |b| (a bool tensor; NaN equals NaN only with
    ``equal_nan``).  Not differentiable."""
    if not isinstance(a, Tensor):
        a = lift(a, b)
    a, b = promote(a, lift(b, a))
    if a.device != b.device:
        raise RuntimeError(f"isclose: tensors on different devices ({a.device}, {b.device})")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        _binary_shape_check("isclose", a, b)
    xp = backend.array_module(a.array)
    return Tensor._wrap(xp.asarray(xp.isclose(a.array, b.array, rtol=rtol, atol=atol, equal_nan=equal_nan)))


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    """True when ``isclose`` holds everywhere (a Python bool)."""
    return bool(isclose(a, b, rtol, atol, equal_nan).array.all())


def equal(a, b):
    """True when ``a`` and ``b`` have the same shape and the same values everywhere (a Python
    bool; PyTorch's ``torch.equal``).  Values compare after the usual type promotion."""
    return a.shape == b.shape and bool(eq(a, b).array.all())


def one_hot(labels, num_classes=-1):
    """Integer labels of any shape -> int64 one-hot vectors along a new last axis of length
    ``num_classes`` (default: the largest label + 1)."""
    if not isinstance(labels, Tensor) or labels.dtype.kind not in "iu":
        raise TypeError("one_hot: expected an integer tensor of class labels, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    xp = backend.array_module(labels.array)
    on_host = backend.device_of(labels.array) == backend.CPU or backend.debug_checks()
    if num_classes == -1 or on_host:
        # reads the labels: free on the CPU; on a GPU the host waits (as in PyTorch, whose
        # one_hot with num_classes=-1 must learn the largest label too): give num_classes
        lo = int(labels.array.min()) if labels.numel() else 0
        hi = int(labels.array.max()) if labels.numel() else -1
        if num_classes == -1:
            num_classes = hi + 1
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), got values from {lo} to {hi}")
    else:  # checked on the GPU: a bad label stops a kernel, reported at the next synchronisation
        backend.check_indices_on_device(labels.array, 0, num_classes, "one_hot")
    return Tensor._wrap((labels.array[..., None] == xp.arange(num_classes)).astype(np.int64))


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    return Cast.apply(x, dtype=dtype)


def to_device(x, device):
    return ToDevice.apply(x, device=device)


# -- rounding, and the fused multiply-adds of optimizer code (PyTorch's names) -----------------


class _Rounding(Function):
    """Piecewise constant: dL/dx = 0 (PyTorch gives zeros too, not an error)."""

    saves_inputs = False

    def backward(self, g):
        return g * 0


@register
class Floor(_Rounding):
    """z = floor(x), the largest integer <= x        dL/dx = 0"""

    def forward(self, x):
        return backend.array_module(x).floor(x)


@register
class Ceil(_Rounding):
    """z = ceil(x), the smallest integer >= x        dL/dx = 0"""

    def forward(self, x):
        return backend.array_module(x).ceil(x)


@register
class Trunc(_Rounding):
    """z = trunc(x), x rounded toward zero            dL/dx = 0"""

    def forward(self, x):
        return backend.array_module(x).trunc(x)


@register
class Round(_Rounding):
    """z = x rounded to ``decimals`` decimal places, halves to even (0.5 -> 0, 1.5 -> 2, as
    PyTorch and NumPy)        dL/dx = 0"""

    def forward(self, x, decimals):
        return backend.array_module(x).round(x, decimals)


def _rounding(fn, x, **params):
    if x.dtype.kind in "biu":  # already whole numbers: a copy, as in PyTorch
        return Tensor._wrap(x.array.copy())
    return fn.apply(x, **params)


def floor(x):
    """Round down to an integer value (the dtype is kept)."""
    return _rounding(Floor, x)


def ceil(x):
    """Round up to an integer value (the dtype is kept)."""
    return _rounding(Ceil, x)


def trunc(x):
    """Round toward zero (the dtype is kept)."""
    return _rounding(Trunc, x)


def round(x, decimals=0):
    """Round to ``decimals`` places (default: to an integer value), halves to even."""
    if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral):
        raise TypeError(f"round: decimals must be an int, got {decimals!r}")
    return _rounding(Round, x, decimals=int(decimals))


def addcmul(x, tensor1, tensor2, *, value=1):
    """x + value * tensor1 * tensor2 (broadcast; PyTorch's addcmul, as in Adam's
    ``v.mul_(b2).addcmul_(g, g, value=1 - b2)``)."""
    return add(x, mul(mul(tensor1, tensor2), value) if value != 1 else mul(tensor1, tensor2))


def addcdiv(x, tensor1, tensor2, *, value=1):
    """x + value * tensor1 / tensor2 (broadcast; PyTorch's addcdiv)."""
    q = div(tensor1, tensor2)
    return add(x, mul(q, value) if value != 1 else q)
