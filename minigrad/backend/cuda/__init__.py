"""The CUDA kernel table: reference.py, with the project's own CUDA C kernels in its place.

Every name of reference.py is here with the same semantics (``from .reference import *``).
The functions below override them with kernels written for this project, one file per family
in ``minigrad/backend/cuda/kernels/*.cu`` (docs/kernels.md explains how each maps threads to data).
Plain broadcasting arithmetic stays on the array library.

One launch helper, ``_launch``, runs a kernel on whatever the arrays are:

* CuPy arrays: the family's source is compiled once by NVRTC (``cupy.RawModule``), cached, and
  the kernel runs on the GPU;
* NumPy arrays: the same source runs on the CPU through ``emulator.Module`` (blocks one
  after the other, threads as fibers).  That is how CI tests this CUDA C without a GPU:
  ``cuda_kernels.relu(numpy_array)`` runs the real kernel, emulated.

CuPy is imported only when a CuPy array arrives (importing minigrad never needs it).

GPU hygiene: inputs are made contiguous before a kernel indexes them; sizes and indices are
64-bit inside the kernels; nothing here reads a value back from the GPU or copies to it (no
``.item()``, no device-to-host copies; index ranges are checked by the check_indices kernels,
which trap on a bad index; the optimizers' pointer tables are kernel arguments), so a training
step never waits on the host.  With ``MINIGRAD_CUDA_SYNC=1`` every launch is followed by a
synchronize, and a failing kernel is named in the error.

The arrays are CuPy's on a GPU, or the CuPy stand-in's on the emulated device
(MINIGRAD_CUDA_EMULATOR=1), whose RawModule runs the same source in the emulator.

Inputs a kernel does not cover (other dtypes, inconsistent shapes) go to the reference
function, which computes the answer or raises the contract's error.
"""
import math
from pathlib import Path

import numpy as np

from ... import _env
from .. import array_module
from .. import reference as _ref
from ..reference import *  # noqa: F401,F403  (the whole table; overridden below)
from ..reference import __all__  # noqa: F401  (exactly reference's names)
from ..reference import channels_last, is_channels_last

# ======================================================================================
# Sources, modules, launches
# ======================================================================================

KERNEL_DIR = Path(__file__).with_name("kernels")
FAMILIES = ("elementwise", "softmax", "norm", "conv", "pool", "dropout", "embedding", "optim", "gemm",
            "attention", "rnn")
NVRTC_OPTIONS = ("--std=c++17",)


def kernel_source(family):
    """The CUDA C of one kernel family as one self-contained text (no include path), for NVRTC
    and the emulator: common.cuh pasted where it is included, and each ``#include "<other>.cu"``
    of another family replaced by that file without its copy of common.cuh (a family may use
    another's device functions: attention.cu takes the Philox generator of the dropout mask
    from dropout.cu)."""
    text = (KERNEL_DIR / f"{family}.cu").read_text()
    for other in FAMILIES:
        line = f'#include "{other}.cu"\n'
        if line in text:
            body = (KERNEL_DIR / f"{other}.cu").read_text().replace('#include "common.cuh"\n', "", 1)
            text = text.replace(line, body, 1)
    common = (KERNEL_DIR / "common.cuh").read_text().replace("#pragma once\n", "")
    return text.replace('#include "common.cuh"\n', common, 1)


_modules = {}    # (backend, device, family) -> compiled module
_functions = {}  # (backend, device, kernel name) -> launchable function


def _device_key(xp):
    return -1 if xp is np else xp.cuda.Device().id


def _function(xp, family, name):
    key = (xp.__name__, _device_key(xp), name)
    fn = _functions.get(key)
    if fn is None:
        mkey = (xp.__name__, key[1], family)
        module = _modules.get(mkey)
        if module is None:
            if xp is np:
                from . import emulator  # noqa: PLC0415  (only when emulating)

                module = emulator.Module(kernel_source(family))
            else:
                module = xp.RawModule(code=kernel_source(family), options=NVRTC_OPTIONS)
            _modules[mkey] = module
        fn = _functions[key] = module.get_function(name)
    return fn


_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _sync_each_launch():
    return _env.flag("MINIGRAD_CUDA_SYNC")


def _launch(xp, family, kernel, dtype, grid, block, args):
    """Run ``<kernel>_f32`` / ``<kernel>_f64`` (by dtype; the bare name when dtype is None) of
    ``family``.cu over ``grid`` x ``block`` threads.  ``args`` are arrays (passed as device
    pointers) and NumPy scalars (their type is the C parameter's type).  Nothing to do for
    an empty grid."""
    name = kernel if dtype is None else f"{kernel}_{_SUFFIX[np.dtype(dtype)]}"
    grid, block = tuple(int(g) for g in grid), tuple(int(b) for b in block)
    if min(grid) <= 0:
        return
    fn = _function(xp, family, name)
    try:
        fn(grid, block, tuple(args))
        if xp is not np and _sync_each_launch():
            xp.cuda.get_current_stream().synchronize()
    except Exception as e:
        raise RuntimeError(f"CUDA kernel {name} ({family}.cu, grid {grid}, block {block}) failed: {e}") from e


_BLOCK = 256                 # threads per block for the flat (grid-stride) kernels
_EMULATED_MAX_BLOCKS = 4     # the emulator runs blocks one by one: few blocks, longer strides
_max_blocks_cache = {}


def _max_blocks(xp):
    """Blocks for a grid-stride kernel: enough to fill the GPU several times over (32 per
    multiprocessor), no more: the loop inside the kernel covers the rest."""
    if xp is np:
        return _EMULATED_MAX_BLOCKS
    dev = xp.cuda.Device()
    n = _max_blocks_cache.get(dev.id)
    if n is None:
        n = _max_blocks_cache[dev.id] = 32 * dev.attributes["MultiProcessorCount"]
    return n


def _blocks(xp, work, per_block=_BLOCK):
    """Grid size for ``work`` items handled ``per_block`` per block, capped (grid-stride)."""
    return min(-(-int(work) // per_block), _max_blocks(xp))


def _flat_launch(xp, family, kernel, dtype, work, args):
    """A 1-D grid-stride launch over ``work`` items, _BLOCK threads per block."""
    _launch(xp, family, kernel, dtype, (_blocks(xp, work),), (_BLOCK,), args)


def _float_dtype(*arrays):
    """The common dtype of the arrays (None entries skipped) when it is float32 or float64
    and they are all NumPy or all CuPy arrays; else None (then the reference runs)."""
    arrays = [a for a in arrays if a is not None]
    dtype, xp = arrays[0].dtype, array_module(arrays[0])
    for a in arrays:
        if not hasattr(a, "dtype") or a.dtype != dtype or array_module(a) is not xp:
            return None
    return dtype if dtype in _SUFFIX else None


def _address(a):
    """The device address of an array's first element (host address for NumPy arrays)."""
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data.ptr


_i32, _i64 = np.int32, np.int64

# ======================================================================================
# Elementwise activations (elementwise.cu)
# ======================================================================================


def _flat_operands(*arrays):
    """Flat contiguous views of same-shaped arrays in one memory order, a flat output in that
    order, and the output with the arrays' logical shape.  Channels-last arrays (conv outputs)
    stay channels-last (the output too); anything else is made C-contiguous."""
    xp, first = array_module(arrays[0]), arrays[0]
    if first.ndim == 4 and not first.flags.c_contiguous and is_channels_last(first):
        out = xp.empty(first.transpose(0, 2, 3, 1).shape, dtype=first.dtype)
        flats = [channels_last(a).reshape(-1) for a in arrays]  # free for channels-last arrays
        return flats, out.reshape(-1), out.transpose(0, 3, 1, 2)
    out = xp.empty(first.shape, dtype=first.dtype)
    return [xp.ascontiguousarray(a).reshape(-1) for a in arrays], out.reshape(-1), out


def _elementwise(kernel, arrays, params, fallback):
    """out = kernel(*arrays, *params) elementwise, one 16-byte pack per thread and step."""
    dtype = _float_dtype(*arrays)
    if dtype is None:
        return fallback()
    xp = array_module(arrays[0])
    flats, out_flat, out = _flat_operands(*arrays)
    n = out_flat.size
    _flat_launch(xp, "elementwise", kernel, dtype, -(-n // 4),
                 (*flats, out_flat, _i64(n), *(dtype.type(p) for p in params)))
    return out


def relu(x):
    return _elementwise("relu", (x,), (), lambda: _ref.relu(x))


def relu_backward(g, y):
    _ref._same_shape("relu_backward", g=g, y=y)
    return _elementwise("relu_backward", (g, y), (), lambda: _ref.relu_backward(g, y))


def leaky_relu(x, negative_slope):
    return _elementwise("leaky_relu", (x,), (negative_slope,), lambda: _ref.leaky_relu(x, negative_slope))


def leaky_relu_backward(g, x, negative_slope):
    _ref._same_shape("leaky_relu_backward", g=g, x=x)
    return _elementwise("leaky_relu_backward", (g, x), (negative_slope,),
                        lambda: _ref.leaky_relu_backward(g, x, negative_slope))


def sigmoid(x):
    return _elementwise("sigmoid", (x,), (), lambda: _ref.sigmoid(x))


def sigmoid_backward(g, y):
    _ref._same_shape("sigmoid_backward", g=g, y=y)
    return _elementwise("sigmoid_backward", (g, y), (), lambda: _ref.sigmoid_backward(g, y))


def tanh(x):
    return _elementwise("tanh", (x,), (), lambda: _ref.tanh(x))


def tanh_backward(g, y):
    _ref._same_shape("tanh_backward", g=g, y=y)
    return _elementwise("tanh_backward", (g, y), (), lambda: _ref.tanh_backward(g, y))


def gelu(x, approximate="none"):
    _ref._check_approximate("gelu", approximate)
    kernel = "gelu_tanh" if approximate == "tanh" else "gelu_erf"
    return _elementwise(kernel, (x,), (), lambda: _ref.gelu(x, approximate))


def gelu_backward(g, x, approximate="none"):
    _ref._check_approximate("gelu_backward", approximate)
    _ref._same_shape("gelu_backward", g=g, x=x)
    kernel = "gelu_tanh_backward" if approximate == "tanh" else "gelu_erf_backward"
    return _elementwise(kernel, (g, x), (), lambda: _ref.gelu_backward(g, x, approximate))


def silu(x):
    return _elementwise("silu", (x,), (), lambda: _ref.silu(x))


def silu_backward(g, x):
    _ref._same_shape("silu_backward", g=g, x=x)
    return _elementwise("silu_backward", (g, x), (), lambda: _ref.silu_backward(g, x))


# ======================================================================================
# Row-wise kernels: the softmax family (softmax.cu), layer norm (norm.cu)
# ======================================================================================

_WARP_ROW_MAX = 1024  # rows up to this long: one warp per row; longer rows: one block per row
_ROW_BLOCK = 256      # threads per block in both cases (8 warps = 8 rows, or 1 row)


def _row_launch(xp, family, kernel, dtype, m, n, args):
    """Launch a row-team kernel over an (m, n) matrix; the kernel's last argument says
    whether a block (long rows) or a warp (short rows) shares each row."""
    per_block = n > _WARP_ROW_MAX
    rows_per_block = 1 if per_block else _ROW_BLOCK // 32
    _launch(xp, family, kernel, dtype, (_blocks(xp, m, rows_per_block),), (_ROW_BLOCK,),
            (*args, _i32(per_block)))


def _as_rows(x, axis):
    """x with ``axis`` moved last, C-contiguous, as an (m, n) matrix; and the moved shape."""
    xp = array_module(x)
    moved = xp.moveaxis(x, axis, -1)
    n = moved.shape[-1]
    return xp.ascontiguousarray(moved).reshape(math.prod(moved.shape[:-1]), n), moved.shape


def _softmax_rows(kernel, x, axis, fallback):
    dtype = _float_dtype(x)
    if dtype is None or x.ndim == 0:
        return fallback()
    xp = array_module(x)
    rows, shape = _as_rows(x, axis)
    m, n = rows.shape
    out = xp.empty_like(rows)
    _row_launch(xp, "softmax", kernel, dtype, m, n, (rows, out, _i64(m), _i64(n)))
    return xp.moveaxis(out.reshape(shape), -1, axis)


def _softmax_backward_rows(kernel, g, y, axis, fallback):
    dtype = _float_dtype(g, y)
    if dtype is None or g.ndim == 0:
        return fallback()
    xp = array_module(g)
    (g_rows, shape), (y_rows, _) = _as_rows(g, axis), _as_rows(y, axis)
    m, n = g_rows.shape
    dx = xp.empty_like(g_rows)
    _row_launch(xp, "softmax", kernel, dtype, m, n, (g_rows, y_rows, dx, _i64(m), _i64(n)))
    return xp.moveaxis(dx.reshape(shape), -1, axis)


def softmax(x, axis):
    return _softmax_rows("softmax", x, axis, lambda: _ref.softmax(x, axis))


def log_softmax(x, axis):
    return _softmax_rows("log_softmax", x, axis, lambda: _ref.log_softmax(x, axis))


def softmax_backward(g, y, axis):
    _ref._same_shape("softmax_backward", g=g, y=y)
    return _softmax_backward_rows("softmax_backward", g, y, axis, lambda: _ref.softmax_backward(g, y, axis))


def log_softmax_backward(g, y, axis):
    _ref._same_shape("log_softmax_backward", g=g, y=y)
    return _softmax_backward_rows("log_softmax_backward", g, y, axis,
                                  lambda: _ref.log_softmax_backward(g, y, axis))


def logsumexp(x, axes):
    """The reduced axes are moved last and flattened into rows; one row reduction each."""
    axes = tuple(axes)
    dtype = _float_dtype(x)
    if dtype is None or len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
        return _ref.logsumexp(x, axes)
    xp = array_module(x)
    kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    moved = xp.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    n = math.prod(x.shape[a] for a in axes)
    m = math.prod(kept)
    rows = xp.ascontiguousarray(moved).reshape(m, n)
    out = xp.empty(m, dtype=dtype)
    _row_launch(xp, "softmax", "logsumexp", dtype, m, n, (rows, out, _i64(m), _i64(n)))
    return out.reshape(kept)


def _class_weight(x, weight):
    """(weight or a stand-in pointer, its sum (a 1-element device array: no host read), has_weight)."""
    if weight is None:
        return x, x, 0
    return weight, weight.sum(keepdims=True), 1


def _cross_entropy_ok(x, target, weight):
    """True when the kernels take these inputs: float logits (N, C), int labels (N,) and a
    (C,) weight of the same dtype (else the reference computes or raises)."""
    return (_float_dtype(x, weight) is not None and x.ndim == 2 and hasattr(target, "dtype")
            and target.dtype.kind in "iu" and target.shape == x.shape[:1]
            and array_module(target) is array_module(x)
            and (weight is None or weight.shape == x.shape[1:]))


def cross_entropy_forward(x, target, weight, ignore_index, label_smoothing):
    if not _cross_entropy_ok(x, target, weight):
        return _ref.cross_entropy_forward(x, target, weight, ignore_index, label_smoothing)
    xp, dtype = array_module(x), x.dtype
    x = xp.ascontiguousarray(x)
    target = xp.ascontiguousarray(target, dtype=np.int64)
    n, c = x.shape
    losses, sumexp = xp.empty(n, dtype=dtype), xp.empty(n, dtype=dtype)
    w, wsum, has_w = _class_weight(x, weight)
    _row_launch(xp, "softmax", "cross_entropy_forward", dtype, n, c,
                (x, target, xp.ascontiguousarray(w), wsum, _i32(has_w), _i64(n), _i64(c),
                 _i64(ignore_index), dtype.type(label_smoothing), losses, sumexp))
    return losses, sumexp


def cross_entropy_backward(x, target, sumexp, grow, weight, ignore_index, label_smoothing):
    if not (_cross_entropy_ok(x, target, weight) and _float_dtype(x, sumexp, grow) is not None
            and sumexp.shape == x.shape[:1] and grow.shape == x.shape[:1]):
        return _ref.cross_entropy_backward(x, target, sumexp, grow, weight, ignore_index, label_smoothing)
    xp, dtype = array_module(x), x.dtype
    x = xp.ascontiguousarray(x)
    target = xp.ascontiguousarray(target, dtype=np.int64)
    n, c = x.shape
    dx = xp.empty((n, c), dtype=dtype)
    w, wsum, has_w = _class_weight(x, weight)
    _row_launch(xp, "softmax", "cross_entropy_backward", dtype, n, c,
                (x, target, xp.ascontiguousarray(sumexp), xp.ascontiguousarray(grow),
                 xp.ascontiguousarray(w), wsum, _i32(has_w), _i64(n), _i64(c),
                 _i64(ignore_index), dtype.type(label_smoothing), dx))
    return dx


# ======================================================================================
# Normalization (norm.cu)
# ======================================================================================

# Per-channel sums are cut into at most _MAX_PARTS chunks (partial kernel), merged in chunk
# order (finalize kernel).  The chunking depends on the shape only, so results are the same
# bits on every GPU.
_MAX_PARTS = 128
_MIN_CHUNK_PLANES = 4096  # elements of one channel per block (NCHW)
_MIN_CHUNK_ROWS = 64      # rows per block (channels-last / 2-D: 32 columns x 64 rows)
_COL_TILE, _COL_ROWS = 32, 8  # block shape of the columns kernels (norm.cu)


def _chunking(count, minimum):
    """(chunk, parts): ``count`` items cut into ``parts`` chunks of ``chunk`` (the last shorter)."""
    chunk = max(minimum, -(-count // _MAX_PARTS))
    return chunk, -(-count // chunk)


class _ChannelLayout:
    """How a batch-norm input (N, C) or (N, C, H, W) sits in memory, for the kernels:
    'planes' (NCHW: (A, C, B) = (N, C, H*W), B > 1) or 'columns' (an (R, C) row-major matrix:
    2-D inputs, channels-last inputs, and NCHW with H*W = 1)."""

    def __init__(self, x):
        self.shape, self.c = x.shape, x.shape[1]
        self.channels_last = x.ndim == 4 and not x.flags.c_contiguous and is_channels_last(x)
        self.b = 1 if (x.ndim == 2 or self.channels_last) else x.shape[2] * x.shape[3]
        self.count = x.size // self.c if self.c else 0  # elements per channel (R)

    def arrange(self, a):
        """``a`` (shaped like x) as the contiguous array the kernels index."""
        return channels_last(a) if self.channels_last else array_module(a).ascontiguousarray(a)

    def empty(self, like):
        """(contiguous output the kernels write, its logical (N, C, ...) view) in this layout."""
        shape = (like.shape[0],) + like.shape[2:] + (self.c,) if self.channels_last else like.shape
        out = array_module(like).empty(shape, dtype=like.dtype)
        return out, (out.transpose(0, 3, 1, 2) if self.channels_last else out)

    def reduce(self, xp, kernel, dtype, fields, inputs):
        """Per-channel partial states of ``kernel`` (bn_stats / bn_grad): (partials, parts)."""
        c, count = self.c, self.count
        if self.b > 1:  # planes
            chunk, parts = _chunking(count, _MIN_CHUNK_PLANES)
            partial = xp.empty((parts, c, fields), dtype=dtype)
            _launch(xp, "norm", kernel + "_planes", dtype, (c, parts), (_BLOCK,),
                    (*inputs, partial, _i64(self.shape[0]), _i64(c), _i64(self.b), _i64(chunk)))
        else:
            chunk, parts = _chunking(count, _MIN_CHUNK_ROWS)
            partial = xp.empty((parts, c, fields), dtype=dtype)
            _launch(xp, "norm", kernel + "_columns", dtype, (-(-c // _COL_TILE), parts),
                    (_COL_TILE, _COL_ROWS), (*inputs, partial, _i64(count), _i64(c), _i64(chunk)))
        return partial, parts


def _batch_norm_ok(x, *vectors):
    """x (N, C) or (N, C, H, W) with (C,) vectors (or None), one float dtype."""
    return (_float_dtype(x, *vectors) is not None and x.ndim in (2, 4)
            and all(v.shape == x.shape[1:2] for v in vectors if v is not None))


def _vector(xp, v, stand_in):
    """A (C,) parameter as a contiguous array, or ``stand_in`` (never read) when it is None."""
    return stand_in if v is None else xp.ascontiguousarray(v)


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    stats_ok = mean is None and var is None or (
        mean is not None and var is not None and x.ndim >= 2 and mean.shape == var.shape == x.shape[1:2])
    if not (_batch_norm_ok(x, weight, bias) and stats_ok) or (mean is None and x.size == 0):
        return _ref.batch_norm_forward(x, weight, bias, eps, mean, var)
    c = x.shape[1]
    xp, dtype = array_module(x), x.dtype
    layout = _ChannelLayout(x)
    xl = layout.arrange(x)
    if mean is None:  # training: batch statistics, Welford per chunk, merged per channel
        partial, parts = layout.reduce(xp, "bn_stats", dtype, 3, (xl,))
        mean, invstd = xp.empty(c, dtype=dtype), xp.empty(c, dtype=dtype)
        _flat_launch(xp, "norm", "welford_finalize", dtype, c,
                     (partial, _i64(parts), _i64(c), dtype.type(eps), mean, invstd))
    else:  # eval: the given statistics (plain arithmetic)
        mean = mean.astype(dtype, order="C")  # a new array, as the reference returns
        invstd = (1 / xp.sqrt(var + eps)).astype(dtype, copy=False)
    y, y_logical = layout.empty(x)
    _flat_launch(xp, "norm", "bn_apply", dtype, xl.size,
                 (xl, y, mean, invstd, _vector(xp, weight, xl), _vector(xp, bias, xl),
                  _i32(weight is not None), _i32(bias is not None), _i64(xl.size), _i64(c), _i64(layout.b)))
    return y_logical, mean, invstd


def batch_norm_backward(g, x, weight, mean, invstd, training):
    if g.shape != x.shape or _float_dtype(g, x) is None or not _batch_norm_ok(x, weight, mean, invstd):
        return _ref.batch_norm_backward(g, x, weight, mean, invstd, training)
    xp, dtype, c = array_module(x), x.dtype, x.shape[1]
    layout = _ChannelLayout(x)
    xl, gl = layout.arrange(x), layout.arrange(g)
    mean, invstd = xp.ascontiguousarray(mean), xp.ascontiguousarray(invstd)
    dweight, dbias = xp.zeros(c, dtype=dtype), xp.zeros(c, dtype=dtype)
    if layout.count:  # dweight = sum g xhat, dbias = sum g, per channel
        partial, parts = layout.reduce(xp, "bn_grad", dtype, 2, (gl, xl, mean, invstd))
        _flat_launch(xp, "norm", "sum2_finalize", dtype, c, (partial, _i64(parts), _i64(c), dweight, dbias))
    dx, dx_logical = layout.empty(x)
    _flat_launch(xp, "norm", "bn_backward_apply", dtype, xl.size,
                 (gl, xl, mean, invstd, _vector(xp, weight, xl), _i32(weight is not None),
                  dweight, dbias, _i32(bool(training)), _i64(xl.size), _i64(c), _i64(layout.b), dx))
    return dx_logical, dweight, dbias


def _layer_norm_ok(x, *vectors):
    return (_float_dtype(x, *vectors) is not None and x.ndim == 2
            and all(v.shape == x.shape[1:] for v in vectors if v is not None))


def layer_norm_forward(x, weight, bias, eps):
    if not _layer_norm_ok(x, weight, bias):
        return _ref.layer_norm_forward(x, weight, bias, eps)
    xp, dtype = array_module(x), x.dtype
    x = xp.ascontiguousarray(x)
    m, n = x.shape
    y, mean, rstd = xp.empty_like(x), xp.empty(m, dtype=dtype), xp.empty(m, dtype=dtype)
    _row_launch(xp, "norm", "layer_norm_forward", dtype, m, n,
                (x, _vector(xp, weight, x), _vector(xp, bias, x),
                 _i32(weight is not None), _i32(bias is not None), _i64(m), _i64(n),
                 dtype.type(eps), y, mean, rstd))
    return y, mean, rstd


def layer_norm_backward(g, x, weight, mean, rstd):
    if (g.shape != x.shape or not _layer_norm_ok(x, weight) or _float_dtype(x, g, mean, rstd) is None
            or mean.shape != x.shape[:1] or rstd.shape != x.shape[:1]):
        return _ref.layer_norm_backward(g, x, weight, mean, rstd)
    xp, dtype = array_module(x), x.dtype
    x, g = xp.ascontiguousarray(x), xp.ascontiguousarray(g)
    mean, rstd = xp.ascontiguousarray(mean), xp.ascontiguousarray(rstd)
    m, n = x.shape
    dx = xp.empty_like(x)
    _row_launch(xp, "norm", "layer_norm_backward", dtype, m, n,
                (g, x, _vector(xp, weight, x), _i32(weight is not None), mean, rstd,
                 _i64(m), _i64(n), dx))
    dweight, dbias = xp.zeros(n, dtype=dtype), xp.zeros(n, dtype=dtype)
    if m:  # column sums over the rows, in chunk order
        chunk, parts = _chunking(m, _MIN_CHUNK_ROWS)
        partial = xp.empty((parts, n, 2), dtype=dtype)
        _launch(xp, "norm", "ln_grad_columns", dtype, (-(-n // _COL_TILE), parts), (_COL_TILE, _COL_ROWS),
                (g, x, mean, rstd, partial, _i64(m), _i64(n), _i64(chunk)))
        _flat_launch(xp, "norm", "sum2_finalize", dtype, n, (partial, _i64(parts), _i64(n), dweight, dbias))
    return dx, dweight, dbias


# ======================================================================================
# Convolution columns (conv.cu) and pooling (pool.cu)
# ======================================================================================


def _window_args(kernel, stride, padding, dilation):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    return tuple(_i32(v) for v in (kh, kw, sh, sw, ph, pw, dh, dw))


def im2col(x, kernel, stride, padding, dilation, out_size, ones_column=False):
    dtype = _float_dtype(x)
    if dtype is None or x.ndim != 4:
        return _ref.im2col(x, kernel, stride, padding, dilation, out_size, ones_column)
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    n, h, w, c = x.shape
    oh, ow = out_size
    extra = int(bool(ones_column))
    cols = xp.empty((n * oh * ow, kernel[0] * kernel[1] * c + extra), dtype=dtype)
    _flat_launch(xp, "conv", "im2col", dtype, cols.size,
                 (x, cols, _i64(n), _i64(h), _i64(w), _i64(c),
                  *_window_args(kernel, stride, padding, dilation), _i64(oh), _i64(ow), _i32(extra)))
    return cols


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_size):
    dtype = _float_dtype(cols)
    n, h, w, c = x_shape
    oh, ow = out_size
    if dtype is None or cols.shape != (n * oh * ow, kernel[0] * kernel[1] * c):
        return _ref.col2im(cols, x_shape, kernel, stride, padding, dilation, out_size)
    xp = array_module(cols)
    cols = xp.ascontiguousarray(cols)
    dx = xp.empty((n, h, w, c), dtype=dtype)
    _flat_launch(xp, "conv", "col2im", dtype, dx.size,
                 (cols, dx, _i64(n), _i64(h), _i64(w), _i64(c),
                  *_window_args(kernel, stride, padding, dilation), _i64(oh), _i64(ow), _i64(cols.shape[1])))
    return dx


def _pool_layout(a):
    """(channels_last flag, the contiguous array the pool kernels index) for a (N, C, H, W)
    array: channels-last arrays stay so (free), anything else becomes C-contiguous NCHW."""
    if not a.flags.c_contiguous and is_channels_last(a):
        return 1, channels_last(a)
    return 0, array_module(a).ascontiguousarray(a)


def _pool_empty(xp, cl, shape, dtype):
    """(array the kernel writes, its logical (N, C, H, W) view) of ``shape`` in a layout."""
    n, c, h, w = shape
    if cl:
        out = xp.empty((n, h, w, c), dtype=dtype)
        return out, out.transpose(0, 3, 1, 2)
    out = xp.empty(shape, dtype=dtype)
    return out, out


def _pool_launch(kernel, dtype, cl, inputs, outputs, sizes, window, flags=()):
    """Launch a pool.cu kernel, one thread per element of the first output; ``outputs`` are
    (shape, dtype) pairs allocated in layout ``cl``; returns their logical (N, C, H, W) views."""
    xp = array_module(inputs[0])
    made = [_pool_empty(xp, cl, shape, dt) for shape, dt in outputs]
    _flat_launch(xp, "pool", kernel, dtype, made[0][0].size,
                 (*inputs, *(raw for raw, _ in made), *(_i64(v) for v in sizes), *window,
                  *(_i32(f) for f in flags), _i32(cl)))
    return [logical for _, logical in made]


def maxpool2d_forward(x, kernel, stride, padding, dilation, out_size):
    dtype = _float_dtype(x)
    if dtype is None or x.ndim != 4:
        return _ref.maxpool2d_forward(x, kernel, stride, padding, dilation, out_size)
    n, c, h, w = x.shape
    if h * w > np.iinfo(np.int32).max:
        raise ValueError(f"maxpool2d_forward: planes of {h} x {w} pixels do not fit the int32 argmax "
                         f"(input of shape {tuple(x.shape)})")
    cl, xl = _pool_layout(x)
    shape = (n, c) + tuple(out_size)
    out, arg = _pool_launch("maxpool_forward", dtype, cl, (xl,), ((shape, dtype), (shape, np.int32)),
                            x.shape + tuple(out_size), _window_args(kernel, stride, padding, dilation))
    return out, arg


def maxpool2d_backward(g, argmax, x_shape, kernel, stride, padding, dilation):
    dtype = _float_dtype(g)
    if (dtype is None or g.ndim != 4 or g.shape != argmax.shape or len(x_shape) != 4
            or tuple(x_shape[:2]) != g.shape[:2]):
        return _ref.maxpool2d_backward(g, argmax, x_shape, kernel, stride, padding, dilation)
    cl, arg = _pool_layout(argmax.astype(np.int32, copy=False))  # dx takes the forward's layout
    gl = channels_last(g) if cl else array_module(g).ascontiguousarray(g)
    (dx,) = _pool_launch("maxpool_backward", dtype, cl, (gl, arg), ((tuple(x_shape), dtype),),
                         tuple(x_shape) + g.shape[2:], _window_args(kernel, stride, padding, dilation))
    return dx


def avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad):
    dtype = _float_dtype(x)
    if dtype is None or x.ndim != 4:
        return _ref.avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad)
    cl, xl = _pool_layout(x)
    (out,) = _pool_launch("avgpool_forward", dtype, cl, (xl,), ((x.shape[:2] + tuple(out_size), dtype),),
                          x.shape + tuple(out_size), _window_args(kernel, stride, padding, (1, 1))[:6],
                          (bool(count_include_pad),))
    return out


def avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size, count_include_pad):
    dtype = _float_dtype(g)
    if (dtype is None or g.ndim != 4 or len(x_shape) != 4 or tuple(x_shape[:2]) != g.shape[:2]
            or tuple(g.shape[2:]) != tuple(out_size)):
        return _ref.avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size, count_include_pad)
    cl, gl = _pool_layout(g)
    (dx,) = _pool_launch("avgpool_backward", dtype, cl, (gl,), ((tuple(x_shape), dtype),),
                         tuple(x_shape) + tuple(out_size), _window_args(kernel, stride, padding, (1, 1))[:6],
                         (bool(count_include_pad),))
    return dx


# ======================================================================================
# Dropout (dropout.cu), embedding (embedding.cu)
# ======================================================================================


def dropout_mask(shape, p, seed, offset, dtype, *, like=None):
    """reference.dropout_mask, bit for bit, made by the Philox kernel.  As in every table, the
    mask is a NumPy array when ``like`` is None (the kernel then runs in the emulator), else an
    array of ``like``'s module (CuPy: the kernel runs on the GPU)."""
    xp = np if like is None else array_module(like)
    dtype = np.dtype(dtype)
    if dtype not in _SUFFIX:
        return xp.asarray(_ref.dropout_mask(shape, p, seed, offset, dtype))
    out = xp.empty(shape, dtype=dtype)
    # keep iff u >= p with u = (word >> 8) 2^-24, i.e. iff (word >> 8) >= ceil(p 2^24): exact
    threshold = min(max(math.ceil(p * 2.0 ** 24), 0), 2 ** 24)
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    seed = int(seed) % 2 ** 64
    _flat_launch(xp, "dropout", "dropout_mask", dtype, -(-out.size // 4),
                 (out, _i64(out.size), np.uint32(seed & 0xFFFFFFFF), np.uint32(seed >> 32),
                  np.uint64(int(offset) % 2 ** 64), np.uint32(threshold), dtype.type(scale)))
    return out


_EMBEDDING_CHUNKS = 32       # position chunks of the counting sort (its histogram is chunks x E) ...
_EMBEDDING_HIST = 2 ** 24    # ... and fewer chunks when E is large, so it stays within ~max(E, this)
INDEX_CHECKS = ("embedding", "embedding_backward", "getitem", "setitem", "scatter_add", "one_hot", "gather", "index")


def check_indices(indices, low, high, op):
    """Make sure ``low <= indices < high`` without reading them on the host: the kernel
    check_indices_<op> (embedding.cu) stops with an error naming ``op`` if one is outside, which
    a GPU reports at the next synchronisation (the emulator too).  Not a table kernel: ops
    reach it through backend.check_indices_on_device (on the CPU they check on the host).  An op
    without a kernel of its own is reported as "index"."""
    xp = array_module(indices)
    idx = xp.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    _flat_launch(xp, "embedding", f"check_indices_{op if op in INDEX_CHECKS else 'index'}", None, idx.size,
                 (idx, _i64(idx.size), _i64(low), _i64(high)))


def embedding_backward(g, indices, num_embeddings):
    dtype = _float_dtype(g)
    if (dtype is None or g.ndim != 2 or getattr(indices, "shape", None) != g.shape[:1]
            or indices.dtype.kind not in "iu" or array_module(indices) is not array_module(g)):
        return _ref.embedding_backward(g, indices, num_embeddings)
    xp = array_module(g)
    if xp is np:  # free on the CPU (the reference raises the contract's error)
        if indices.size and bool(((indices < 0) | (indices >= num_embeddings)).any()):
            return _ref.embedding_backward(g, indices, num_embeddings)
    elif indices.size:  # on the GPU without reading them back: a bad index stops the kernel
        check_indices(indices, 0, num_embeddings, "embedding_backward")
    g = xp.ascontiguousarray(g)
    idx = xp.ascontiguousarray(indices, dtype=np.int64)
    m, d = g.shape
    e = int(num_embeddings)
    chunks = max(1, min(_EMBEDDING_CHUNKS, -(-m // 256), _EMBEDDING_HIST // max(e, 1)))
    s = max(1, -(-m // chunks))  # positions per chunk
    b = -(-m // s)
    hist = xp.zeros((b, e), dtype=np.int64)
    _flat_launch(xp, "embedding", "embedding_count", None, b, (idx, _i64(m), _i64(e), _i64(s), _i64(b), hist))
    starts = xp.zeros(e + 1, dtype=np.int64)
    xp.cumsum(hist.sum(axis=0), out=starts[1:])
    base = starts[:-1] + (xp.cumsum(hist, axis=0) - hist)  # (b, e): first slot of chunk b's e's
    order = xp.empty(m, dtype=np.int64)
    _flat_launch(xp, "embedding", "embedding_place", None, b,
                 (idx, _i64(m), _i64(e), _i64(s), _i64(b), base, order))
    dw = xp.empty((e, d), dtype=dtype)
    _flat_launch(xp, "embedding", "embedding_backward", dtype, dw.size, (g, order, starts, dw, _i64(e), _i64(d)))
    return dw


# ======================================================================================
# Matrix products (gemm.cu): cuBLAS by default, or our own SGEMM ladder
# ======================================================================================

GEMM_VARIANTS = ("naive", "tiled", "regblock")
_matmul_choice = {"impl": "cublas", "variant": "regblock"}


def set_matmul(impl="cublas", variant="regblock"):
    """Choose what ``matmul`` and ``linear`` run on CuPy arrays: ``"cublas"`` (cupy.matmul,
    the default) or ``"own"``: the project's GEMM ladder at rung ``variant`` ("naive",
    "tiled" or "regblock"; docs/kernels.md).  Emulated NumPy arrays follow the same choice
    ("cublas" then means NumPy's own matmul)."""
    if impl not in ("cublas", "own"):
        raise ValueError(f"set_matmul: impl must be 'cublas' or 'own', got {impl!r}")
    if variant not in GEMM_VARIANTS:
        raise ValueError(f"set_matmul: variant must be one of {GEMM_VARIANTS}, got {variant!r}")
    _matmul_choice.update(impl=impl, variant=variant)


def get_matmul():
    """(impl, variant) as chosen by set_matmul."""
    return _matmul_choice["impl"], _matmul_choice["variant"]


def _own_gemm(*arrays):
    return _matmul_choice["impl"] == "own" and _float_dtype(*arrays) is not None


def matmul(a, b):
    if (not _own_gemm(a, b) or a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]
            or _broadcast_batch(a.shape[:-2], b.shape[:-2]) is None):
        return _ref.matmul(a, b)
    return _gemm(a, b, None)


def linear(x, w, b):
    if (not _own_gemm(x, w, b) or x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]
            or (b is not None and b.shape != (w.shape[0],))):
        return _ref.linear(x, w, b)
    return _gemm(x, w.T, b)  # w.T is read in place (column-major B); the bias is the epilogue


# a convolution: this table's im2col, GEMM and col2im, composed as the reference composes its own
conv2d_forward, conv2d_backward = _ref._convolution(im2col, col2im, matmul)


def _broadcast_batch(s1, s2):
    try:
        return np.broadcast_shapes(s1, s2)
    except ValueError:
        return None


def _matrix_strides(xp, a):
    """``a`` with a unit stride in one of its two matrix dims (a copy only when neither has
    one, or a stride is negative), and its element strides."""
    item = a.dtype.itemsize
    if a.size and (any(s < 0 for s in a.strides) or (a.ndim >= 2 and a.shape[-1] > 1 and a.shape[-2] > 1
                                                      and item not in (a.strides[-1], a.strides[-2]))):
        a = xp.ascontiguousarray(a)
    return a, [s // item for s in a.strides]


def _unit_stride(rows, cols, s_row, s_col):
    """Element strides of a matrix with one of them set to 1 where its dim has length 1, so
    the kernel sees a row- or column-major operand."""
    if s_col != 1 and s_row != 1:
        if cols == 1:
            s_col = 1
        elif rows == 1:
            s_row = 1
    return s_row, s_col


def _collapse_batch(shape, *strides):
    """Merge adjacent batch dims that every operand steps through uniformly; returns the
    merged shape and strides (fewer dims, same addresses)."""
    out_shape, out_strides = [], [[] for _ in strides]
    for i, n in enumerate(shape):
        if n == 1:
            continue
        if out_shape and all(st[-1] == s[i] * n for st, s in zip(out_strides, strides)):
            out_shape[-1] *= n
            for st, s in zip(out_strides, strides):
                st[-1] = s[i]
            continue
        out_shape.append(n)
        for st, s in zip(out_strides, strides):
            st.append(s[i])
    return out_shape, out_strides


def _strided_operand(a):
    """What the GEMM kernels get for an operand they index through its strides: CuPy passes
    any array's data pointer; the emulator insists on C-contiguous arrays, so it gets the
    flat run of memory the strides reach (a view, same address)."""
    if not isinstance(a, np.ndarray) or a.flags.c_contiguous:
        return a
    span = 1 + sum((n - 1) * s for n, s in zip(a.shape, a.strides)) // a.itemsize
    return np.lib.stride_tricks.as_strided(a, shape=(span,), strides=(a.itemsize,))


def _vec_ok(a, strides, unit_dim):
    """16-byte loads are allowed for an operand: aligned base, and every stride except the
    unit one a multiple of 4 elements (so each 4-element group starts 16-byte aligned)."""
    others = [s for i, s in enumerate(strides) if i != unit_dim]
    return _address(a) % 16 == 0 and all(s % 4 == 0 for s in others)


def _gemm(a, b, bias):
    """C = a @ b (+ bias) with the chosen rung; batch dims broadcast (stride 0)."""
    xp, dtype = array_module(a), a.dtype
    batch = _broadcast_batch(a.shape[:-2], b.shape[:-2])
    m, k = a.shape[-2:]
    n = b.shape[-1]
    out = xp.empty(tuple(batch) + (m, n), dtype=dtype)
    if out.size == 0:
        return out
    a, sa = _matrix_strides(xp, a)
    b, sb = _matrix_strides(xp, b)
    sam, sak = _unit_stride(m, k, sa[-2], sa[-1])
    sbk, sbn = _unit_stride(k, n, sb[-2], sb[-1])
    # batch strides, right-aligned against the broadcast batch shape (0 where broadcast)
    nb = len(batch)
    sa_b = [0] * (nb - (a.ndim - 2)) + [s if a.shape[i] != 1 else 0 for i, s in enumerate(sa[:-2])]
    sb_b = [0] * (nb - (b.ndim - 2)) + [s if b.shape[i] != 1 else 0 for i, s in enumerate(sb[:-2])]
    dims, (sa_b, sb_b) = _collapse_batch(batch, sa_b, sb_b)
    if len(dims) > 3:  # more than 3 independent batch dims: materialize, then they merge
        a = xp.ascontiguousarray(xp.broadcast_to(a, tuple(batch) + (m, k)))
        b = xp.ascontiguousarray(xp.broadcast_to(b, tuple(batch) + (k, n)))
        return _gemm(a, b, bias)
    dims = [1] * (3 - len(dims)) + dims
    sa_b = [0] * (3 - len(sa_b)) + sa_b
    sb_b = [0] * (3 - len(sb_b)) + sb_b
    vec = (int(_vec_ok(a, [*sa_b, sam, sak], 4 if sak == 1 else 3))
           | int(_vec_ok(b, [*sb_b, sbk, sbn], 4 if sbn == 1 else 3)) << 1
           | int(n % 4 == 0 and _address(out) % 16 == 0) << 2)
    variant = _matmul_choice["variant"]
    tile = 128 if variant == "regblock" else 16
    block = (256,) if variant == "regblock" else (16, 16)
    total = math.prod(dims)
    grid = (-(-n // tile), min(-(-m // tile), 65535), min(total, 65535))
    if bias is not None:
        bias = xp.ascontiguousarray(bias)
    _launch(xp, "gemm", "gemm_" + variant, dtype, grid, block,
            (_strided_operand(a), _strided_operand(b), bias if bias is not None else out, out,
             _i64(m), _i64(n), _i64(k),
             _i64(sam), _i64(sak), _i64(sbk), _i64(sbn), _i64(total), _i64(dims[1]), _i64(dims[2]),
             *(_i64(s) for s in sa_b), *(_i64(s) for s in sb_b), _i32(bias is not None), _i32(vec)))
    return out


# ======================================================================================
# Optimizer updates (optim.cu): one launch per parameter group and dtype
# ======================================================================================

_OPTIM_CHUNK = 16384  # elements per block
_TABLE_WORDS = 448    # optim.cu's MG_TABLE_WORDS: the table is a kernel argument of this many int64
_TABLE = np.dtype([("words", np.int64, (_TABLE_WORDS,))])  # optim.cu's struct TensorTable


def _pointer_table(rows, words):
    """The table of one launch (optim.cu's TensorTable, passed by value: no upload), one row of
    ``words`` int64 per tensor: its pointers, size and first block; and the number of blocks.
    ``rows`` = [(arrays..., size)], None for a pointer the kernel does not use."""
    table = np.zeros((), dtype=_TABLE)
    flat, first = table["words"], 0
    for r, (*arrays, size) in enumerate(rows):
        flat[r * words:(r + 1) * words] = [0 if a is None else _address(a) for a in arrays] + [size, first]
        first += -(-size // _OPTIM_CHUNK)
    return table[()], first


def _fused_groups(params, *lists):
    """Split the tensors of a step: {dtype: [index]} for those the multi-tensor kernel can
    update in place (contiguous float32/float64 arrays, state of the same dtype), and the
    rest (updated by the reference)."""
    groups, rest = {}, []
    for i, x in enumerate(params):
        arrays = [x] + [lst[i] for lst in lists if lst is not None]
        ok = _float_dtype(*arrays) is not None and all(a.flags.c_contiguous for a in arrays[:1] + arrays[2:])
        if ok and x.size:
            groups.setdefault(x.dtype, []).append(i)
        elif not ok:
            rest.append(i)
    return groups, rest


def _multi_tensor_launch(kernel, params, groups, row, scalars, words):
    """One ``kernel`` launch per dtype group (and per as many tensors as a table holds);
    ``row(xp, i)`` gives tensor i's table row, ``scalars(t)`` the kernel's scalar arguments in
    the group's scalar type ``t`` (so float32 stays float32)."""
    per_launch = _TABLE_WORDS // words
    for dtype, idx in groups.items():
        xp = array_module(params[idx[0]])
        for start in range(0, len(idx), per_launch):
            part = idx[start:start + per_launch]
            rows = [row(xp, i) for i in part]  # (kept alive until the launch is queued)
            table, blocks = _pointer_table(rows, words)
            _launch(xp, "optim", kernel, dtype, (blocks,), (_BLOCK,),
                    (table, _i32(len(part)), _i64(_OPTIM_CHUNK), *scalars(dtype.type)))


def sgd_step_(params, grads, bufs, lr, weight_decay, momentum, dampening, nesterov, first):
    _ref._check_sgd(params, grads, bufs, momentum)
    bufs = bufs if momentum else None
    groups, rest = _fused_groups(params, grads, bufs)
    for i in rest:
        _ref.sgd_step_([params[i]], [grads[i]], None if bufs is None else [bufs[i]], lr, weight_decay,
                       momentum, dampening, nesterov, first)
    _multi_tensor_launch(
        "sgd_step", params, groups,
        lambda xp, i: (params[i], xp.ascontiguousarray(grads[i]), None if bufs is None else bufs[i], params[i].size),
        lambda t: (t(lr), t(weight_decay), t(momentum), t(1 - dampening), _i32(bool(nesterov)), _i32(bool(first))),
        words=5)


def adam_step_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps, step,
               weight_decay, decoupled):
    _ref._check_step("adam_step_", params, grads=grads, exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs,
                     max_exp_avg_sqs=max_exp_avg_sqs)
    groups, rest = _fused_groups(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
    for i in rest:
        _ref.adam_step_([params[i]], [grads[i]], [exp_avgs[i]], [exp_avg_sqs[i]],
                        None if max_exp_avg_sqs is None else [max_exp_avg_sqs[i]],
                        lr, beta1, beta2, eps, step, weight_decay, decoupled)
    step_size, inv_sqrt_bc2, decay, l2 = _ref._adam_scalars(lr, beta1, beta2, step, weight_decay, decoupled)
    vmax = max_exp_avg_sqs
    _multi_tensor_launch(
        "adam_step", params, groups,
        lambda xp, i: (params[i], xp.ascontiguousarray(grads[i]), exp_avgs[i], exp_avg_sqs[i],
                       None if vmax is None else vmax[i], params[i].size),
        lambda t: (t(step_size), t(beta1), t(beta2), t(eps), t(inv_sqrt_bc2), t(l2), t(decay),
                   _i32(vmax is not None)),
        words=7)


def adagrad_step_(params, grads, sums, lr, lr_decay, weight_decay, eps, step):
    _ref._check_step("adagrad_step_", params, grads=grads, sums=sums)
    groups, rest = _fused_groups(params, grads, sums)
    for i in rest:
        _ref.adagrad_step_([params[i]], [grads[i]], [sums[i]], lr, lr_decay, weight_decay, eps, step)
    clr = lr / (1 + (step - 1) * lr_decay)
    _multi_tensor_launch(
        "adagrad_step", params, groups,
        lambda xp, i: (params[i], xp.ascontiguousarray(grads[i]), sums[i], params[i].size),
        lambda t: (t(clr), t(weight_decay), t(eps)),
        words=5)


def adadelta_step_(params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay):
    _ref._check_step("adadelta_step_", params, grads=grads, square_avgs=square_avgs, acc_deltas=acc_deltas)
    groups, rest = _fused_groups(params, grads, square_avgs, acc_deltas)
    for i in rest:
        _ref.adadelta_step_([params[i]], [grads[i]], [square_avgs[i]], [acc_deltas[i]], lr, rho, eps, weight_decay)
    _multi_tensor_launch(
        "adadelta_step", params, groups,
        lambda xp, i: (params[i], xp.ascontiguousarray(grads[i]), square_avgs[i], acc_deltas[i], params[i].size),
        lambda t: (t(lr), t(rho), t(1 - rho), t(eps), t(weight_decay)),
        words=6)


# ======================================================================================
# Attention (attention.cu): the fused forward and the two backward kernels (derivation:
# docs/derivations/attention.md)
# ======================================================================================


_ATTN_THREADS = 256  # ATT_WARPS (8) rows per block, one warp each (attention.cu)
_ATTN_ROWS = 8
_ATTN_DMAX = 64      # ATT_DMAX: the largest head size the kernels take


def _attention_params(q, k, v, mask, is_causal, scale, dropout_p, seed, offset):
    """The kernels' shared leading arguments (Attn<T> in attention.cu), mask_given included."""
    xp, dtype = array_module(q), q.dtype
    b, tq, tk, d, dv = q.shape[0], q.shape[1], k.shape[1], q.shape[2], v.shape[2]
    if mask is None:
        mask_arg, strides = xp.zeros(1, dtype=dtype), (0, 0, 0)
    else:  # a broadcast side (length 1) is read with stride 0
        mask_arg = xp.ascontiguousarray(mask)
        mb, mq, mk = mask.shape
        strides = (mq * mk if mb > 1 else 0, mk if mq > 1 else 0, 1 if mk > 1 else 0)
    seed = int(seed) % 2 ** 64
    threshold = min(max(math.ceil(dropout_p * 2.0 ** 24), 0), 2 ** 24)  # keep iff (word >> 8) >= it
    keep_scale = 1.0 / (1.0 - dropout_p) if dropout_p < 1 else 0.0
    return (_i64(b), _i64(tq), _i64(tk), _i64(d), _i64(dv), dtype.type(scale), _i32(bool(is_causal)),
            mask_arg, *(_i64(s) for s in strides), _i32(dropout_p > 0), np.uint32(seed & 0xFFFFFFFF),
            np.uint32(seed >> 32), np.uint32(threshold), np.uint64(int(offset) % 2 ** 64),
            dtype.type(keep_scale), _i32(mask is not None))


def _attention_dtype(q, k, v, mask, *more):
    """The dtype when the kernels take these inputs (float32/64 on one device, head sizes up to
    ATT_DMAX), else None (the reference computes, or raises for inconsistent shapes)."""
    dtype = _float_dtype(q, k, v, mask, *more)
    if dtype is None or q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        return None
    return dtype if max(q.shape[2], v.shape[2]) <= _ATTN_DMAX else None


def _attention_launch(kernel, dtype, rows, args):
    """One warp per row of ``rows`` (B x T) rows, ATT_WARPS rows per block, grid-stride."""
    xp = array_module(args[-1])
    _launch(xp, "attention", kernel, dtype, (_blocks(xp, rows, _ATTN_ROWS),), (_ATTN_THREADS,), args)


def attention_forward(q, k, v, mask, is_causal, scale, dropout_p, seed, offset):
    dtype = _attention_dtype(q, k, v, mask)
    if dtype is None:
        return _ref.attention_forward(q, k, v, mask, is_causal, scale, dropout_p, seed, offset)
    _ref._check_attention("attention_forward", q, k, v, mask)
    xp = array_module(q)
    q, k, v = (xp.ascontiguousarray(a) for a in (q, k, v))
    out = xp.empty(q.shape[:2] + v.shape[2:], dtype=dtype)
    lse = xp.empty(q.shape[:2], dtype=dtype)
    params = _attention_params(q, k, v, mask, is_causal, scale, dropout_p, seed, offset)
    _attention_launch("attention_forward", dtype, q.shape[0] * q.shape[1], (*params, q, k, v, out, lse))
    return out, lse


def attention_backward(g, q, k, v, out, lse, mask, is_causal, scale, dropout_p, seed, offset):
    dtype = _attention_dtype(q, k, v, mask, g, out, lse)
    if dtype is None:
        return _ref.attention_backward(g, q, k, v, out, lse, mask, is_causal, scale, dropout_p, seed, offset)
    _ref._check_attention("attention_backward", q, k, v, mask, g=g, out=out, lse=lse)
    xp = array_module(q)
    g, q, k, v, out, lse = (xp.ascontiguousarray(a) for a in (g, q, k, v, out, lse))
    params = _attention_params(q, k, v, mask, is_causal, scale, dropout_p, seed, offset)
    dq, dk, dv = xp.empty_like(q), xp.empty_like(k), xp.empty_like(v)
    delta = xp.empty(q.shape[:2], dtype=dtype)  # sum_d g_id out_id, from the first kernel to the second
    _attention_launch("attention_backward_dq", dtype, q.shape[0] * q.shape[1], (*params, g, q, k, v, out, lse, dq, delta))
    _attention_launch("attention_backward_dkdv", dtype, k.shape[0] * k.shape[1], (*params, g, q, k, v, lse, delta, dk, dv))
    return dq, dk, dv


# ======================================================================================
# Recurrent cells (rnn.cu): a step's two matrix products on cuBLAS (``@``), the gates' math
# in one kernel, one thread per unit of the (B, H) state (derivation: docs/derivations/rnn.md)
# ======================================================================================


def _cell_launch(kernel, dtype, units, args):
    _flat_launch(array_module(args[0]), "rnn", kernel, dtype, units, args)


def _cell_products(x, h, w_ih, w_hh):
    """x w_ih^T and h w_hh^T, contiguous (cuBLAS reads the transposed weights in place)."""
    xp = array_module(x)
    return xp.ascontiguousarray(x @ w_ih.T), xp.ascontiguousarray(h @ w_hh.T)


def _bias_args(b_ih, b_hh, stand_in):
    xp = array_module(stand_in)
    return (_vector(xp, b_ih, stand_in), _vector(xp, b_hh, stand_in), _i32(b_ih is not None))


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity):
    dtype = _float_dtype(x, h, w_ih, w_hh, b_ih, b_hh)
    if dtype is None or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    b, hidden = _ref._check_cell("rnn_cell_forward", 1, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    xw, hw = _cell_products(x, h, w_ih, w_hh)
    out = array_module(x).empty((b, hidden), dtype=dtype)
    _cell_launch("rnn_forward", dtype, b * hidden, (xw, hw, *_bias_args(b_ih, b_hh, xw),
                                                   _i32(nonlinearity == "relu"), out, _i64(b), _i64(hidden)))
    return out


def rnn_cell_backward(g, x, h, h_new, w_ih, w_hh, nonlinearity, need_dx=True):
    dtype = _float_dtype(g, x, h, h_new, w_ih, w_hh)
    if dtype is None or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_cell_backward(g, x, h, h_new, w_ih, w_hh, nonlinearity, need_dx)
    _ref._check_cell("rnn_cell_backward", 1, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g, h_new_BH=h_new)
    da = array_module(g).empty(g.shape, dtype=dtype)
    rnn_step_backward(g, h_new, nonlinearity, da)
    return _ref._cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)[:5]


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh):
    dtype = _float_dtype(x, h, c, w_ih, w_hh, b_ih, b_hh)
    if dtype is None:
        return _ref.lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
    b, hidden = _ref._check_cell("lstm_cell_forward", 4, x, h, w_ih, w_hh, b_ih, b_hh, c_BH=c)
    xp = array_module(x)
    gates, hw = _cell_products(x, h, w_ih, w_hh)  # gates: the input's product until the kernel
    hc, tc = xp.empty((2, b, hidden), dtype=dtype), xp.empty((b, hidden), dtype=dtype)
    _cell_launch("lstm_forward", dtype, b * hidden, (gates, hw, *_bias_args(b_ih, b_hh, gates),
                                                    xp.ascontiguousarray(c), hc[0], hc[1], tc, _i64(b), _i64(hidden)))
    return hc, (gates, tc)


def lstm_cell_backward(ghc, x, h, c, saved, w_ih, w_hh, need_dx=True):
    gates, tc = saved
    dtype = _float_dtype(ghc, x, h, c, gates, tc, w_ih, w_hh)
    if dtype is None:
        return _ref.lstm_cell_backward(ghc, x, h, c, saved, w_ih, w_hh, need_dx)
    b, hidden = _ref._check_cell("lstm_cell_backward", 4, x, h, w_ih, w_hh, None, None, c_BH=c, ghc_2BH=ghc,
                                 gates_B4H=gates, tc_BH=tc)
    xp = array_module(x)
    da, dc = xp.empty((b, 4 * hidden), dtype=dtype), xp.empty((b, hidden), dtype=dtype)
    lstm_step_backward(ghc[0], ghc[1], c, gates, tc, da, dc)
    dx, dh, dw_ih, dw_hh, db, _ = _ref._cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)
    return dx, dh, dc, dw_ih, dw_hh, db


def gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh):
    dtype = _float_dtype(x, h, w_ih, w_hh, b_ih, b_hh)
    if dtype is None:
        return _ref.gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh)
    b, hidden = _ref._check_cell("gru_cell_forward", 3, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    xp = array_module(x)
    xw, hw = _cell_products(x, h, w_ih, w_hh)
    h_new, saved = xp.empty((b, hidden), dtype=dtype), xp.empty((b, 4 * hidden), dtype=dtype)
    _cell_launch("gru_forward", dtype, b * hidden, (xw, hw, *_bias_args(b_ih, b_hh, xw), xp.ascontiguousarray(h),
                                                   h_new, saved, _i64(b), _i64(hidden)))
    return h_new, saved


def gru_cell_backward(g, x, h, saved, w_ih, w_hh, need_dx=True):
    dtype = _float_dtype(g, x, h, saved, w_ih, w_hh)
    if dtype is None:
        return _ref.gru_cell_backward(g, x, h, saved, w_ih, w_hh, need_dx)
    b, hidden = _ref._check_cell("gru_cell_backward", 3, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g,
                                 saved_B4H=saved)
    xp = array_module(x)
    dgi, dgh = xp.empty((b, 3 * hidden), dtype=dtype), xp.empty((b, 3 * hidden), dtype=dtype)
    g_z = xp.empty((b, hidden), dtype=dtype)
    gru_step_backward(g, h, saved, dgi, dgh, g_z)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _ref._cell_weight_grads(dgi, dgh, x, h, w_ih, w_hh, need_dx)
    return dx, dh + g_z, dw_ih, dw_hh, db_ih, db_hh


# The step kernels (reference.py, "the gates of one step"): the same .cu kernels, given the
# products with their biases already added (has_bias = 0).  They write into the arrays given,
# so those must be contiguous (a layer's (T, ...) buffers are, step by step); anything else,
# and other dtypes, go to the reference.


def _step_dtype(inputs, outputs):
    """The common float dtype when every output is contiguous (the kernels write flat), else None."""
    dtype = _float_dtype(*inputs, *outputs)
    return dtype if dtype is not None and all(a.flags.c_contiguous for a in outputs) else None


def _contiguous(*arrays):
    return tuple(array_module(a).ascontiguousarray(a) for a in arrays)


def rnn_step_forward(xw, hw, nonlinearity, out):
    dtype = _step_dtype((xw, hw), (out,))
    if dtype is None or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_step_forward(xw, hw, nonlinearity, out)
    b, hidden = _ref._check_gates("rnn_step_forward", 1, xw, hw, out_BH=out)
    _cell_launch("rnn_forward", dtype, b * hidden, (*_contiguous(xw, hw), *_bias_args(None, None, out),
                                                   _i32(nonlinearity == "relu"), out, _i64(b), _i64(hidden)))


def rnn_step_backward(g, h_new, nonlinearity, da):
    dtype = _step_dtype((g, h_new), (da,))
    if dtype is None or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_step_backward(g, h_new, nonlinearity, da)
    _ref._check_gates("rnn_step_backward", 1, g, h_new, da_BH=da)
    _cell_launch("rnn_backward", dtype, g.size, (*_contiguous(g, h_new), _i32(nonlinearity == "relu"), da,
                                                 _i64(g.size)))


def lstm_step_forward(gates, hw, c, h_new, c_new, tc):
    dtype = _step_dtype((hw, c), (gates, h_new, c_new, tc))
    if dtype is None:
        return _ref.lstm_step_forward(gates, hw, c, h_new, c_new, tc)
    b, hidden = _ref._check_gates("lstm_step_forward", 4, gates, hw, c_BH=c, h_new_BH=h_new, c_new_BH=c_new,
                                 tc_BH=tc)
    _cell_launch("lstm_forward", dtype, b * hidden, (gates, *_contiguous(hw), *_bias_args(None, None, gates),
                                                    *_contiguous(c), h_new, c_new, tc, _i64(b), _i64(hidden)))


def lstm_step_backward(gh, gc, c, gates, tc, da, dc):
    dtype = _step_dtype((gh, gc, c, gates, tc), (da, dc))
    if dtype is None:
        return _ref.lstm_step_backward(gh, gc, c, gates, tc, da, dc)
    b, hidden = _ref._check_gates("lstm_step_backward", 4, da, gates, gh_BH=gh, gc_BH=gc, c_BH=c, tc_BH=tc,
                                 dc_BH=dc)
    _cell_launch("lstm_backward", dtype, b * hidden, (*_contiguous(gh, gc, c, gates, tc), da, dc, _i64(b),
                                                     _i64(hidden)))


def gru_step_forward(gi, gh, h, h_new, saved):
    dtype = _step_dtype((gi, gh, h), (h_new, saved))
    if dtype is None:
        return _ref.gru_step_forward(gi, gh, h, h_new, saved)
    b, hidden = _ref._check_gates("gru_step_forward", 3, gi, gh, h_BH=h, h_new_BH=h_new, saved_B4H=saved)
    _cell_launch("gru_forward", dtype, b * hidden, (*_contiguous(gi, gh), *_bias_args(None, None, saved),
                                                   *_contiguous(h), h_new, saved, _i64(b), _i64(hidden)))


def gru_step_backward(g, h, saved, dgi, dgh, g_z):
    dtype = _step_dtype((g, h, saved), (dgi, dgh, g_z))
    if dtype is None:
        return _ref.gru_step_backward(g, h, saved, dgi, dgh, g_z)
    b, hidden = _ref._check_gates("gru_step_backward", 3, dgi, dgh, g_BH=g, h_BH=h, saved_B4H=saved, g_z_BH=g_z)
    _cell_launch("gru_backward", dtype, b * hidden, (*_contiguous(g, h, saved), dgi, dgh, g_z, _i64(b), _i64(hidden)))
