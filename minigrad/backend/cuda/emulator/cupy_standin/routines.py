"""The stand-in's array routines: ``cupy.zeros``, ``cupy.where``, ``cupy.concatenate``, ...

Each is NumPy's function of the same name run on the device arrays' storage (core.call), so
the arithmetic is NumPy's; what is CuPy's is the boundary: device arrays in and out, host
arrays refused (``Unsupported type``), uploads only through ``array``/``asarray``, downloads
only through ``asnumpy`` and the array's own ``get``, all counted.  Only routines minigrad (and
its tests, benchmarks and examples) use are here, plus their obvious neighbours: a missing name
is an AttributeError, which is how a new dependence on CuPy shows up.
"""
import numpy as np

from . import transfers
from .core import _poisoned, _unsupported, call, ndarray, unwrap, upload, wrap

# ---------------------------------------------------------------------------------------------
# Creation
# ---------------------------------------------------------------------------------------------


def empty(shape, dtype=float, order="C"):
    """Uninitialised device memory (here: NaN, or -1 for integers)."""
    return ndarray._of(_poisoned(np.empty(shape, dtype=dtype, order=order)))


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return ndarray._of(_poisoned(np.empty_like(unwrap(a), dtype=dtype, order=order, shape=shape)))


def _created(np_fn):
    def fn(*args, **kwargs):
        return call(np_fn, args, kwargs)

    fn.__name__ = fn.__qualname__ = np_fn.__name__
    fn.__doc__ = f"As numpy.{np_fn.__name__}, on the device."
    return fn


zeros, ones, full, arange, linspace, eye, identity, tri = map(
    _created, (np.zeros, np.ones, np.full, np.arange, np.linspace, np.eye, np.identity, np.tri))
zeros_like, ones_like, full_like = map(_created, (np.zeros_like, np.ones_like, np.full_like))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    """A new device array: a copy of a device array, or host data uploaded (counted)."""
    if isinstance(obj, ndarray):
        out = ndarray._of(np.array(obj._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
        return out
    out = upload(obj, dtype=dtype, order=order if order in ("C", "F", "K", "A") else "K")
    return out if ndmin <= out.ndim else ndarray._of(np.array(out._a, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, blocking=False):
    """``a`` itself when it is a device array of that dtype; host data is uploaded (counted)."""
    if isinstance(a, ndarray):
        return a.astype(dtype, copy=False) if dtype is not None else a
    return upload(a, dtype=dtype, order=order or "K")


asanyarray = asarray


def _in_layout(a, dtype, order):
    """``a`` itself when it is a device array in that layout and dtype, else a copy that is."""
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    if a.flags[f"{order}_CONTIGUOUS"] and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return ndarray._of(np.array(a._a, dtype=dtype, order=order, copy=True))


def ascontiguousarray(a, dtype=None):
    """A C-contiguous device array (``a`` itself when it already is one)."""
    return _in_layout(a, dtype, "C")


def asfortranarray(a, dtype=None):
    return _in_layout(a, dtype, "F")


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A host (NumPy) array: a device array is downloaded (counted), anything else converted."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    """The stand-in when any argument is a device array, else NumPy (cupy.get_array_module)."""
    import sys  # noqa: PLC0415

    if any(isinstance(a, ndarray) for a in args):
        return sys.modules[__name__.rsplit(".", 1)[0]]
    return np


# ---------------------------------------------------------------------------------------------
# Routines on device arrays: NumPy's, device arrays in and out
# ---------------------------------------------------------------------------------------------


def _routine(np_fn, name=None):
    def fn(*args, **kwargs):
        return call(np_fn, args, kwargs)

    fn.__name__ = fn.__qualname__ = name or np_fn.__name__
    fn.__doc__ = f"As numpy.{fn.__name__}, on device arrays."
    return fn


_NAMES = """reshape ravel transpose moveaxis swapaxes squeeze expand_dims broadcast_to broadcast_arrays
    concatenate stack hstack vstack split array_split tile repeat flip roll pad tril triu diagonal
    matmul dot tensordot einsum outer inner cumsum cumprod diff sort argsort searchsorted
    sum prod mean var std max min amax amin argmax argmin any all clip around round
    isclose allclose array_equal atleast_1d atleast_2d atleast_3d""".split()
for _name in _NAMES:
    globals()[_name] = _routine(getattr(np, _name))
del _name


def where(condition, x=None, y=None):
    """``where(c, x, y)`` elementwise; ``where(c)`` alone is nonzero (a counted sync)."""
    if x is None and y is None:
        return nonzero(condition)
    for a in (condition, x, y):
        if isinstance(a, (np.ndarray, list)):
            raise _unsupported(a)
    return call(np.where, (condition, x, y), {})


def nonzero(a):
    """The indices of the nonzero elements: their number decides the result's size, so the
    host waits for it (a counted sync), as on a GPU."""
    transfers.note("sync", "nonzero: the host reads how many are nonzero")
    return wrap(np.nonzero(unwrap(a)))


def count_nonzero(a, axis=None):
    """A device array, also for the total (CuPy never returns a host number here)."""
    return wrap(np.asarray(np.count_nonzero(unwrap(a), axis=axis)))


def copyto(dst, src, casting="same_kind", where=None):
    if not isinstance(dst, ndarray):
        raise _unsupported(dst)
    np.copyto(dst._a, unwrap(src), casting=casting, where=True if where is None else unwrap(where))


def take(a, indices, axis=None, out=None, mode=None):
    """``a.take(indices, axis)``: out-of-range indices wrap around (CuPy's only mode)."""
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    idx = unwrap(indices)
    n = a.size if axis is None else a.shape[axis]
    if n:
        idx = np.asarray(idx) % n
    result = np.take(a._a, idx, axis=axis, out=None if out is None else out._a)
    return out if out is not None else wrap(result)


def may_share_memory(a, b, max_work=None):
    return bool(np.may_share_memory(unwrap(a), unwrap(b)))


def shares_memory(a, b, max_work=None):
    return bool(np.shares_memory(unwrap(a), unwrap(b)))


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None):
    """The distinct values: their number decides the size (a counted sync)."""
    transfers.note("sync", "unique: the host reads how many distinct values there are")
    return call(np.unique, (ar,), dict(return_index=return_index, return_inverse=return_inverse,
                                         return_counts=return_counts, axis=axis))


def ndim(a):
    return a.ndim


def shape(a):
    return a.shape


def size(a, axis=None):
    return a.size if axis is None else a.shape[axis]
