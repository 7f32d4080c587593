"""Sorting: ``sort``, ``argsort`` and ``topk`` along one dimension (PyTorch's semantics).

Sorting is a permutation of each row, so it needs no op of its own: the order (the
indices, integers, with no gradient) is computed first, and the values are picked with
``gather``, whose backward scatters each gradient back to the position its value came from.
That is exactly the derivative of a permutation (docs/derivations/sort.md); ``topk`` keeps
the first k of the order, and the k picked elements receive the gradient, the others 0.

The order is *stable*: equal values keep their original order (ascending and descending
alike), so the result, indices included, is the same on every device.  NaN sorts as the
largest value, as in PyTorch.
"""
import numbers
from collections import namedtuple

from .. import backend
from ..tensor import Tensor
from .shape import _axis, gather

#: What ``sort`` and ``topk`` return (``torch.return_types.sort`` / ``topk``): a named pair.
SortResult = namedtuple("SortResult", ["values", "indices"])


def _order(a, axis, descending):
    """Indices that sort the array ``a`` along ``axis``, stably.

    Descending and stable: sort the reversed array ascending (equal values now come in
    reverse original order), reverse that order, and map the positions back: equal values
    keep their original order, and NaN (last when ascending) comes first."""
    xp = backend.array_module(a)
    if not descending:
        return xp.argsort(a, axis=axis, kind="stable")
    last = a.shape[axis] - 1
    return last - xp.flip(xp.argsort(xp.flip(a, axis), axis=axis, kind="stable"), axis)


def _dim(x, dim, op):
    return _axis(dim, max(x.ndim, 1), op, x.shape)


def argsort(x, dim=-1, descending=False, *, stable=False):
    """Indices (int64) that sort ``x`` along ``dim``; always stable (``stable`` is accepted
    for PyTorch's signature: a stable order is one of the orders PyTorch may return)."""
    d = _dim(x, dim, "argsort")
    if x.ndim == 0:
        return Tensor._wrap(backend.array_module(x.array).zeros((), dtype="int64"))
    return Tensor._wrap(_order(x.array, d, bool(descending)).astype("int64", copy=False))


def sort(x, dim=-1, descending=False, *, stable=False):
    """``(values, indices)``: ``x`` sorted along ``dim`` (ascending unless ``descending``)
    and where each value came from.  The gradient goes back to those positions."""
    indices = argsort(x, dim, descending)
    if x.ndim == 0:
        return SortResult(gather(x, 0, indices), indices)
    return SortResult(gather(x, dim, indices), indices)


def topk(x, k, dim=-1, largest=True, sorted=True):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) elements
    along ``dim``, largest first.  The picked elements receive the gradient, the rest 0.
    (``sorted=False`` allows any order in PyTorch; here the result is always sorted.)"""
    d = _dim(x, dim, "topk")
    n = x.shape[d] if x.ndim else 1
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k <= n:
        raise ValueError(f"topk: k must be an int in [0, {n}] (the size of dimension {dim} of a tensor "
                         f"of shape {x.shape}), got {k!r}")
    if x.ndim == 0:
        return sort(x)
    order = _order(x.array, d, bool(largest))
    index = (slice(None),) * d + (slice(0, int(k)),)
    indices = Tensor._wrap(order[index].astype("int64", copy=False))
    return SortResult(gather(x, d, indices), indices)
