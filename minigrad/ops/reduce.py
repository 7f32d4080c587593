"""Reductions: sum, mean, var, max, min, argmax, argmin, logsumexp over ``axis``
(an int, a tuple, or None for all; negative axes count from the end) with ``keepdims``.
``dim`` and ``keepdim`` are accepted as keyword aliases, as in PyTorch.

Every backward first puts the reduced axes back as size-1 axes (``_unsqueeze_like``) so the
gradient broadcasts against the input.  Derivations: docs/derivations/reduce.md.
"""
import builtins
import math
import warnings
from collections import namedtuple

import numpy as np

from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor
from .shape import broadcast_to, reshape


def normalize_axis(axis, ndim, op):
    """``axis`` as a sorted tuple of non-negative ints (all axes for None); clear error if out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions "
                             f"(valid: {-builtins.max(ndim, 1)} to {builtins.max(ndim, 1) - 1})")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis} repeats a dimension")
    return tuple(sorted(out)) if ndim else ()


def _resolve(op, axis, dim, keepdims, keepdim):
    """Merge the PyTorch spellings ``dim=`` / ``keepdim=`` into ``axis`` / ``keepdims``."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: pass either axis or dim, not both (got axis={axis}, dim={dim})")
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    return axis, bool(keepdims)


def _kept_shape(in_shape, axes):
    """The shape of the reduction with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(in_shape))


def _unsqueeze_like(g, in_shape, axes):
    """Gradient of a reduction, reshaped so it broadcasts against the input."""
    return reshape(g, _kept_shape(in_shape, axes))


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def _constant(array, like):
    """A raw array as a constant tensor (no gradient) in the dtype of ``like``.
    (asarray: NumPy turns 0-d results into scalars, and a Tensor must hold an array.)"""
    return Tensor._wrap(backend.array_module(array).asarray(array, dtype=like.dtype))


@register
class Sum(Function):
    """z = sum_i x_i over ``axes``        dL/dx_i = g  (broadcast back over the summed axes)"""

    saves_inputs = False

    def forward(self, x, axes, keepdims):
        self.in_shape, self.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, g):
        return broadcast_to(_unsqueeze_like(g, self.in_shape, self.axes), self.in_shape)


@register
class Mean(Function):
    """z = (1/N) sum_i x_i over ``axes`` (N elements each)      dL/dx_i = g / N"""

    saves_inputs = False

    def forward(self, x, axes, keepdims):
        self.in_shape, self.axes = x.shape, axes
        self.count = _count(x.shape, axes)
        return x.mean(axis=axes, keepdims=keepdims)

    def backward(self, g):
        return broadcast_to(_unsqueeze_like(g, self.in_shape, self.axes), self.in_shape) / self.count


@register
class Var(Function):
    """z = sum_i (x_i - m)^2 / (N - c)  over ``axes``, m = mean of x, c = ``correction``

    dL/dx_i = g * 2 (x_i - m) / (N - c)     (the terms through m cancel: sum_i (x_i - m) = 0)

    As in PyTorch, N - c is clamped at 0 (the result is then inf, or nan for a constant or
    empty x, with a warning)."""

    def forward(self, x, axes, correction, keepdims):
        xp = backend.array_module(x)
        self.in_shape, self.axes = x.shape, axes
        n = _count(x.shape, axes)
        self.dof = builtins.max(n - correction, 0)
        if self.dof == 0:
            warnings.warn(f"var: degrees of freedom N - correction = {n} - {correction} <= 0 "
                          f"for shape {x.shape}; the result is inf or nan", RuntimeWarning, stacklevel=4)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = x - x.mean(axis=axes, keepdims=True)
            return xp.sum(d * d, axis=axes, keepdims=keepdims) / x.dtype.type(self.dof)

    def backward(self, g):
        (x,) = self.saved_tensors
        d = x - mean(x, axis=self.axes, keepdims=True)
        scale = 2.0 / self.dof if self.dof else float("inf")
        return _unsqueeze_like(g, self.in_shape, self.axes) * d * scale


class _Extreme(Function):
    """Shared by Max and Min: z = the extreme value over ``axes``.

    dL/dx_i = g * [x_i == z] / (number of i with x_i == z): where several elements tie for
    the extreme, the gradient is split evenly among them (PyTorch's choice for amax/amin;
    the gradient then sums to g, as for a single winner)."""

    def forward(self, x, axes, keepdims):
        if x.size == 0 and axes and _count(x.shape, axes) == 0:
            raise ValueError(f"{self.name.lower()}: cannot reduce over an empty axis (shape {x.shape}, "
                             f"axes {axes}): the result has no identity")
        self.in_shape, self.axes = x.shape, axes
        z = self.reduce(x, axis=axes, keepdims=True)
        self.z = z
        return z if keepdims else z.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))

    def backward(self, g):
        (x,) = self.saved_tensors
        winners = x.array == self.z
        share = winners / winners.sum(axis=self.axes, keepdims=True)
        return _unsqueeze_like(g, self.in_shape, self.axes) * _constant(share, g)


@register
class Max(_Extreme):
    __doc__ = _Extreme.__doc__.replace("extreme", "largest")
    reduce = staticmethod(lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims))


@register
class Min(_Extreme):
    __doc__ = _Extreme.__doc__.replace("extreme", "smallest")
    reduce = staticmethod(lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims))


class _ArgExtreme(Function):
    """Index of the extreme along one axis (of the flattened tensor when axis is None); int64.
    Piecewise constant, so it passes no gradient.  Ties: the first occurrence wins."""

    differentiable = False

    def forward(self, x, axis, keepdims):
        if x.shape[axis] == 0 if axis is not None else x.size == 0:
            raise ValueError(f"{self.name.lower()}: cannot take the {self.name[3:].lower()} of an "
                             f"empty tensor (shape {x.shape}{'' if axis is None else f', axis {axis}'})")
        return self.reduce(x, axis=axis, keepdims=keepdims).astype(np.int64, copy=False)


class ArgMax(_ArgExtreme):
    reduce = staticmethod(lambda x, axis, keepdims: x.argmax(axis=axis, keepdims=keepdims))


class ArgMin(_ArgExtreme):
    reduce = staticmethod(lambda x, axis, keepdims: x.argmin(axis=axis, keepdims=keepdims))


@register
class LogSumExp(Function):
    """z = log sum_i exp(x_i) over ``axes``, computed as m + log sum_i exp(x_i - m) with
    m = max_i x_i, so no exp overflows.

    dL/dx_i = g * softmax(x)_i = g * exp(x_i - m) / sum_j exp(x_j - m)

    The softmax is rebuilt from the maximum m, never as exp(x_i - z): z is rounded at its
    own magnitude (float32 z = 1e4 + log 2 carries an error of 5e-4), and exp(x - z) would
    pass that error on to every gradient; x - m is exact where it matters.  m is a constant
    for the tape (the softmax does not depend on it), so the backward differentiates again."""

    def forward(self, x, axes, keepdims):
        self.in_shape, self.axes = x.shape, axes
        z = backend.kernels(x).logsumexp(x, axes)  # keepdims=True; -inf for an empty sum
        return z if keepdims else z.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))

    def backward(self, g):
        (x,) = self.saved_tensors
        xp = backend.array_module(x.array)
        m = x.array.max(axis=self.axes, keepdims=True) if x.array.size else xp.zeros((), x.dtype)
        m = xp.where(xp.isfinite(m), m, 0)  # (as the kernel: an all -inf or +inf slice stays NaN-free)
        e = exp(x - _constant(m, x))
        return _unsqueeze_like(g, self.in_shape, self.axes) * (e / sum(e, axis=self.axes, keepdims=True))


# -- functional forms ---------------------------------------------------------------------


def _accumulation_dtype(x, dtype, op):
    """x cast for a sum: to ``dtype`` when given; bool and small integers sum in int64 (PyTorch)."""
    if dtype is not None:
        return astype(x, dtype)
    if x.dtype.kind == "b" or (x.dtype.kind in "iu" and x.dtype.itemsize < 8):
        return astype(x, np.int64)
    return x


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None, dtype=None):
    """Sum over ``axis`` (int, tuple, or None for all).  ``dtype``: cast first (bool and
    integer tensors sum in int64 unless told otherwise, as in PyTorch)."""
    if dim is not None or keepdim is not None:
        axis, keepdims = _resolve("sum", axis, dim, keepdims, keepdim)
    x = _accumulation_dtype(x, dtype, "sum")
    return Sum.apply(x, axes=normalize_axis(axis, x.ndim, "sum"), keepdims=keepdims)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None, dtype=None):
    """Arithmetic mean over ``axis`` (int, tuple, or None for all).  Integer tensors need a
    floating ``dtype`` (as in PyTorch: the mean of integers is not an integer)."""
    if dim is not None or keepdim is not None:
        axis, keepdims = _resolve("mean", axis, dim, keepdims, keepdim)
    if dtype is not None:
        x = astype(x, dtype)
    if x.dtype.kind not in "fc":
        raise TypeError(f"mean: needs a floating-point tensor, got dtype {x.dtype}; pass "
                        "dtype=minigrad.float32 or convert with .float() first")
    return Mean.apply(x, axes=normalize_axis(axis, x.ndim, "mean"), keepdims=keepdims)


def var(x, axis=None, correction=1, keepdims=False, *, dim=None, keepdim=None, unbiased=None):
    """Variance over ``axis``: sum (x - mean)^2 / (N - correction).  ``correction=1`` (the
    default, as in PyTorch) is the unbiased estimator, ``correction=0`` the population variance;
    ``unbiased=True/False`` is PyTorch's older spelling of correction=1/0."""
    axis, keepdims = _resolve("var", axis, dim, keepdims, keepdim)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    if x.dtype.kind not in "fc":
        raise TypeError(f"var: needs a floating-point tensor, got dtype {x.dtype}; use .float() first")
    return Var.apply(x, axes=normalize_axis(axis, x.ndim, "var"), correction=correction, keepdims=keepdims)


def std(x, axis=None, correction=1, keepdims=False, *, dim=None, keepdim=None, unbiased=None):
    """Standard deviation: sqrt(var(x, ...)) with the same arguments (unbiased by default)."""
    return sqrt(var(x, axis, correction, keepdims, dim=dim, keepdim=keepdim, unbiased=unbiased))


def amax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Largest value over ``axis`` (an int, a tuple or None); ties share the gradient evenly."""
    axis, keepdims = _resolve("amax", axis, dim, keepdims, keepdim)
    return Max.apply(x, axes=normalize_axis(axis, x.ndim, "amax"), keepdims=keepdims)


def amin(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Smallest value over ``axis`` (an int, a tuple or None); ties share the gradient evenly."""
    axis, keepdims = _resolve("amin", axis, dim, keepdims, keepdim)
    return Min.apply(x, axes=normalize_axis(axis, x.ndim, "amin"), keepdims=keepdims)


MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _extreme(op, reduce, pick, elementwise, x, axis, keepdims, dim, keepdim):
    """PyTorch's max/min: over everything (a value; ties share the gradient), along one
    ``dim`` (``(values, indices)``; the gradient goes to the returned index, the first extreme),
    or against another tensor (the elementwise maximum/minimum)."""
    if isinstance(axis, Tensor):
        if dim is not None or keepdims or keepdim is not None:
            raise TypeError(f"{op}(x, other) is elementwise: it takes no dim/keepdim")
        return elementwise(x, axis)
    axis, keepdims = _resolve(op, axis, dim, keepdims, keepdim)
    if axis is None or isinstance(axis, (tuple, list)):
        return reduce(x, axis, keepdims)
    (a,) = normalize_axis(axis, x.ndim, op) or (0,)
    if x.ndim and x.shape[a] == 0:
        raise ValueError(f"{op}: cannot reduce over an empty axis (shape {x.shape}, axis {a})")
    indices = pick(x, axis, keepdims=True)
    values = gather(x, axis, indices)
    if not keepdims:
        values, indices = squeeze(values, axis), squeeze(indices, axis)
    return MaxMin(values, indices)


def max(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """``max(x)``: the largest value.  ``max(x, dim)``: ``(values, indices)`` along ``dim``,
    as PyTorch (a tuple of dims gives the values only, as amax).  ``max(x, other)``: the
    elementwise maximum."""
    return _extreme("max", amax, argmax, maximum, x, axis, keepdims, dim, keepdim)


def min(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """``min(x)``, ``min(x, dim)`` -> ``(values, indices)``, ``min(x, other)``: as ``max``."""
    return _extreme("min", amin, argmin, minimum, x, axis, keepdims, dim, keepdim)


def _arg(fn, op, x, axis, keepdims, dim, keepdim):
    axis, keepdims = _resolve(op, axis, dim, keepdims, keepdim)
    if axis is not None:
        if not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int or None, got {axis!r}")
        (axis,) = normalize_axis(int(axis), x.ndim, op) or (None,)
    elif keepdims:  # the flattened index, with every axis kept as size 1 (as in PyTorch)
        return reshape(fn.apply(x, axis=None, keepdims=False), (1,) * x.ndim)
    return fn.apply(x, axis=axis, keepdims=keepdims)


def argmax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the largest value along ``axis`` (int64; of the flattened tensor for None)."""
    return _arg(ArgMax, "argmax", x, axis, keepdims, dim, keepdim)


def argmin(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Index of the smallest value along ``axis`` (int64; of the flattened tensor for None)."""
    return _arg(ArgMin, "argmin", x, axis, keepdims, dim, keepdim)


def logsumexp(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """log(sum(exp(x))) over ``axis``, without overflow."""
    axis, keepdims = _resolve("logsumexp", axis, dim, keepdims, keepdim)
    return LogSumExp.apply(floating(x), axes=normalize_axis(axis, x.ndim, "logsumexp"), keepdims=keepdims)


from .elementwise import astype, exp, floating, maximum, minimum, sqrt  # noqa: E402
from .shape import gather, squeeze  # noqa: E402


# -- cumulative sums, norms, logical reductions (PyTorch's names, for ported scripts) -------


@register
class CumSum(Function):
    """z_i = sum_{j <= i} x_j along ``axis``  (the running total)

    dL/dx_j = sum_{i >= j} g_i: every z_i with i >= j contains x_j once, so x_j collects the
    gradients of all of them, which is the running total of g taken from the far end
    (reverse, cumsum, reverse).  docs/derivations/reduce.md, "cumsum"."""

    saves_inputs = False

    def forward(self, x, axis):
        self.axis = axis
        return backend.array_module(x).cumsum(x, axis=axis)

    def backward(self, g):
        return _flip(CumSum.apply(_flip(g, self.axis), axis=self.axis), self.axis)


def _flip(x, axis):
    """x reversed along ``axis`` (a view: basic slicing with step -1)."""
    return x[(slice(None),) * axis + (slice(None, None, -1),)]


def cumsum(x, axis=None, *, dim=None, dtype=None):
    """Running sums along ``dim`` (required, as in PyTorch): z_i = x_0 + ... + x_i.  bool and
    integer tensors sum in int64 unless ``dtype`` says otherwise."""
    axis, _ = _resolve("cumsum", axis, dim, False, None)
    if axis is None:
        raise TypeError("cumsum: missing the dim to sum along (e.g. cumsum(x, 0) or x.cumsum(dim=1))")
    x = _accumulation_dtype(x, dtype, "cumsum")
    if x.ndim == 0:  # PyTorch accepts dim 0 / -1 for a 0-d tensor: the value itself
        normalize_axis(axis, 0, "cumsum")
        return CumSum.apply(reshape(x, (1,)), axis=0).reshape(())
    (a,) = normalize_axis(axis, x.ndim, "cumsum") if isinstance(axis, int) else (None,)
    if a is None:
        raise TypeError(f"cumsum: dim must be an int, got {axis!r}")
    return CumSum.apply(x, axis=a)


@register
class Norm(Function):
    """z = (sum_i |x_i|^p)^(1/p) over ``axes``  (the p-norm; p finite, not 0 or 1)

    dL/dx_i = g * sign(x_i) |x_i|^(p-1) / z^(p-1),   0 where z = 0 or x_i = 0

    (docs/derivations/reduce.md, "norm".  The zeros where z = 0 or x_i = 0 are PyTorch's
    choice: the limit for p > 1, a subgradient otherwise.)  p = 1, inf, -inf and 0 are
    other ops (``norm`` composes them: sum of |x|, amax, amin, count)."""

    saves_output = True

    def forward(self, x, axes, p, keepdims):
        xp = backend.array_module(x)
        self.in_shape, self.axes, self.p = x.shape, axes, p
        a = xp.abs(x)
        if p == 2:  # the common case in one BLAS-free pass, no pow
            z = xp.sqrt((a * a).sum(axis=axes, keepdims=keepdims))
        else:
            with np.errstate(divide="ignore", over="ignore"):
                z = (a ** p).sum(axis=axes, keepdims=keepdims) ** (1.0 / p)
        return z.astype(x.dtype, copy=False)

    def backward(self, g):
        (x,) = self.saved_tensors
        p = self.p
        z = _unsqueeze_like(self.saved_output, self.in_shape, self.axes)
        zero_x, zero_z = x == 0, z == 0
        # |x|^(p-1) and z^(p-1) only where they are finite: the masked-out branch of a where
        # must not hold inf either, or its (zero) gradient would become 0 * inf = NaN
        safe_x = where(zero_x, 1.0, x)
        safe_z = where(zero_z, 1.0, z)
        local = where(zero_x, 0.0, sign(x) * abs(safe_x) ** (p - 1)) / safe_z ** (p - 1)
        return where(zero_z, 0.0, _unsqueeze_like(g, self.in_shape, self.axes) * local)


def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """PyTorch's ``torch.norm`` / ``x.norm()``: the vector p-norm of the elements over ``dim``
    (an int, a tuple, or None for all), (sum |x|^p)^(1/p).

    ``p``: a number, ``inf`` (max |x|), ``-inf`` (min |x|), 0 (the number of non-zeros),
    or "fro" (= 2: the Frobenius norm is the 2-norm of the elements).  The nuclear norm ("nuc")
    needs an SVD and is not available.  The gradient at 0 is 0, as in PyTorch."""
    if dtype is not None:
        x = astype(x, dtype)
    if x.dtype.kind != "f":
        raise TypeError(f"norm: expected a floating-point tensor, got dtype {x.dtype}; use .float() first")
    if isinstance(p, str):
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported (supported: a number, inf, -inf, 'fro'; "
                             "the nuclear norm 'nuc' needs an SVD, which minigrad does not have)")
        p = 2.0
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p != p:
        raise ValueError(f"norm: p must be a number (inf and -inf included) or 'fro', got {p!r}")
    axes = normalize_axis(dim, x.ndim, "norm")
    keepdim = bool(keepdim)
    if p == math.inf:
        return amax(abs(x), axes, keepdim)
    if p == -math.inf:
        return amin(abs(x), axes, keepdim)
    if p == 0:  # the count of non-zeros: piecewise constant, no gradient (PyTorch's too)
        return sum(astype(x != 0, x.dtype), axes, keepdim).detach()
    if p == 1:
        return sum(abs(x), axes, keepdim)
    return Norm.apply(x, axes=axes, p=float(p), keepdims=keepdim)


def _logical(op, x, axis, keepdims, dim, keepdim):
    axis, keepdims = _resolve(op, axis, dim, keepdims, keepdim)
    axes = normalize_axis(axis, x.ndim, op)
    xp = backend.array_module(x.array)
    reduce = xp.all if op == "all" else xp.any
    return Tensor._wrap(xp.asarray(reduce(x.array != 0, axis=axes, keepdims=keepdims)))


def all(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """True where every element over ``dim`` is non-zero (a bool tensor; not differentiable)."""
    return _logical("all", x, axis, keepdims, dim, keepdim)


def any(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """True where some element over ``dim`` is non-zero (a bool tensor; not differentiable)."""
    return _logical("any", x, axis, keepdims, dim, keepdim)


from .elementwise import abs, sign, where  # noqa: E402
