"""Shape ops: they move or copy elements without arithmetic, so each backward moves the
gradient back the same way (reshape it back, sum what was broadcast, scatter what was picked).
Derivations: docs/derivations/shape.md.
"""
import numpy as np

from .. import backend
from ..autograd import Function, register


def _broadcast_axes(shape, target):
    """Axes of ``target`` along which an array of ``shape`` was broadcast to ``target``."""
    lead = len(target) - len(shape)
    return tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and target[lead + i] != 1
    )


@register
class SumTo(Function):
    """z = x summed down to ``shape`` (undoes broadcasting)     dL/dx = broadcast_to(g, x.shape)

    The one helper that reduces a gradient back to an input's shape; the engine calls it."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        axes = _broadcast_axes(shape, x.shape)
        z = x.sum(axis=axes, keepdims=True) if axes else x
        return z.reshape(shape)

    def backward(self, g):
        return broadcast_to(g, self.in_shape)


@register
class BroadcastTo(Function):
    """z = x repeated along broadcast axes to ``shape``      dL/dx = sum_to(g, x.shape)"""

    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return backend.array_module(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {tuple(shape)}") from None

    def backward(self, g):
        return sum_to(g, self.in_shape)


@register
class Reshape(Function):
    """z = x with a new shape (same elements, row-major order)      dL/dx = reshape(g, x.shape)"""

    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {tuple(shape)}"
            ) from None

    def backward(self, g):
        return reshape(g, self.in_shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (the inverse of broadcasting)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape=shape)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return BroadcastTo.apply(x, shape=shape)


def expand(x, *shape):
    """PyTorch's expand: broadcast_to, where -1 keeps a dimension."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    return broadcast_to(x, shape)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    """A new shape with the same elements; one dimension may be -1 (inferred)."""
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


view = reshape
