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
    xp = backend.array_module(like.data)
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
        return Tensor._wrap(xp.asarray(value, dtype=dtype))
    return Tensor._wrap(xp.asarray(value))


def _binary_shape_check(name, x, y):
    try:
        return np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(
            f"{name}: shapes {x.shape} and {y.shape} cannot be broadcast together "
            "(trailing dimensions must be equal or 1)"
        ) from None


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

    def compute(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


@register
class Sub(_Binary):
    """z = x - y        dL/dx = g,   dL/dy = -g"""

    def compute(self, x, y):
        return x - y

    def backward(self, g):
        return g, -g


@register
class Mul(_Binary):
    """z = x * y        dL/dx = g * y,   dL/dy = g * x"""

    def compute(self, x, y):
        return x * y

    def backward(self, g):
        x, y = self.saved_tensors
        return g * y, g * x


@register
class Div(_Binary):
    """z = x / y        dL/dx = g / y,   dL/dy = -g * x / y^2"""

    def compute(self, x, y):
        return x / y

    def backward(self, g):
        x, y = self.saved_tensors
        return g / y, -g * x / (y * y)


@register
class Neg(Function):
    """z = -x           dL/dx = -g"""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


# -- powers, exp, log ---------------------------------------------------------------------


@register
class PowScalar(Function):
    """z = x ** p (p a constant)        dL/dx = g * p * x ** (p - 1)"""

    def forward(self, x, p):
        self.p = p
        return x ** p

    def backward(self, g):
        (x,) = self.saved_tensors
        if self.p == 0:
            return g * 0
        return g * self.p * x ** (self.p - 1)


@register
class RPowScalar(Function):
    """z = a ** x (a a positive constant)     dL/dx = g * z * ln(a)"""

    def forward(self, x, a):
        self.log_a = float(np.log(a))
        return a ** x

    def backward(self, g):
        return g * self.saved_output * self.log_a


@register
class Pow(_Binary):
    """z = x ** y (both tensors, x > 0 where y is differentiated)

    dL/dx = g * y * x ** (y - 1),   dL/dy = g * z * ln(x)"""

    def compute(self, x, y):
        return x ** y

    def backward(self, g):
        x, y = self.saved_tensors
        z = self.saved_output
        gy = g * z * log(x) if y.requires_grad else None
        return g * y * x ** (y - 1), gy


@register
class Exp(Function):
    """z = e^x          dL/dx = g * z"""

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
class Sqrt(Function):
    """z = sqrt(x)      dL/dx = g / (2 z)"""

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


class Sign(Function):
    """z = sign(x): piecewise constant, so it passes no gradient (derivative 0 a.e.)."""

    differentiable = False

    def forward(self, x):
        return backend.array_module(x).sign(x)


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

    def forward(self, x, dtype):
        return x.astype(dtype, copy=False)

    def backward(self, g):
        return g


class ToDevice(Function):
    """z = x copied to another device        dL/dx = g copied back to x's device

    Not in the registry: its gradient check needs a GPU (tests/test_devices.py)."""

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


# -- functional forms ---------------------------------------------------------------------


def _binary(fn):
    def op(x, y):
        if not isinstance(x, Tensor):
            x = lift(x, y)
        return fn.apply(x, lift(y, x))

    op.__name__ = fn.__name__.lower()
    op.__doc__ = fn.__doc__
    return op


def _reflected(fn):
    def op(x, y):
        return fn.apply(lift(y, x), x)

    op.__name__ = "r" + fn.__name__.lower()
    return op


add, sub, mul, div = _binary(Add), _binary(Sub), _binary(Mul), _binary(Div)
radd, rsub, rmul, rdiv = _reflected(Add), _reflected(Sub), _reflected(Mul), _reflected(Div)
maximum, minimum = _binary(Maximum), _binary(Minimum)
eq, ne, lt, le, gt, ge = (_binary(c) for c in (Eq, Ne, Lt, Le, Gt, Ge))


def pow(x, y):
    """x ** y for tensor ** number, number ** tensor, or tensor ** tensor."""
    if isinstance(x, Tensor) and not isinstance(y, Tensor):
        if isinstance(y, (numbers.Number, np.generic)):
            return PowScalar.apply(x, p=y)
        y = lift(y, x)
    if not isinstance(x, Tensor):
        if isinstance(x, (numbers.Number, np.generic)):
            if x <= 0:
                raise ValueError(f"pow: base {x} ** tensor is only differentiable for a positive base")
            return RPowScalar.apply(y, a=x)
        x = lift(x, y)
    return Pow.apply(x, y)


def rpow(x, base):
    return pow(base, x)


def _unary(fn):
    def op(x):
        return fn.apply(x)

    op.__name__ = fn.__name__.lower()
    op.__doc__ = fn.__doc__
    return op


neg, exp, log, sqrt, abs, sign, sin, cos = (_unary(f) for f in (Neg, Exp, Log, Sqrt, Abs, Sign, Sin, Cos))


def clip(x, min=None, max=None):
    """Clamp to [min, max]; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return Clip.apply(x, low=min, high=max)


def where(cond, x, y):
    """x where cond is True, else y (numbers are allowed for x or y)."""
    if not isinstance(x, Tensor):
        x = lift(x, y) if isinstance(y, Tensor) else Tensor(x)
    y = lift(y, x)
    cond = cond if isinstance(cond, Tensor) else Tensor._wrap(backend.array_module(x.data).asarray(cond))
    return Where.apply(cond, x, y)


def masked_fill(x, mask, value):
    """x with ``value`` wherever the bool ``mask`` (broadcast to x's shape) is True.

    The gradient reaches x where the mask is False, and a tensor ``value`` where it is True."""
    if not isinstance(mask, Tensor):
        mask = Tensor._wrap(backend.array_module(x.data).asarray(mask))
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


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    return Cast.apply(x, dtype=dtype)


def to_device(x, device):
    return ToDevice.apply(x, device=device)
