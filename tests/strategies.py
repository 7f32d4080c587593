"""Shared hypothesis strategies for op tests.

    from tests.strategies import shapes, arrays, broadcast_pair, tensors, layouts

* ``shapes()``: array shapes including 0-d ``()``, size-1 and (optionally) empty dimensions.
* ``broadcast_pair()``: two shapes that broadcast together (NumPy rules), e.g. ``(3, 1)``, ``(4,)``.
* ``arrays(shape)``: float arrays with values in ``[low, high]`` kept ``margin`` away from the
  ``kinks`` (points where the op is not differentiable: 0 for abs, the bounds of clip) and
  optionally positive (``min_abs`` away from 0, for log, sqrt, division).
* every array comes in a random memory layout (``layouts``): C-contiguous, transposed
  (Fortran order) or a strided slice of a bigger buffer, with identical values, so ops see
  non-contiguous inputs without the test having to think about it.
* ``tensors(...)``: the same as Tensors (float64 by default, the dtype of gradient checks).
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg

LAYOUTS = ("C", "F", "strided")


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4, allow_empty=False):
    """Shapes with ``min_dims``..``max_dims`` dimensions; sides 0 too when ``allow_empty``."""
    lo = 0 if allow_empty else min_side
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=lo, max_side=max_side)


def broadcast_pair(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Two shapes that broadcast together; hypothesis mixes in 1s and missing leading axes."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    ).map(lambda bs: bs.input_shapes)


def relayout(a, layout):
    """The same values as ``a`` in another memory layout: "C" (a copy), "F" (transposed
    memory, non-contiguous for ndim >= 2) or "strided" (every other element of a bigger
    buffer, non-contiguous whenever the last axis has more than one element)."""
    if layout == "C" or a.ndim == 0:
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.full(a.shape[:-1] + (2 * a.shape[-1],), np.nan, dtype=a.dtype)
        view = big[..., ::2]
        view[...] = a
        return view
    raise ValueError(f"unknown layout {layout!r}")


def layouts():
    return st.sampled_from(LAYOUTS)


def _elements(low, high, kinks, margin, min_abs):
    el = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    kinks = tuple(kinks)
    if min_abs:
        kinks = kinks + (0.0,)
        margin = max(margin, min_abs)
    if kinks:
        el = el.filter(lambda v: all(abs(v - k) >= margin for k in kinks))
    return el


@st.composite
def arrays(draw, shape, dtype=np.float64, low=-3.0, high=3.0, kinks=(), margin=0.1,
           min_abs=0.0, layout=None):
    """A float array of ``shape`` (a tuple or a strategy of tuples) in a random layout.

    Values lie in ``[low, high]``, at least ``margin`` from every point in ``kinks`` and,
    when ``min_abs`` > 0, at least ``min_abs`` away from zero."""
    if not isinstance(shape, tuple):
        shape = draw(shape)
    a = draw(hnp.arrays(np.float64, shape, elements=_elements(low, high, kinks, margin, min_abs)))
    a = a.astype(dtype)
    return relayout(a, layout or draw(layouts()))


@st.composite
def tensors(draw, shape, dtype=np.float64, requires_grad=False, **kwargs):
    """A Tensor wrapping ``arrays(shape, dtype, **kwargs)`` (the array keeps its layout)."""
    a = draw(arrays(shape, dtype=dtype, **kwargs))
    t = mg.from_numpy(a)
    if requires_grad:
        t.requires_grad_(True)
    return t


@st.composite
def separated_pair(draw, shape_pair=None, low=-3.0, high=3.0, gap=0.25):
    """Two arrays of broadcastable shapes whose broadcast values never come within ``gap``
    of each other (so max/min of them has no ties): x on the grid k/2 + gap, y on k/2."""
    sx, sy = draw(shape_pair if shape_pair is not None else broadcast_pair())
    n = int(high / 0.5)
    grid = st.integers(-n, n - 1)
    x = draw(hnp.arrays(np.int64, sx, elements=grid)) * 0.5 + gap
    y = draw(hnp.arrays(np.int64, sy, elements=grid)) * 0.5
    return relayout(x, draw(layouts())), relayout(y, draw(layouts()))


def is_contiguous(a):
    return a.flags.c_contiguous
