"""Resizing: ``interpolate`` (PyTorch's ``F.interpolate``) with nearest and (bi/tri)linear modes.

Every mode is *separable*: resizing an image is resizing its rows, then its columns.  Along one
axis of input length n and output length m, each output position j reads the input at a
source coordinate s_j (PyTorch's formulas, below) and

    nearest:   y_j = x[i_j]                                 i_j = min(floor(s_j), n - 1)
    linear:    y_j = (1 - l_j) x[i_j] + l_j x[i_j + 1]       i_j = floor(s_j), l_j = s_j - i_j

So each axis is one or two gathers (``getitem`` with an index array) and a weighted sum, and
the gradient needs no code of its own: the gathers' backward adds every output gradient back
onto the input positions it was read from, with the same weights (the transpose of the
interpolation matrix; docs/derivations/interpolate.md).  Source coordinates, with
scale = n / m (or 1 / scale_factor when that is given):

    nearest:                     s_j = j * scale                  (in float32, as PyTorch)
    nearest-exact:               s_j = (j + 1/2) * scale
    linear, align_corners=False: s_j = max((j + 1/2) * scale - 1/2, 0)    pixel centres line up
    linear, align_corners=True:  s_j = j * (n - 1) / (m - 1)              the corner pixels line up

PyTorch's own exceptions, kept so the numbers agree: a linear mode leaves an axis whose length
does not change as it is (s_j = j), and "nearest" on 4-D inputs reads j when m = n and j // 2
when m = 2n, whatever the scale_factor.
"""
import math
import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor
from .shape import Getitem

_LINEAR = {"linear": 3, "bilinear": 4, "trilinear": 5}
_MODES = ("nearest", "nearest-exact") + tuple(_LINEAR)


def _per_axis(value, k, name):
    """``size`` or ``scale_factor``: one value for every spatial axis, or one each."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * k
    if len(values) != k:
        raise ValueError(f"interpolate: {name} must have {k} entries for an input with {k} spatial "
                         f"dimension(s), got {value!r}")
    return values


def _output_sizes(x, size, scale_factor, k):
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        sizes = _per_axis(size, k, "size")
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"interpolate: size must hold positive ints, got {size!r}")
        return tuple(int(s) for s in sizes), (None,) * k
    scales = _per_axis(scale_factor, k, "scale_factor")
    if not all(isinstance(s, numbers.Real) and not isinstance(s, bool) and s > 0 for s in scales):
        raise ValueError(f"interpolate: scale_factor must hold positive numbers, got {scale_factor!r}")
    sizes = tuple(int(math.floor(n * float(s))) for n, s in zip(x.shape[2:], scales))
    if min(sizes) < 1:
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} makes an empty output from shape {x.shape}")
    return sizes, tuple(float(s) for s in scales)


def _nearest_index(n, m, scale_factor, exact, shortcuts):
    """Input position read by each of the m outputs, with PyTorch's arithmetic (the scale in
    float32; "nearest" multiplies in float32), so that the floor lands where PyTorch's does.
    ``shortcuts``: PyTorch's kernel for 4-D inputs copies when m = n and halves the index when
    m = 2n, whatever the scale_factor (its 3-D and 5-D kernels use the formula)."""
    j = np.arange(m)
    if shortcuts and not exact and m in (n, 2 * n):
        return j if m == n else j // 2
    scale = np.float32(1.0 / scale_factor) if scale_factor else np.float32(n) / np.float32(m)
    s = (j + 0.5) * np.float64(scale) if exact else j.astype(np.float32) * scale
    return np.minimum(np.floor(s).astype(np.int64), n - 1)


def _linear_weights(n, m, scale_factor, align_corners):
    """(i0, i1, l): each output j is (1 - l_j) x[i0_j] + l_j x[i1_j] (float64)."""
    j = np.arange(m, dtype=np.float64)
    if align_corners:
        s = j * ((n - 1) / (m - 1) if m > 1 else 0.0)
    else:
        scale = 1.0 / scale_factor if scale_factor else n / m
        s = np.maximum((j + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(s).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, s - i0


def _take(x, axis, index):
    """x[..., index, ...] along ``axis`` (a gather: its backward adds up repeated reads).
    The indices are in range by construction, so getitem's bounds check (which on the GPU
    would read them back to the host) is skipped, as in F.pad's gathers."""
    xp = backend.array_module(x.array)
    return Getitem.apply(x, stages=((slice(None),) * axis + (xp.asarray(index),),), advanced=True)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dimensions of ``input`` (N, C, L), (N, C, H, W) or (N, C, D, H, W) to
    ``size``, or by ``scale_factor`` (output length floor(n * scale_factor)), as PyTorch's
    ``F.interpolate``.  Modes: "nearest", "nearest-exact" (any of the three ranks), "linear"
    (3-D), "bilinear" (4-D), "trilinear" (5-D), with ``align_corners`` (linear modes only,
    default False).  The source coordinates are PyTorch's (module docstring), so the results
    are PyTorch's.  ``recompute_scale_factor=True`` maps positions with n / m instead of
    1 / scale_factor.  Not available: "bicubic", "area", ``antialias=True``."""
    x = input
    if not isinstance(x, Tensor):
        raise TypeError(f"interpolate: expected a Tensor, got {type(x).__name__}")
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode {mode!r} is not supported (supported: {', '.join(_MODES)})")
    if antialias:
        raise ValueError("interpolate: antialias=True is not supported")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"interpolate: expected a 3-D, 4-D or 5-D input (N, C, spatial...), got shape {x.shape}")
    if mode in _LINEAR and x.ndim != _LINEAR[mode]:
        raise ValueError(f"interpolate: mode {mode!r} needs a {_LINEAR[mode]}-D input, got shape {x.shape}")
    if align_corners is not None and mode not in _LINEAR:
        raise ValueError("interpolate: align_corners can only be set with the linear modes "
                         f"(linear, bilinear, trilinear), not {mode!r}")
    if x.dtype.kind != "f":
        raise TypeError(f"interpolate: expected a floating-point tensor, got dtype {x.dtype}")
    k = x.ndim - 2
    sizes, scales = _output_sizes(x, size, scale_factor, k)
    if recompute_scale_factor:
        scales = (None,) * k
    xp = backend.array_module(x.array)
    for axis, (n, m, sf) in enumerate(zip(x.shape[2:], sizes, scales), start=2):
        if mode in _LINEAR:
            if m == n:  # PyTorch copies an axis whose length stays, whatever the scale_factor
                continue
            i0, i1, lam = _linear_weights(n, m, sf, bool(align_corners))
            shape = (m,) + (1,) * (x.ndim - axis - 1)  # the weights broadcast along this axis
            w1 = Tensor._wrap(xp.asarray(lam.reshape(shape), dtype=x.dtype))
            w0 = Tensor._wrap(xp.asarray((1 - lam).reshape(shape), dtype=x.dtype))
            x = _take(x, axis, i0) * w0 + _take(x, axis, i1) * w1
        else:
            index = _nearest_index(n, m, sf, mode == "nearest-exact", shortcuts=x.ndim == 4)
            if not (m == n and (index == np.arange(m)).all()):  # (reading x[j] for every j: nothing to do)
                x = _take(x, axis, index)
    if x is input:  # no axis changed: still a new tensor, as PyTorch's
        from .elementwise import clone

        x = clone(x)
    return x


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """``F.upsample``: the older name of ``interpolate``."""
    return interpolate(input, size, scale_factor, mode, align_corners)
