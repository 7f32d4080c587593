"""Reductions: sum, mean, var, max, min, argmax, argmin, logsumexp over ``axis``
(an int, a tuple, or None for all; negative axes count from the end) with ``keepdims``.

Every backward first puts the reduced axes back as size-1 axes (``_unsqueeze_like``) so the
gradient broadcasts against the input.  Derivations: docs/derivations/reduce.md.
"""
from .. import backend
from ..autograd import Function, register
from .shape import broadcast_to, reshape


def normalize_axis(axis, ndim, op):
    """``axis`` as a sorted tuple of non-negative ints (all axes for None); clear error if out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions "
                             f"(valid: {-max(ndim, 1)} to {max(ndim, 1) - 1})")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis} repeats a dimension")
    return tuple(sorted(out)) if ndim else ()


def _kept_shape(in_shape, axes):
    """The shape of the reduction with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(in_shape))


def _unsqueeze_like(g, in_shape, axes):
    """Gradient of a reduction, reshaped so it broadcasts against the input."""
    return reshape(g, _kept_shape(in_shape, axes))


@register
class Sum(Function):
    """z = sum_i x_i over ``axes``        dL/dx_i = g  (broadcast back over the summed axes)"""

    def forward(self, x, axes, keepdims):
        self.in_shape, self.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, g):
        return broadcast_to(_unsqueeze_like(g, self.in_shape, self.axes), self.in_shape)


@register
class Mean(Function):
    """z = (1/N) sum_i x_i over ``axes`` (N elements each)      dL/dx_i = g / N"""

    def forward(self, x, axes, keepdims):
        self.in_shape, self.axes = x.shape, axes
        self.count = 1
        for a in axes:
            self.count *= x.shape[a]
        return x.mean(axis=axes, keepdims=keepdims)

    def backward(self, g):
        return broadcast_to(_unsqueeze_like(g, self.in_shape, self.axes), self.in_shape) / self.count


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, axes=normalize_axis(axis, x.ndim, "sum"), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axes=normalize_axis(axis, x.ndim, "mean"), keepdims=keepdims)
