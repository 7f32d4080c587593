"""The CPU kernel table: reference.py plus numba kernels for the hot paths.

Every name of reference.py is here with the same semantics (``from .reference import *``);
the functions below override some of them with numba kernels: im2col / col2im, max and
average pooling, ReLU, GELU, sigmoid, tanh, the softmax family and cross-entropy, batch and
layer norm, attention, the gates of the recurrent cells, ``linear`` of a few rows, the dropout mask, the embedding gradient and
the fused optimizer updates (docs/kernels.md, "The CPU kernels").  Each override runs its
numba kernel when numba imports, is not disabled (MINIGRAD_DISABLE_NUMBA=1) and the input
suits it (dtype, memory layout, size); otherwise it
calls the reference function, which also raises the error for inconsistent inputs.
tests/test_kernels_contract.py checks both give the same numbers.

Layouts.  Tensors are (N, C, H, W); the convolution kernels work on the same values laid out
channels-last, (N, H, W, C) in memory ("channels_last"), because that is what makes the
convolution one matrix product with no layout copies (docs/derivations/conv.md):

* ``im2col(x_nhwc, ...)`` returns ``cols`` of shape ``(N*oh*ow, kh*kw*C)``: one ROW per output
  pixel ``(n, oy, ox)``, holding what each kernel tap ``(i, j)`` of each channel ``c`` sees
  there (taps in ``(i, j, c)`` order, so each pixel's C channels are one contiguous run).
  ``cols @ W2`` (``W2``: ``(kh*kw*C, O)``) is then the output, already channels-last.
  ``ones_column=True`` appends a column of ones that carries the bias through the same GEMM.
* ``col2im`` is its adjoint: it adds every column entry back onto the input pixel it came from.
* Max pooling returns, besides the output, ``argmax``: for every output element the flat
  index ``y*W + x`` (within its own (n, c) image) of the input element that won.  The 2x2
  pool keeps a channels-last input channels-last (so conv -> relu -> pool -> conv never copies).

Threads: numba kernels use numba's thread pool (prange), matrix products use the BLAS pool.
They run one after the other, never nested.  numba's default OpenMP layer keeps its threads
spinning after a kernel, and so does OpenBLAS after a GEMM; on a 2-core machine the two pools
then fight for the cores (a training step of the MNIST CNN measured ~110 ms with the OpenMP
layer against ~80 ms with the "workqueue" layer), so workqueue is chosen unless the user set
NUMBA_THREADING_LAYER.  (workqueue must not be entered from two Python threads at once: the
threads minigrad starts, backend/cpu_threads.py, call only serial kernels.  The layer is
chosen when this module is imported, at the first op on a NumPy array; numba's pool started
before that, by numba.set_num_threads or a parallel function of the user's, takes numba's
default, OpenMP.)

Measured on the 2-core reference machine (float32, the MNIST CNN's second conv layer, the
kernel alone): im2col 0.6 ms, col2im 1.0 ms (the NCHW layout this replaced: 2.0 and 4.5 ms plus
two layout copies); `python -m benchmarks.ops --op im2col conv2d` times them (docs/benchmarks.md).
"""
import math
import os
import types
import warnings

import numpy as np

from . import numba_enabled
from . import reference as _ref
from .reference import *  # noqa: F401,F403  (the whole table; overridden below where numba helps)
from .reference import __all__  # noqa: F401  (exactly reference's names)
from .reference import is_channels_last

try:
    import numba
    from numba import njit, prange

    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"
    # numba's SSA pass reports the selects of the inlined _exp_f32 inside some parallel loops
    # as a "pedantic" NumbaIRAssumptionWarning: its own internal check, asking for a bug
    # report, not a problem with the kernel (the contract tests compare every kernel with
    # the reference).  Compiling happens at first call, inside the user's program: silence it.
    warnings.filterwarnings("ignore", category=numba.core.errors.NumbaIRAssumptionWarning)
except Exception:  # numba is a dependency, but the NumPy path must work without it
    numba = None


def use_numba():
    """True when the numba kernels run (numba importable and not disabled by the env var)."""
    return numba is not None and numba_enabled()


def _numba_ok(*arrays):
    """Every array is a C-contiguous NumPy array of one float dtype (numba's fast case)."""
    dtype = arrays[0].dtype
    for a in arrays:
        if type(a) is not np.ndarray or not a.flags.c_contiguous or a.dtype != dtype:
            return False
    return dtype.kind == "f"


def _dense_flat(a):
    """A flat view of ``a`` when its elements fill one block of memory (C order, or the
    channels-last order of conv2d outputs), else None."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    if is_channels_last(a):
        return a.transpose(0, 2, 3, 1).reshape(-1)
    return None


def _same_layout_flats(*arrays):
    """Flat views of arrays with one shape, dtype and memory layout (dense), else None."""
    first = arrays[0]
    if not use_numba() or type(first) is not np.ndarray or first.dtype.kind != "f":
        return None
    for a in arrays[1:]:
        if type(a) is not np.ndarray or a.shape != first.shape or a.strides != first.strides or a.dtype != first.dtype:
            return None
    flats = [_dense_flat(a) for a in arrays]
    return None if any(f is None for f in flats) else flats


# Most kernels below are compiled twice, serial and parallel (prange).  A parallel launch hands
# the work to numba's worker threads and waits for them.  With the workqueue layer (chosen
# above) that hand-over costs 65-90 us on the 2-core reference machine, and in a network the
# second core is seldom free: OpenBLAS's idle worker spins for ~0.1 s after every matrix
# product (OPENBLAS_THREAD_TIMEOUT), and a kernel usually follows one.  Measured there, float32,
# each kernel right after a two-thread product / after 0.15 s of quiet, serial and parallel:
# ReLU of 2M elements 0.47, 0.52 / 0.83, 0.88 ms; sigmoid of 4M 1.75, 1.82 / 1.82, 1.36; ReLU
# of 16M 4.6-5.0, 4.8-5.8 / 4.5-5.3, 4.0-4.3; GELU of 16M 13.8, 13.3 / 13.4, 7.9; batch norm's
# backward of 12.8M 9.4, 9.5 / 9.7, 7.4.  So the parallel variant runs only for launches of
# _PARALLEL_WORK elements or more, about even right after a product and 1.2-1.7x faster in
# quiet.  Kernels that do several times an exp's work per element (GELU's erf and exp,
# attention's score rows: 1.5-2 ns per element on one core) count each element four times.
# (With the former thresholds, 1M elements for kernels with an exp and 2M for the others, the
# MNIST CNN's step took 25.2 instead of 23.5 ms and the char GPT's 43.4 instead of 42.1 ms:
# docs/benchmarks.md.)
_PARALLEL_WORK = 1 << 23  # elements
# Below this many elements NumPy's one-pass maximum is as quick as a numba ReLU.
_NUMBA_MIN = 1 << 16
_FAST_MATH = {"reassoc", "contract"}  # vectorised sums; inf and NaN keep their meaning
# Rows per partial sum of the batch-norm statistics on channels-last data: fixed, so the sums
# are added in the same order whatever the number of threads.
_BN_CHUNK = 256


def _pick(kernels, work):
    """The parallel variant of a (serial, parallel) pair when the launch is big (``work`` >=
    _PARALLEL_WORK) and numba has more than one thread."""
    return kernels[1] if work >= _PARALLEL_WORK and numba.get_num_threads() > 1 else kernels[0]


def _both(fn, fastmath=_FAST_MATH):
    """(serial, parallel) compilations of ``fn``.  The parallel one compiles a renamed copy:
    numba's on-disk cache is keyed by the function's name and signature, not by its flags,
    so two variants of one function would overwrite each other's cached machine code."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    # error_model="numpy": a float division by zero gives inf/NaN instead of raising; the check
    # numba otherwise puts in front of every division keeps LLVM from vectorising the loop
    return (njit(cache=True, fastmath=fastmath, error_model="numpy")(fn),
            njit(parallel=True, cache=True, fastmath=fastmath, error_model="numpy")(twin))


# ======================================================================================
# Float32 math that vectorises (for the memory-bound kernels).  numba compiles math.exp to a call of the C
# library's scalar exp, and a max loop (``m = v if v > m else m``) to a compare-and-branch
# chain: LLVM turns neither into SIMD code, and at 16 float32 lanes per AVX-512 instruction
# that is what keeps a kernel from the memory's speed.  The helpers below are written so
# that it does: exp and expm1 from float32 multiply-adds and two bit operations, and the
# maximum through LLVM's maxnum.  Kernels call ``_exp`` / ``_max``, which pick these for
# float32 and the exact library functions for float64 (one kernel source, both dtypes).
# ======================================================================================

if numba is not None:
    from llvmlite import ir as _llvm_ir
    from numba import types as _nbtypes
    from numba.core.extending import intrinsic as _intrinsic
    from numba.extending import overload as _overload

    @_intrinsic
    def _float32_from_bits(typingctx, bits):
        """The float32 whose IEEE bit pattern is the low 32 bits of the integer ``bits``
        (what C writes as a union or memcpy; numba has no scalar bit cast)."""
        if not isinstance(bits, _nbtypes.Integer):
            return None

        def codegen(context, builder, signature, args):
            value = args[0]
            if bits.bitwidth != 32:
                value = builder.trunc(value, _llvm_ir.IntType(32)) if bits.bitwidth > 32 else \
                    builder.sext(value, _llvm_ir.IntType(32))
            return builder.bitcast(value, _llvm_ir.FloatType())
        return _nbtypes.float32(bits), codegen

    @_intrinsic
    def _maxnum(typingctx, a, b):
        """IEEE maxNum(a, b): the larger, and the other one where one is NaN.  LLVM vectorises
        a loop of these (16 lanes at a time), unlike numba's compare-and-branch max.  A NaN
        is skipped, so kernels that take a row maximum with it let NaN reach the output
        through the sum of exponentials instead (exp(NaN - m) is NaN)."""
        if a != b or not isinstance(a, _nbtypes.Float):
            return None

        def codegen(context, builder, signature, args):
            t = args[0].type
            fn = builder.module.declare_intrinsic("llvm.maxnum", [t], _llvm_ir.FunctionType(t, [t, t]))
            return builder.call(fn, args)
        return a(a, b), codegen

    _F32 = np.float32
    _LOG2E_F32, _HALF_F32, _ONE_F32, _ZERO_F32 = _F32(1 / math.log(2)), _F32(0.5), _F32(1), _F32(0)
    # ln 2 in two parts (Cody and Waite): k * _LN2_HI is exact for |k| < 2^15, so t - k ln 2
    # loses nothing to cancellation
    _LN2_HI_F32 = _F32(0.693359375)
    _LN2_LO_F32 = _F32(math.log(2) - 0.693359375)
    _EXP_LOW_F32, _EXP_HIGH_F32 = _F32(-104.0), _F32(100.0)  # exp is 0 below, inf above in float32
    _EXPM1_LOW_F32 = _F32(-88.0)                                # expm1 is -1 below
    _T1, _T2, _T3, _T4, _T5, _T6, _T7 = (_F32(1 / math.factorial(i)) for i in range(1, 8))

    @njit(inline="always")
    def _exp_reduce(t):
        """(k, r) with t = k ln 2 + r, k an integer (as float32), |r| <= ln 2 / 2."""
        k = np.floor(t * _LOG2E_F32 + _HALF_F32)
        return k, (t - k * _LN2_HI_F32) - k * _LN2_LO_F32

    @njit(inline="always")
    def _exp_f32(t):
        """exp(t) for float32 t, in float32 arithmetic that vectorises:
            exp(t) = 2^k exp(r),  t = k ln 2 + r,  |r| <= ln 2 / 2
        exp(r) by its Taylor polynomial of degree 7 (remainder below 8e-9, a tenth of a
        float32 ulp); 2^k is built from its bits, as two factors 2^(k//2) 2^(k - k//2) so that
        results below float32's smallest normal number (t < -87.3) come out as the correctly
        rounded subnormal instead of 0.  Error within one ulp (tests/test_cpu_kernels.py).
        Below -104 the result is 0, above 88.7 inf; NaN stays NaN."""
        tc = t if t > _EXP_LOW_F32 else _EXP_LOW_F32       # (NaN goes here too; restored below)
        tc = tc if tc < _EXP_HIGH_F32 else _EXP_HIGH_F32
        kf, r = _exp_reduce(tc)
        p = _ONE_F32 + r * (_T1 + r * (_T2 + r * (_T3 + r * (_T4 + r * (_T5 + r * (_T6 + r * _T7))))))
        k = np.int32(kf)
        half = k >> 1
        e = (p * _float32_from_bits((half + 127) << 23)) * _float32_from_bits((k - half + 127) << 23)
        e = e if t > _EXP_LOW_F32 else _ZERO_F32
        return e if t == t else t

    @njit(inline="always")
    def _expm1_nonpositive_f32(t):
        """exp(t) - 1 for float32 t <= 0, accurate also where it is tiny (t near 0, where
        exp(t) - 1 would cancel):  exp(t) - 1 = 2^k (exp(r) - 1) + (2^k - 1)  with exp(r) - 1
        by the polynomial without its constant term; for k = 0 that is the polynomial alone.
        -1 below -88; NaN stays NaN.  (Used by tanh.)  A float64 t gets float64 arithmetic
        throughout (2^k - 1 included): then the Taylor remainder, up to 2e-8 relative near
        t = -0.35, is all that is left (float32 results within 0.75 ulp)."""
        tc = t if t > _EXPM1_LOW_F32 else _EXPM1_LOW_F32
        kf, r = _exp_reduce(tc)
        q = r * (_T1 + r * (_T2 + r * (_T3 + r * (_T4 + r * (_T5 + r * (_T6 + r * _T7))))))
        # 2^k, k >= -127 (2^-127 reads as 0: fine here), in t's type
        s = _cast_like(_float32_from_bits((np.int32(kf) + 127) << 23), r)
        em = s * q + (s - _ONE_F32)
        return em if t == t else t

    def _exp(t):
        """exp(t) inside numba kernels: _exp_f32 for float32, math.exp for float64."""
        return math.exp(t)

    @_overload(_exp)
    def _exp_for(t):
        if t == _nbtypes.float32:
            return lambda t: _exp_f32(t)
        return lambda t: math.exp(t)

    # sigmoid and tanh of one number from the two helpers above, in the arithmetic of v: for
    # float32, float32 arithmetic (16 lanes per AVX-512 instruction), within 10 u = 5 ulp
    # (proved in tests/test_cpu_kernels.py; measured over 2e7 points in [-30, 30]: sigmoid
    # 2.4 ulp, tanh 2.5 ulp, NumPy's float32 tanh 1.4).  The elementwise kernels and the
    # recurrent cells' gates (_sigmoid1, _tanh1 below) use them.  (The cells evaluated them in
    # float64 arithmetic until 2026-12-07, within 0.75 ulp: the forward gate kernel of the
    # MNIST BiLSTM then took 116 us a step instead of 62.)
    @njit(inline="always")
    def _sigmoid_poly(v):
        """1 / (1 + e) for v >= 0, e / (1 + e) for v < 0, e = exp(-|v|) <= 1 (reference.sigmoid's
        formula: e never overflows)."""
        e = _exp_f32(-abs(v))
        return (_ONE_F32 if v >= _ZERO_F32 else e) / (_ONE_F32 + e)

    @njit(inline="always")
    def _tanh_poly(v):
        """tanh |v| = -m / (2 + m) with m = exp(-2|v|) - 1 (no cancellation near 0, where
        (1 - e) / (1 + e) would lose the digits), the sign of v put back (tanh(-0) = -0)."""
        m = _expm1_nonpositive_f32(_F32(-2) * abs(v))
        return np.copysign(-m / (_F32(2) + m), v)

    def _sigmoid1(v):
        """sigmoid(v) in the recurrent cells: float32 by _sigmoid_poly (the elementwise
        kernel's), float64 by the library's exp."""
        e = math.exp(-abs(v))
        return (1.0 if v >= 0 else e) / (1.0 + e)

    @_overload(_sigmoid1)
    def _sigmoid1_for(v):
        if v == _nbtypes.float32:
            return lambda v: _sigmoid_poly(v)

        def sigmoid(v):
            e = math.exp(-abs(v))
            return (1.0 if v >= 0 else e) / (1.0 + e)
        return sigmoid

    def _tanh1(v):
        """tanh(v) in the recurrent cells: float32 by _tanh_poly (the elementwise kernel's),
        float64 by the library's tanh."""
        return math.tanh(v)

    @_overload(_tanh1)
    def _tanh1_for(v):
        if v == _nbtypes.float32:
            return lambda v: _tanh_poly(v)
        return lambda v: math.tanh(v)

    def _cast_like(value, like):
        """``value`` converted to the type of ``like`` (float32 kernels keep float32 scalars:
        one float64 operand would turn a whole float32 loop into float64 arithmetic)."""
        return type(like)(value)

    @_overload(_cast_like, inline="always")
    def _cast_like_for(value, like):
        target = like
        return lambda value, like: target(value)

    @njit(inline="always")
    def _row_max(row):
        """max(row) for a row of >= 1 element, NaN skipped (see _maxnum); vectorised."""
        m = row[0]
        for j in range(row.size):
            m = _maxnum(m, row[j])
        return m

    @njit(inline="always")
    def _exp_row(row, out):
        """(m, s): the row maximum m, out = exp(row - m) and s = its sum (in float64), the
        three passes the softmax family shares (out may be the row's output row)."""
        m = _row_max(row)
        s = 0.0
        for j in range(row.size):
            p = _exp(row[j] - m)
            out[j] = p
            s += p
        return m, s


# ======================================================================================
# numba kernels
# ======================================================================================

if numba is not None:
    # Why the np.uint64(...) casts: numba checks every signed index for "negative means from
    # the end"; that branch stops LLVM from vectorising the inner loops.  Indices that are
    # known to be >= 0 are cast to unsigned, which drops the check (measured: col2im 4x faster;
    # a prange over _u(n) made the parallel ReLU 1.4x and the dropout mask 2x faster).
    # Careful: uint64 mixed with int64 gives float64 in numba, so the casts stay local.
    _u = np.uint64

    def _im2col_py(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra, cols):
        """cols (N*oh*ow, kh*kw*C + extra) of x (N, H, W, C), both C-contiguous."""
        n, h, w, c = x.shape
        K = kh * kw * c + extra
        xf = x.reshape(-1)
        cf = cols.reshape(-1)
        for task in prange(n * oh):  # one output row (image b, row y): ow rows of cols, ~1 KB
            b = task // oh
            y = task % oh
            row0 = task * ow
            for i in range(kh):
                iy = y * sh - ph + i * dh
                for j in range(kw):
                    col0 = (i * kw + j) * c
                    for xo in range(ow):
                        ix = xo * sw - pw + j * dw
                        d = _u((row0 + xo) * K + col0)
                        if iy < 0 or iy >= h or ix < 0 or ix >= w:  # padding reads 0
                            for ch in range(_u(c)):
                                cf[d + ch] = 0
                        else:  # the C channels of one pixel: one contiguous run
                            src = _u(((b * h + iy) * w + ix) * c)
                            for ch in range(_u(c)):
                                cf[d + ch] = xf[src + ch]
            for xo in range(ow * extra):  # the ones column (the bias input)
                cf[_u((row0 + xo) * K + K - 1)] = 1

    _im2col_nb = _both(_im2col_py, fastmath=False)

    def _im2col_1ch_py(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra):
        """One input channel: build the TRANSPOSE of cols, (kh*kw + extra, N*oh*ow), one row
        per tap, so each copy is a run along the output row (a pixel has only 1 channel)."""
        n, h, w = x.shape
        L = oh * ow
        colsT = np.empty((kh * kw + extra, n * L), dtype=x.dtype)
        for row in prange(kh * kw + extra):
            dst = colsT[row]
            if row == kh * kw:  # the ones row (the bias input)
                dst[:] = 1
                continue
            i = row // kw
            j = row % kw
            for b in range(n):
                for y in range(oh):
                    iy = y * sh - ph + i * dh
                    o = b * L + y * ow
                    for xo in range(ow):
                        ix = xo * sw - pw + j * dw
                        inside = iy >= 0 and iy < h and ix >= 0 and ix < w
                        dst[_u(o + xo)] = x[b, iy, ix] if inside else 0
        return colsT

    _im2col_1ch_nb = _both(_im2col_1ch_py, fastmath=False)

    def _col2im_py(cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dx):
        """dx (N, H, W, C) = col2im(cols), both C-contiguous (dx's contents are replaced)."""
        n, h, w, c = dx.shape
        K = cols.shape[1]
        dxf = dx.reshape(-1)
        cf = cols.reshape(-1)
        for b in prange(n):  # one image per task: tasks never write the same pixel
            dxf[_u(b * h * w * c):_u((b + 1) * h * w * c)] = 0
            for y in range(oh):
                for xo in range(ow):
                    src0 = ((b * oh + y) * ow + xo) * K
                    for i in range(kh):
                        iy = y * sh - ph + i * dh
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * sw - pw + j * dw
                            if ix < 0 or ix >= w:
                                continue
                            src = _u(src0 + (i * kw + j) * c)
                            dst = _u(((b * h + iy) * w + ix) * c)
                            for ch in range(_u(c)):
                                dxf[dst + ch] += cf[src + ch]

    _col2im_nb = _both(_col2im_py, fastmath=False)

    def _maxpool_fwd_py(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        n, c, h, w = x.shape
        xf = x.reshape((n * c, h * w))
        out = np.empty((n * c, oh * ow), dtype=x.dtype)
        arg = np.empty((n * c, oh * ow), dtype=np.int32)
        for task in prange(n * c):
            src = xf[task]
            for y in range(oh):
                for xo in range(ow):
                    best = src[0]
                    bi = -1
                    for i in range(kh):
                        iy = y * sh - ph + i * dh
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * sw - pw + j * dw
                            if ix < 0 or ix >= w:
                                continue
                            v = src[_u(iy * w + ix)]
                            # first max on ties (strict >); a NaN wins and the first NaN stays
                            if bi < 0 or v > best or (v != v and best == best):
                                best = v
                                bi = iy * w + ix
                    out[task, y * ow + xo] = best
                    arg[task, y * ow + xo] = bi
        return out.reshape((n, c, oh, ow)), arg.reshape((n, c, oh, ow))

    _maxpool_fwd_nb = _both(_maxpool_fwd_py, fastmath=False)

    def _maxpool2x2_fwd_py(x, oh, ow):
        """The common 2x2 / stride 2 / no padding case, unrolled (same tie and NaN rules)."""
        n, c, h, w = x.shape
        xf = x.reshape((n * c, h * w))
        out = np.empty((n * c, oh * ow), dtype=x.dtype)
        arg = np.empty((n * c, oh * ow), dtype=np.int32)
        for task in prange(n * c):
            src = xf[task]
            dst = out[task]
            da = arg[task]
            for y in range(oh):
                for xo in range(ow):
                    k = 2 * y * w + 2 * xo
                    best = src[_u(k)]
                    bi = k
                    v = src[_u(k + 1)]
                    if v > best or (v != v and best == best):
                        best = v
                        bi = k + 1
                    v = src[_u(k + w)]
                    if v > best or (v != v and best == best):
                        best = v
                        bi = k + w
                    v = src[_u(k + w + 1)]
                    if v > best or (v != v and best == best):
                        best = v
                        bi = k + w + 1
                    dst[_u(y * ow + xo)] = best
                    da[_u(y * ow + xo)] = bi
        return out.reshape((n, c, oh, ow)), arg.reshape((n, c, oh, ow))

    _maxpool2x2_fwd_nb = _both(_maxpool2x2_fwd_py, fastmath=False)

    def _maxpool_bwd_py(g, arg, n, c, h, w):
        gf = g.reshape((n * c, g.shape[2] * g.shape[3]))
        af = arg.reshape((n * c, g.shape[2] * g.shape[3]))
        dx = np.zeros((n * c, h * w), dtype=g.dtype)
        outside = 0
        for task in prange(n * c):
            dst = dx[task]
            for o in range(gf.shape[1]):
                a = af[task, o]
                if a < 0 or a >= h * w:  # never write out of bounds (counted, raised below)
                    outside += 1
                else:  # overlapping windows may pick the same input: accumulate
                    dst[_u(a)] += gf[task, o]
        if outside:
            raise ValueError("maxpool2d_backward: an argmax lies outside the input")
        return dx.reshape((n, c, h, w))

    _maxpool_bwd_nb = _both(_maxpool_bwd_py, fastmath=False)

    def _maxpool2x2_nhwc_fwd_py(x, oh, ow):
        """2x2 / stride 2 / no padding on channels-last x (N, H, W, C): the channel loop is
        innermost and contiguous, and branch-free (selects, no `or`) so it vectorises.
        argmax holds the same flat index y*W + x as the NCHW kernel, with the same tie and
        NaN rules (first maximum wins; a NaN wins and the first NaN stays)."""
        n, h, w, c = x.shape
        out = np.empty((n, oh, ow, c), dtype=x.dtype)
        arg = np.empty((n, oh, ow, c), dtype=np.int32)
        xf, of, af = x.reshape(-1), out.reshape(-1), arg.reshape(-1)
        for task in prange(n * oh):
            b = task // oh
            y = task % oh
            for xo in range(ow):
                k = 2 * y * w + 2 * xo
                s00 = _u(((b * h + 2 * y) * w + 2 * xo) * c)
                s01, s10 = s00 + _u(c), s00 + _u(w * c)
                s11 = s10 + _u(c)
                d = _u(((b * oh + y) * ow + xo) * c)
                for ch in range(_u(c)):
                    best = xf[s00 + ch]
                    bi = k
                    v = xf[s01 + ch]
                    take = (v > best) | ((v != v) & (best == best))
                    best = v if take else best
                    bi = k + 1 if take else bi
                    v = xf[s10 + ch]
                    take = (v > best) | ((v != v) & (best == best))
                    best = v if take else best
                    bi = k + w if take else bi
                    v = xf[s11 + ch]
                    take = (v > best) | ((v != v) & (best == best))
                    best = v if take else best
                    bi = k + w + 1 if take else bi
                    of[d + ch] = best
                    af[d + ch] = bi
        return out, arg

    _maxpool2x2_nhwc_fwd_nb = _both(_maxpool2x2_nhwc_fwd_py, fastmath=False)

    def _maxpool2x2_nhwc_bwd_py(g, arg, h, w):
        """Backward of the channels-last 2x2 pool.  The windows do not overlap, so every input
        pixel is written exactly once (the gradient at the winner, 0 elsewhere): no zeroing
        pass and no scatter.  Rows/columns past the last window (odd sizes) get 0."""
        n, oh, ow, c = g.shape
        dx = np.empty((n, h, w, c), dtype=g.dtype)
        gf, af, df = g.reshape(-1), arg.reshape(-1), dx.reshape(-1)
        for task in prange(n * oh):
            b = task // oh
            y = task % oh
            for xo in range(ow):
                s = _u(((b * oh + y) * ow + xo) * c)
                for corner in range(4):  # one loop per window corner: a single store stream
                    i, j = corner // 2, corner % 2   # (the four in one loop: 3-4x slower serial)
                    k = (2 * y + i) * w + 2 * xo + j
                    d = _u(((b * h + 2 * y + i) * w + 2 * xo + j) * c)
                    for ch in range(_u(c)):
                        df[d + ch] = gf[s + ch] if af[s + ch] == k else 0
            for r in range(2 * y, 2 * y + 2):
                for xx in range(2 * ow, w):
                    dx[b, r, xx] = 0
            if y == oh - 1:
                for r in range(2 * oh, h):
                    dx[b, r] = 0
        return dx

    _maxpool2x2_nhwc_bwd_nb = _both(_maxpool2x2_nhwc_bwd_py, fastmath=False)

    @njit(inline="always")
    def _avg_count(start, k, size, pad, include_pad):
        """How many elements of a window starting at ``start`` count in the divisor (one
        axis; PyTorch's rule, see reference._avg_divisors)."""
        if include_pad:
            return min(start + k, size + pad) - start
        return min(start + k, size) - max(start, 0)

    def _avgpool_py(src, dst, h, w, kh, kw, sh, sw, ph, pw, oh, ow, include_pad, adjoint):
        """Average pooling over (n*c) planes, or its adjoint: the same windows either way.
        Forward: src = x (planes, h*w), dst (planes, oh*ow) = window sums / divisors.
        Adjoint: src = g (planes, oh*ow), dst (planes, h*w) zeroed, each g / divisor added
        onto its window.  One plane per task: tasks never write the same element."""
        for task in prange(src.shape[0]):
            a, b = src[task], dst[task]
            for y in range(oh):
                y0 = y * sh - ph
                count_y = _avg_count(y0, kh, h, ph, include_pad)
                for xo in range(ow):
                    x0 = xo * sw - pw
                    divisor = count_y * _avg_count(x0, kw, w, pw, include_pad)
                    share = a[y * ow + xo] / divisor if adjoint else 0.0
                    s = 0.0
                    for iy in range(max(y0, 0), min(y0 + kh, h)):
                        for ix in range(max(x0, 0), min(x0 + kw, w)):
                            if adjoint:
                                b[_u(iy * w + ix)] += share
                            else:
                                s += a[_u(iy * w + ix)]
                    if not adjoint:
                        b[y * ow + xo] = s / divisor

    _avgpool_nb = _both(_avgpool_py, fastmath=False)

    def _cross_entropy_forward_py(x, target, weight, has_weight, ignore_index, e, losses, sumexp):
        """reference.cross_entropy_forward, one row per iteration: the row maximum, the sum of
        exponentials (accumulated in float64), the loss; the row is read from memory once."""
        n, c = x.shape
        w_sum = 0.0
        for j in range(c):
            w_sum += weight[j] if has_weight else 1.0
        for i in prange(_u(n)):
            row = x[i]
            m = _row_max(row)  # NaN skipped: it reaches s, lse and the loss through exp
            s = 0.0
            for j in range(c):
                s += _exp(row[j] - m)
            log_s = math.log(s)
            sumexp[i] = s
            t = target[i]
            if t == ignore_index:
                losses[i] = 0
            elif t < 0 or t >= c:
                losses[i] = np.nan
            else:
                loss = (log_s - (row[t] - m)) * (weight[t] if has_weight else 1.0)
                if e != 0:
                    smooth = 0.0
                    if has_weight:
                        for j in range(c):
                            smooth += weight[j] * (row[j] - m)
                    else:
                        for j in range(c):
                            smooth += row[j] - m
                    loss = (1 - e) * loss - (e / c) * (smooth - log_s * w_sum)
                losses[i] = loss

    def _cross_entropy_backward_py(x, target, grow, weight, has_weight, ignore_index, e, dx):
        """reference.cross_entropy_backward, one row per iteration.  The softmax is
        exp(x - m) / s from the row maximum m and s = sum exp(x - m), recomputed here (the row
        is in cache), never exp(x - lse): lse = m + log s is rounded to the spacing of m,
        which for logits of 1e4 is an error of 1e-3 in every probability (tests/test_numerics.py)."""
        n, c = x.shape
        w_sum = 0.0
        for j in range(c):
            w_sum += weight[j] if has_weight else 1.0
        for i in prange(_u(n)):
            t = target[i]
            out = dx[i]
            if t == ignore_index or t < 0 or t >= c:
                fill = 0.0 if t == ignore_index else np.nan
                for j in range(c):
                    out[j] = fill
                continue
            row = x[i]
            _, s = _exp_row(row, out)                          # out = exp(x - m), s its sum
            onehot = (1 - e) * (weight[t] if has_weight else 1.0)
            p_coef = onehot + (e / c) * w_sum if has_weight else 1.0
            g = grow[i]
            scale = _cast_like(p_coef * g / s, row[0])    # out = p * p_coef * g, p = out / s
            if e != 0:
                smooth = _cast_like((e / c) * g, row[0])
                if has_weight:
                    for j in range(c):
                        out[j] = out[j] * scale - smooth * weight[j]
                else:
                    for j in range(c):
                        out[j] = out[j] * scale - smooth
            else:
                for j in range(c):
                    out[j] = out[j] * scale
            out[t] -= _cast_like(onehot * g, row[0])

    # one thread for small batches (starting the pool costs more), all of them for large ones
    _ce_forward_nb = _both(_cross_entropy_forward_py)
    _ce_backward_nb = _both(_cross_entropy_backward_py)

    # -- the softmax family along the last axis of a C-contiguous array, one row per
    #    iteration: every row is read from memory once (the second and third loops over it
    #    find it in the cache) and written once
    def _softmax_rows_py(x, out):
        for i in prange(_u(x.shape[0])):
            row, dst = x[i], out[i]
            _, s = _exp_row(row, dst)
            inv = _cast_like(1.0 / s, row[0])
            for j in range(row.size):
                dst[j] *= inv

    def _log_softmax_rows_py(x, out):
        for i in prange(_u(x.shape[0])):
            row, dst = x[i], out[i]
            m, s = _exp_row(row, dst)                          # (dst is overwritten below)
            log_s = _cast_like(math.log(s), row[0])
            for j in range(row.size):
                dst[j] = (row[j] - m) - log_s

    def _softmax_backward_rows_py(g, y, out):
        for i in prange(_u(g.shape[0])):
            gr, yr, dst = g[i], y[i], out[i]
            d = 0.0
            for j in range(gr.size):
                d += gr[j] * yr[j]
            d = _cast_like(d, gr[0])
            for j in range(gr.size):
                dst[j] = yr[j] * (gr[j] - d)

    def _log_softmax_backward_rows_py(g, y, out):
        for i in prange(_u(g.shape[0])):
            gr, yr, dst = g[i], y[i], out[i]
            total = 0.0
            for j in range(gr.size):
                total += gr[j]
            total = _cast_like(total, gr[0])
            for j in range(gr.size):
                dst[j] = gr[j] - _exp(yr[j]) * total

    _softmax_rows_nb, _log_softmax_rows_nb = _both(_softmax_rows_py), _both(_log_softmax_rows_py)
    _softmax_backward_rows_nb = _both(_softmax_backward_rows_py)
    _log_softmax_backward_rows_nb = _both(_log_softmax_backward_rows_py)

    # -- sigmoid and tanh, float32 (float64 keeps reference.py's NumPy code: the library
    #    exp and tanh are exact to the last bit there, and float32 is what models run in)

    def _sigmoid_py(x, out):
        for i in prange(_u(x.size)):
            out[i] = _sigmoid_poly(x[i])

    def _sigmoid_backward_py(g, y, out):
        for i in prange(_u(g.size)):
            out[i] = g[i] * y[i] * (_ONE_F32 - y[i])

    def _tanh_py(x, out):
        for i in prange(_u(x.size)):
            out[i] = _tanh_poly(x[i])

    def _tanh_backward_py(g, y, out):
        for i in prange(_u(g.size)):
            out[i] = g[i] * (_ONE_F32 - y[i] * y[i])

    _sigmoid_nb, _sigmoid_backward_nb = _both(_sigmoid_py), _both(_sigmoid_backward_py)
    _tanh_nb, _tanh_backward_nb = _both(_tanh_py), _both(_tanh_backward_py)

    # -- batch norm.  Two layouts, one (N, C, L) view each:
    #    "planes": an NCHW array, (N, C, H*W) C-contiguous: channel c is N runs of L numbers.
    #       One task per channel computes its statistics and then its output, so the second
    #       read of the channel (hundreds of KB) comes from the core's cache, not from memory.
    #    "columns": channels-last (N, H, W, C) memory or a 2-D (N, C) array, as (M, C) rows:
    #       the statistics are sums over rows, in chunks of _BN_CHUNK rows per task (partial
    #       sums added in a fixed order: the result does not depend on the thread count).
    #    Statistics in float64 from one pass, sum(d) and sum(d^2) of d = x - K, with K the
    #    channel's first value: the shift keeps sum(d^2)/m - (sum(d)/m)^2 free of the
    #    cancellation that E[x^2] - E[x]^2 would suffer for a mean far from 0.
    def _bn_forward_planes_py(x, w, b, eps, training, mean, invstd, y):
        n, c, l = x.shape
        m = n * l
        for ch in prange(c):
            if training:
                k = np.float64(x[0, ch, 0])
                s = 0.0
                s2 = 0.0
                for i in range(n):
                    row = x[i, ch]
                    for j in range(l):
                        d = np.float64(row[j]) - k
                        s += d
                        s2 += d * d
                shift = s / m
                mean[ch] = k + shift
                invstd[ch] = 1.0 / math.sqrt(max(s2 / m - shift * shift, 0.0) + eps)
            mu = mean[ch]
            a = invstd[ch] * w[ch]
            for i in range(n):
                row, out = x[i, ch], y[i, ch]
                for j in range(l):
                    out[j] = (row[j] - mu) * a + b[ch]

    def _bn_column_sums_py(x, k, s, s2):
        """Per chunk of _BN_CHUNK rows: s[chunk] = sum(x - k), s2[chunk] = sum((x - k)^2)."""
        rows = x.shape[0]
        for chunk in prange(s.shape[0]):
            sp, s2p = s[chunk], s2[chunk]
            for r in range(chunk * _BN_CHUNK, min(rows, (chunk + 1) * _BN_CHUNK)):
                row = x[r]
                for ch in range(row.size):
                    d = np.float64(row[ch]) - k[ch]
                    sp[ch] += d
                    s2p[ch] += d * d

    def _bn_apply_columns_py(x, mean, a, b, y):
        """y = (x - mean) a + b per column."""
        for r in prange(_u(x.shape[0])):
            row, out = x[r], y[r]
            for ch in range(row.size):
                out[ch] = (row[ch] - mean[ch]) * a[ch] + b[ch]

    def _bn_backward_planes_py(g, x, mean, invstd, w, training, dx, dweight, dbias):
        """dweight = sum g xhat, dbias = sum g; dx = w invstd (g - dbias/m - xhat dweight/m)
        (training) or g w invstd (eval), per channel task."""
        n, c, l = x.shape
        m = n * l
        for ch in prange(c):
            mu = mean[ch]
            sg = 0.0
            sgx = 0.0
            for i in range(n):
                gr, xr = g[i, ch], x[i, ch]
                for j in range(l):
                    gv = np.float64(gr[j])
                    sg += gv
                    sgx += gv * (np.float64(xr[j]) - mu)
            dbias[ch] = sg
            dweight[ch] = sgx * invstd[ch]
            scale = w[ch] * invstd[ch]
            if training:  # dx = scale g - scale dbias / m - (x - mu) scale invstd dweight / m
                c0 = scale * sg / m
                c1 = scale * invstd[ch] * (sgx * invstd[ch]) / m
            else:
                c0 = 0.0
                c1 = 0.0
            s32, c032, c132, mu32 = _cast_like(scale, x[0, 0, 0]), _cast_like(c0, x[0, 0, 0]), \
                _cast_like(c1, x[0, 0, 0]), _cast_like(mu, x[0, 0, 0])
            for i in range(n):
                gr, xr, out = g[i, ch], x[i, ch], dx[i, ch]
                for j in range(l):
                    out[j] = s32 * gr[j] - c032 - c132 * (xr[j] - mu32)

    def _bn_backward_column_sums_py(g, x, mean, sg, sgx):
        rows = x.shape[0]
        for chunk in prange(sg.shape[0]):
            sp, sxp = sg[chunk], sgx[chunk]
            for r in range(chunk * _BN_CHUNK, min(rows, (chunk + 1) * _BN_CHUNK)):
                gr, xr = g[r], x[r]
                for ch in range(gr.size):
                    gv = np.float64(gr[ch])
                    sp[ch] += gv
                    sxp[ch] += gv * (np.float64(xr[ch]) - mean[ch])

    def _bn_backward_apply_columns_py(g, x, mean, scale, c0, c1, dx):
        """dx = scale g - c0 - c1 (x - mean) per column (the per-channel constants as above)."""
        for r in prange(_u(x.shape[0])):
            gr, xr, out = g[r], x[r], dx[r]
            for ch in range(gr.size):
                out[ch] = scale[ch] * gr[ch] - c0[ch] - c1[ch] * (xr[ch] - mean[ch])

    _bn_forward_planes_nb, _bn_column_sums_nb = _both(_bn_forward_planes_py), _both(_bn_column_sums_py)
    _bn_apply_columns_nb, _bn_backward_planes_nb = _both(_bn_apply_columns_py), _both(_bn_backward_planes_py)
    _bn_backward_column_sums_nb = _both(_bn_backward_column_sums_py)
    _bn_backward_apply_columns_nb = _both(_bn_backward_apply_columns_py)

    # -- attention: the products Q K^T, P V, ... stay NumPy's batched matmul (BLAS;
    #    2.5x faster than numba loops at the char GPT's (64 x 32) heads); everything between
    #    them, which reference.py does in a dozen array passes, is one numba pass over each
    #    score row, on all cores: scale, mask, causal -inf, max, exp, sum, normalise, lse.
    #    ``mask`` is (Bm, Tqm, Tk) with Bm, Tqm in (1, full); ``keep`` (B, Tq, Tk) holds the
    #    dropout multipliers, or is a (1, 1, 1) dummy when has_keep is False.
    def _attention_probs_py(s, mask, has_mask, causal, scale, keep, has_keep, lse):
        """s (B, Tq, Tk) holds Q K^T; overwritten with P * keep, lse filled.  Causal rows work
        on their first i + 1 entries only and zero the rest."""
        b_n, tq, tk = s.shape
        scale_t = _cast_like(scale, s[0, 0, 0])
        for r in prange(b_n * tq):
            b, i = r // tq, r % tq
            row = s[b, i]
            end = min(i + 1, tk) if causal else tk            # j > i: not allowed
            m = row[0] * scale_t
            if has_mask:  # (branches outside the loops: each loop stays one vectorised run)
                mrow = mask[min(b, mask.shape[0] - 1), min(i, mask.shape[1] - 1)]  # (1 or full)
                m = m + mrow[0]
                for j in range(end):
                    row[j] = row[j] * scale_t + mrow[j]
                    m = _maxnum(m, row[j])
            else:
                for j in range(end):
                    row[j] = row[j] * scale_t
                    m = _maxnum(m, row[j])                     # (all NaN: NaN, which flows on)
            for j in range(end, tk):
                row[j] = 0
            if m == -np.inf:                                   # masked everywhere: attends to nothing
                lse[b, i] = -np.inf
                for j in range(end):
                    row[j] = 0
                continue
            total = 0.0
            for j in range(end):
                p = _exp(row[j] - m)
                row[j] = p
                total += p
            lse[b, i] = m + math.log(total)
            inv = _cast_like(1.0 / total, scale_t)
            if has_keep:
                krow = keep[b, i]
                for j in range(end):
                    row[j] = row[j] * inv * krow[j]
            else:
                for j in range(end):
                    row[j] = row[j] * inv

    def _attention_grad_scores_py(s, dp, g, out, lse, mask, has_mask, causal, scale, keep, has_keep):
        """s (B, Tq, Tk) holds Q K^T, dp holds g V^T.  Overwrites s with P~ = P * keep and dp
        with dS scale = P (dP keep - D) scale, D_i = sum_d g_id out_id, P = exp(S - lse)."""
        b_n, tq, tk = s.shape
        scale_t = _cast_like(scale, s[0, 0, 0])
        for r in prange(b_n * tq):
            b, i = r // tq, r % tq
            row, drow = s[b, i], dp[b, i]
            lse_i = lse[b, i]
            end = min(i + 1, tk) if causal else tk
            if lse_i == -np.inf:                               # attended to nothing: no gradient
                end = 0
            delta = 0.0
            for d in range(g.shape[2]):
                delta += g[b, i, d] * out[b, i, d]
            delta_t = _cast_like(delta, scale_t)
            if has_mask:
                mrow = mask[min(b, mask.shape[0] - 1), min(i, mask.shape[1] - 1)]
                for j in range(end):
                    row[j] = _exp(row[j] * scale_t + mrow[j] - lse_i)
            else:
                for j in range(end):
                    row[j] = _exp(row[j] * scale_t - lse_i)
            if has_keep:
                krow = keep[b, i]
                for j in range(end):
                    drow[j] = row[j] * (drow[j] * krow[j] - delta_t) * scale_t
                    row[j] = row[j] * krow[j]
            else:
                for j in range(end):
                    drow[j] = row[j] * (drow[j] - delta_t) * scale_t
            for j in range(end, tk):
                row[j] = 0
                drow[j] = 0

    _attention_probs_nb, _attention_grad_scores_nb = _both(_attention_probs_py), _both(_attention_grad_scores_py)

    # -- x @ w^T + b for a few rows of x (a sampling step's single position): a dot product per
    #    output, vectorised along the rows of w.  For such shapes the BLAS call costs more
    #    than the arithmetic (measured 4.7 us against 3.5 us for (1, 128) x (384, 128)), and a
    #    BLAS that splits even them over its threads costs far more on a busy machine.
    def _small_linear_py(x, w, b, has_b, out):
        for i in range(x.shape[0]):
            xr = x[i]
            for j in range(w.shape[0]):
                wr = w[j]
                s = xr[0] - xr[0]                                      # 0 in x's dtype
                for t in range(xr.size):
                    s += xr[t] * wr[t]
                out[i, j] = s + b[j] if has_b else s

    _small_linear_nb = njit(cache=True, fastmath=_FAST_MATH, error_model="numpy")(_small_linear_py)

    # -- the sum of squares in float64, each element widened as it is read (reference.py
    #    widens a copy of the whole array first: 1.7 ms against 0.06 ms for the char GPT's 53
    #    gradients).  One thread: the partial sums' order then never depends on the threads.
    def _sum_of_squares_py(flat):
        s = 0.0
        for i in range(_u(flat.size)):
            v = np.float64(flat[i])
            s += v * v
        return s

    _sum_of_squares_nb = njit(cache=True, fastmath=_FAST_MATH, error_model="numpy")(_sum_of_squares_py)

    def _relu_py(x, out):
        for i in prange(_u(x.size)):
            v = x[i]
            out[i] = 0 if v < 0 else v  # NaN stays NaN, like np.maximum

    def _relu_backward_py(g, y, out):
        for i in prange(_u(g.size)):
            out[i] = g[i] if y[i] > 0 else 0

    _relu_nb, _relu_backward_nb = _both(_relu_py), _both(_relu_backward_py)

    _SQRT_2_OVER_PI, _INV_SQRT_2, _INV_SQRT_2PI = _ref._SQRT_2_OVER_PI, _ref._INV_SQRT_2, _ref._INV_SQRT_2PI
    _GELU_C = _ref._GELU_C

    # float32 erf and exp for the GELU kernels: math.erf and math.exp are scalar libm calls
    # that LLVM cannot vectorise, and they were most of a float32 GELU's time.  erf(x) is
    # x P(s) / Q(s), s = x^2 / 3.9^2, fitted by tools/fit_erf.py (relative error 2e-8),
    # evaluated in float64 and rounded: within one float32 ulp.  float64 inputs keep math.erf.
    _ERF_XMAX = 3.9
    _ERF_P = (1.128379150109674, 2.877994913985937, 12.170892295564832, 13.088057777801023,
              15.238287409628978, 1.6857669060041172)
    _ERF_Q = (1.0, 7.620549090264148, 26.288551487929933, 52.345626129124405,
              61.70776211928976, 31.176090237445)
    _P0, _P1, _P2, _P3, _P4, _P5 = _ERF_P
    _Q0, _Q1, _Q2, _Q3, _Q4, _Q5 = _ERF_Q
    _INV_XMAX2 = 1 / _ERF_XMAX ** 2

    @njit(inline="always")
    def _erf_rational(x):
        s = min(x * x * _INV_XMAX2, 1.0)
        num = _P0 + s * (_P1 + s * (_P2 + s * (_P3 + s * (_P4 + s * _P5))))
        den = _Q0 + s * (_Q1 + s * (_Q2 + s * (_Q3 + s * (_Q4 + s * _Q5))))
        beyond = abs(x) > _ERF_XMAX           # False for NaN, which stays NaN through num / den
        return math.copysign(1.0, x) if beyond else x * (num / den)

    @njit(inline="always")
    def _erf(x, float32_math):
        return _erf_rational(x) if float32_math else math.erf(x)

    # exp(t) for t <= 0 without libm (which LLVM cannot vectorise either): exp(t / 256) by its
    # Taylor polynomial of degree 9 (|t / 256| <= 0.39: remainder 2e-11), squared 8 times
    # (the relative error grows 256-fold: 1e-8, below float32's 6e-8).  Below t = -104 it
    # returns 0, which is what float32 rounds exp(t) to there (below -150 ln 2 = -103.97 it is
    # under half the smallest subnormal, 2^-150), so that -inf * exp(-inf) is NaN as with
    # math.exp.  (A cut at -100 lost the subnormal results 1.4e-45 .. 3.7e-44: sigmoid(-102)
    # gave 0, and a gradient that multiplies it by 1e38, an LSTM's dc = dc' f, lost 4e-6.)
    @njit(inline="always")
    def _exp_nonpositive(t):
        r = max(t, -104.0) * (1 / 256)
        e = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
            1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880)))))))))
        for _ in range(8):
            e *= e
        return 0.0 if t < -104.0 else e

    @njit(inline="always")
    def _gauss(x, float32_math):
        """exp(-x^2 / 2)"""
        return _exp_nonpositive(-0.5 * x * x) if float32_math else math.exp(-0.5 * x * x)

    def _gelu_py(x, out, tanh_form, float32_math):
        for i in prange(_u(x.size)):
            v = x[i]
            if tanh_form:
                out[i] = 0.5 * v * (1 + math.tanh(_SQRT_2_OVER_PI * (v + _GELU_C * v * v * v)))
            else:
                out[i] = 0.5 * v * (1 + _erf(v * _INV_SQRT_2, float32_math))

    def _gelu_backward_py(g, x, out, tanh_form, float32_math):
        for i in prange(_u(x.size)):
            v = x[i]
            if tanh_form:
                t = math.tanh(_SQRT_2_OVER_PI * (v + _GELU_C * v * v * v))
                du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * v * v)
                out[i] = g[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
            else:
                cdf = 0.5 * (1 + _erf(v * _INV_SQRT_2, float32_math))
                out[i] = g[i] * (cdf + v * _INV_SQRT_2PI * _gauss(v, float32_math))

    # serial for small launches (see _PARALLEL_WORK): handing one token's activations (a GPT
    # sampling step) to the thread pool cost ~90 us, the work itself ~1 us
    _gelu_nb, _gelu_backward_nb = _both(_gelu_py), _both(_gelu_backward_py)

    # Philox4x32-10 as in reference._philox4x32, one 4-word block per loop iteration.  The
    # words are uint32 and each round's products are uint32 x uint32 -> uint64: LLVM then
    # vectorises the rounds over 8 or 16 blocks at a time (vpmuludq; 4x faster than with
    # every word held in uint64, measured).  An element is kept iff (word >> 8) 2^-24 >= p,
    # i.e. iff the integer word >> 8 is >= ceil(p 2^24) (exact: p 2^24 is exact in float64).
    _u32 = np.uint32
    _M0, _M1 = _u(_ref._PHILOX_M0), _u(_ref._PHILOX_M1)
    _W0, _W1 = _u32(_ref._PHILOX_W0), _u32(_ref._PHILOX_W1)
    _LO, _S32, _S8 = _u(_ref._LO32), _u(32), _u32(8)

    @njit(inline="always")
    def _philox4x32_10(block, k0, k1):
        """The four words of block number ``block`` (uint64) under key (k0, k1) (uint32)."""
        c0, c1, c2, c3 = _u32(block & _LO), _u32(block >> _S32), _u32(0), _u32(0)
        for _ in range(10):
            p0 = _u(c0) * _M0
            p1 = _u(c2) * _M1
            c0, c1, c2, c3 = _u32(_u32(p1 >> _S32) ^ c1 ^ k0), _u32(p1), _u32(_u32(p0 >> _S32) ^ c3 ^ k1), _u32(p0)
            k0, k1 = _u32(k0 + _W0), _u32(k1 + _W1)
        return c0, c1, c2, c3

    def _dropout_mask_py(out, threshold, scale, k0, k1, offset):
        size = out.size
        zero = scale - scale
        for blk in prange(_u(size // 4)):  # whole blocks: four stores, no branch
            c0, c1, c2, c3 = _philox4x32_10(offset + blk, k0, k1)
            i = blk * _u(4)
            out[i] = scale if (c0 >> _S8) >= threshold else zero
            out[i + _u(1)] = scale if (c1 >> _S8) >= threshold else zero
            out[i + _u(2)] = scale if (c2 >> _S8) >= threshold else zero
            out[i + _u(3)] = scale if (c3 >> _S8) >= threshold else zero
        start = size - size % 4
        if start < size:  # the last block's first 1-3 words
            words = _philox4x32_10(offset + _u(size // 4), k0, k1)
            for word in range(size - start):
                out[start + word] = scale if (words[word] >> _S8) >= threshold else zero

    _dropout_mask_nb = _both(_dropout_mask_py)

    @njit(cache=True)
    def _embedding_backward_nb(g, indices, dw):
        rows = dw.shape[0]
        for m in range(g.shape[0]):  # one thread, in index order: deterministic sums
            r = indices[m]
            if r < 0 or r >= rows:
                raise ValueError("embedding_backward: an index is outside [0, num_embeddings)")
            for d in range(g.shape[1]):
                dw[r, d] += g[m, d]

    # The updates: one pass over each parameter's arrays, on all cores for big parameters;
    # no fast-math, so each element rounds exactly as the reference's sequence of array calls.
    def _sgd_py(x, g, buf, lr, wd, momentum, undamped, nesterov, first):
        for i in prange(_u(x.size)):
            d = g[i]
            if wd != 0:
                d = d + wd * x[i]
            if momentum != 0:
                if first:
                    b = d
                else:
                    b = momentum * buf[i] + undamped * d
                buf[i] = b
                if nesterov:
                    d = d + momentum * b
                else:
                    d = b
            x[i] = x[i] - lr * d

    def _adam_py(x, g, m, v, vmax, step_size, b1, c1, b2, c2, eps, inv_sqrt_bc2, wd, decay, amsgrad):
        # c1 = 1 - b1 and c2 = 1 - b2 come in already in the array dtype (no float64 promotion)
        for i in prange(_u(x.size)):
            gi = g[i]
            if wd != 0:
                gi = gi + wd * x[i]
            xi = x[i] * decay
            mi = b1 * m[i] + c1 * gi
            vi = b2 * v[i] + c2 * gi * gi
            m[i] = mi
            v[i] = vi
            if amsgrad:
                if vmax[i] > vi:
                    vi = vmax[i]
                vmax[i] = vi
            x[i] = xi - step_size * (mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps))

    _sgd_nb, _adam_nb = _both(_sgd_py, fastmath=False), _both(_adam_py, fastmath=False)

    def _rmsprop_py(x, g, v, a, buf, lr, alpha, c_alpha, eps, wd, momentum, centered, has_momentum):
        # the scalars come in x's dtype (c_alpha = 1 - alpha), in reference.rmsprop_step_'s order
        for i in prange(_u(x.size)):
            gi = g[i]
            if wd != 0:
                gi = gi + wd * x[i]
            vi = v[i] * alpha + c_alpha * (gi * gi)
            v[i] = vi
            var = vi
            if centered:
                ai = a[i] * alpha + c_alpha * gi
                a[i] = ai
                var = vi - ai * ai
            d = gi / (np.sqrt(var) + eps)
            if has_momentum:
                d = buf[i] * momentum + d
                buf[i] = d
            x[i] = x[i] - lr * d

    def _rmsprop_plain_py(x, g, v, lr, alpha, c_alpha, eps, wd):
        """_rmsprop_py without averages and momentum (the defaults).  Its own loop because
        _rmsprop_py must then be given x for a and buf, and a loop that may write them fails
        LLVM's run-time overlap check and runs scalar (measured 8x slower)."""
        for i in prange(_u(x.size)):
            gi = g[i]
            if wd != 0:
                gi = gi + wd * x[i]
            vi = v[i] * alpha + c_alpha * (gi * gi)
            v[i] = vi
            x[i] = x[i] - lr * (gi / (np.sqrt(vi) + eps))

    _rmsprop_nb = _both(_rmsprop_py, fastmath=False)
    _rmsprop_plain_nb = _both(_rmsprop_plain_py, fastmath=False)


# ======================================================================================
# The overrides (same signatures and semantics as reference.py)
# ======================================================================================


def im2col(x, kernel, stride, padding, dilation, out_size, ones_column=False):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    if not use_numba() or type(x) is not np.ndarray or x.dtype.kind != "f" or x.ndim != 4:
        return _ref.im2col(x, kernel, stride, padding, dilation, out_size, ones_column)
    extra = int(bool(ones_column))
    if x.shape[3] == 1:
        # one channel (a first layer on images): the transposed layout copies long runs;
        # the .T view is the same matrix for the GEMMs (BLAS reads it transposed, no copy)
        work = x.shape[0] * oh * ow * (kh * kw + extra)  # elements of cols written
        return _pick(_im2col_1ch_nb, work)(np.ascontiguousarray(x[..., 0]), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow,
                                           extra).T
    work = x.shape[0] * oh * ow * (kh * kw * x.shape[3] + extra)
    return _unroll(np.ascontiguousarray(x), kernel, stride, padding, dilation, out_size, extra, _pick(_im2col_nb, work))


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_size):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, h, w, c = x_shape
    if (not use_numba() or type(cols) is not np.ndarray or cols.dtype.kind != "f"
            or cols.shape != (n * oh * ow, kh * kw * c)):
        return _ref.col2im(cols, x_shape, kernel, stride, padding, dilation, out_size)
    dx = np.empty((n, h, w, c), dtype=cols.dtype)
    _pick(_col2im_nb, cols.size)(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dx)
    return dx


# A convolution on the CPU (ops/conv.py has the math): the batch in pieces of whole images, each
# unrolled (im2col, one core) and multiplied by W2 (the BLAS's threads) while its columns are in
# cache; the backward unrolls each piece again instead of keeping the columns.  For the MNIST
# CNN's conv2 that is ~2 MB per piece that never leaves the cache instead of 17.8 MB written once
# and read twice from memory: its forward 6.4-7.8 ms -> 3.5-4.1 ms on two cores.  (The pieces one
# per core, each on a one-thread BLAS, took 3.5 ms alone but 7.5 ms right after a two-thread
# GEMM: OpenBLAS's idle thread spins for a while after each product and takes half the second
# core.)  The bias gradient comes out of the same products (the ones column).
_CONV_PIECE_ROWS = 2048  # output pixels per piece: 3x3x32 taps -> 2.4 MB of float32 columns


def _conv_pieces(x, out_size):
    """[(first image, end)] of the pieces, or None where they do not apply (the reference
    composition with this table's im2col and col2im then runs: one channel (its
    transposed layout), no images, images of more output pixels than a piece, other arrays)."""
    if (not use_numba() or type(x) is not np.ndarray or x.dtype.kind != "f" or x.ndim != 4 or x.shape[3] == 1
            or x.shape[0] == 0):
        return None
    per = _CONV_PIECE_ROWS // max(1, out_size[0] * out_size[1])
    if per < 1:  # an image bigger than a piece (ResNet's 56 x 56): the parallel kernels on the whole batch
        return None
    return [(a, min(a + per, x.shape[0])) for a in range(0, x.shape[0], per)]


_conv_generic_forward, _conv_generic_backward = _ref._convolution(im2col, col2im, _ref.matmul)


def conv2d_forward(x, wmat, kernel, stride, padding, dilation, out_size):
    pieces = _conv_pieces(x, out_size)
    if pieces is None or type(wmat) is not np.ndarray or wmat.dtype != x.dtype:
        return _conv_generic_forward(x, wmat, kernel, stride, padding, dilation, out_size)
    _, extra, rows = _ref._conv_sizes("conv2d_forward", x, wmat, kernel, out_size)
    x = np.ascontiguousarray(x)
    y = np.empty((x.shape[0] * rows, wmat.shape[1]), dtype=x.dtype)
    for a, b in pieces:  # (the serial im2col: numba's parallel launch costs more than a piece)
        np.matmul(_unroll(x[a:b], kernel, stride, padding, dilation, out_size, extra, _im2col_nb[0]), wmat,
                  out=y[a * rows:b * rows])
    return y, None


def conv2d_backward(g, x, wmat, saved, kernel, stride, padding, dilation, out_size, need_x, need_w):
    pieces = _conv_pieces(x, out_size)
    if (saved is not None or pieces is None or type(g) is not np.ndarray or type(wmat) is not np.ndarray
            or not g.dtype == wmat.dtype == x.dtype):
        return _conv_generic_backward(g, x, wmat, saved, kernel, stride, padding, dilation, out_size,
                                      need_x, need_w)
    taps, extra, rows = _ref._conv_sizes("conv2d_backward", x, wmat, kernel, out_size, g)
    x, g = np.ascontiguousarray(x), np.ascontiguousarray(g)
    w_t = np.ascontiguousarray(wmat[:taps].T)
    dx = np.empty(x.shape, dtype=x.dtype) if need_x else None
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size

    dW2T = np.zeros((wmat.shape[1], wmat.shape[0]), dtype=x.dtype) if need_w else None
    for a, b in pieces:
        ga = g[a * rows:b * rows]
        if need_x:
            _col2im_nb[0](ga @ w_t, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, dx[a:b])
        if need_w:  # dW2^T += ga^T cols (this orientation is the faster one for row-major cols)
            dW2T += ga.T @ _unroll(x[a:b], kernel, stride, padding, dilation, out_size, extra, _im2col_nb[0])
    return (None if dW2T is None else dW2T.T), dx


def _unroll(x, kernel, stride, padding, dilation, out_size, extra, kernel_variant):
    """cols of x (N, H, W, C), C-contiguous, by ``kernel_variant`` of _im2col_nb (serial or parallel)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    cols = np.empty((x.shape[0] * oh * ow, kh * kw * x.shape[3] + extra), dtype=x.dtype)
    kernel_variant(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra, cols)
    return cols


def _is_2x2(x_hw, kernel, stride, padding, dilation, out_size):
    """The MNIST case: 2x2 windows, stride 2, no padding, floor mode (no window past the edge)."""
    return ((kernel, stride, padding, dilation) == ((2, 2), (2, 2), (0, 0), (1, 1))
            and tuple(out_size) == (x_hw[0] // 2, x_hw[1] // 2))


def maxpool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """As reference.maxpool2d_forward.  A channels-last input (a conv2d output) keeps its
    layout through the 2x2 pool: out and argmax come back as (N, C, oh, ow) views of
    (N, oh, ow, C) arrays."""
    if not use_numba() or type(x) is not np.ndarray or x.dtype.kind != "f" or x.ndim != 4:
        return _ref.maxpool2d_forward(x, kernel, stride, padding, dilation, out_size)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    square2 = _is_2x2(x.shape[2:], kernel, stride, padding, dilation, out_size)
    if square2 and is_channels_last(x) and not x.flags.c_contiguous:
        out, arg = _pick(_maxpool2x2_nhwc_fwd_nb, x.size)(x.transpose(0, 2, 3, 1), oh, ow)
        return out.transpose(0, 3, 1, 2), arg.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x)
    if square2:
        return _pick(_maxpool2x2_fwd_nb, x.size)(x, oh, ow)
    return _pick(_maxpool_fwd_nb, x.size)(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def maxpool2d_backward(g, argmax, x_shape, kernel, stride, padding, dilation):
    """As reference.maxpool2d_backward; dx has the layout of the forward's input (the
    argmax array's layout tells which)."""
    n, c, h, w = x_shape
    if (not use_numba() or type(g) is not np.ndarray or g.dtype.kind != "f" or g.shape != argmax.shape
            or g.ndim != 4 or g.shape[:2] != (n, c)):
        return _ref.maxpool2d_backward(g, argmax, x_shape, kernel, stride, padding, dilation)
    if is_channels_last(argmax) and not argmax.flags.c_contiguous and \
            _is_2x2((h, w), kernel, stride, padding, dilation, g.shape[2:]):
        dx = _pick(_maxpool2x2_nhwc_bwd_nb, n * c * h * w)(_ref.channels_last(g), argmax.transpose(0, 2, 3, 1), h, w)
        return dx.transpose(0, 3, 1, 2)
    return _pick(_maxpool_bwd_nb, n * c * h * w)(np.ascontiguousarray(g), np.ascontiguousarray(argmax), n, c, h, w)


def avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad):
    if not use_numba() or type(x) is not np.ndarray or x.dtype.kind != "f" or x.ndim != 4:
        return _ref.avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad)
    n, c, h, w = x.shape
    out = np.empty((n * c, out_size[0] * out_size[1]), dtype=x.dtype)
    _pick(_avgpool_nb, x.size)(np.ascontiguousarray(x).reshape(n * c, h * w), out, h, w, *kernel, *stride, *padding,
                               *out_size, bool(count_include_pad), False)
    return out.reshape((n, c) + tuple(out_size))


def avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size, count_include_pad):
    n, c, h, w = x_shape
    if (not use_numba() or type(g) is not np.ndarray or g.dtype.kind != "f"
            or tuple(g.shape) != (n, c) + tuple(out_size)):
        return _ref.avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size, count_include_pad)
    dx = np.zeros((n * c, h * w), dtype=g.dtype)
    g_planes = np.ascontiguousarray(g).reshape(n * c, out_size[0] * out_size[1])
    _pick(_avgpool_nb, dx.size)(g_planes, dx, h, w, *kernel, *stride, *padding, *out_size, bool(count_include_pad), True)
    return dx.reshape(x_shape)


def _ce_weight(x, target, weight, *rows):
    """The weight for the numba kernels (a dummy for None) when they can take the arrays as
    they are: x a C-contiguous float (N, C) array, int64 labels (N,), rows (N,) and a weight
    (C,) of x's dtype; else None (the reference runs, and raises for bad shapes)."""
    if not (use_numba() and type(x) is np.ndarray and type(target) is np.ndarray and x.ndim == 2
            and x.flags.c_contiguous and x.dtype.kind == "f" and x.shape[1] and target.dtype == np.int64
            and target.shape == x.shape[:1]):
        return None
    for r in rows:
        if type(r) is not np.ndarray or r.dtype != x.dtype or r.shape != target.shape:
            return None
    if weight is None:
        return _NO_WEIGHT[x.dtype.char]
    if type(weight) is not np.ndarray or weight.dtype != x.dtype or weight.shape != x.shape[1:]:
        return None
    return weight


_NO_WEIGHT = {np.dtype(t).char: np.ones(1, dtype=t) for t in (np.float16, np.float32, np.float64)}  # never read


def cross_entropy_forward(x, target, weight, ignore_index, label_smoothing):
    """One pass per row (max, sum of exponentials, the loss) instead of a dozen array calls."""
    w = _ce_weight(x, target, weight)
    if w is None:
        return _ref.cross_entropy_forward(x, target, weight, ignore_index, label_smoothing)
    losses, sumexp = np.empty(x.shape[0], dtype=x.dtype), np.empty(x.shape[0], dtype=x.dtype)
    _pick(_ce_forward_nb, x.size)(x, target, w, weight is not None, int(ignore_index),
                                  float(label_smoothing), losses, sumexp)
    return losses, sumexp


def cross_entropy_backward(x, target, sumexp, grow, weight, ignore_index, label_smoothing):
    """One pass per row, the softmax recomputed from the row maximum (``sumexp`` is checked
    for its shape, not read: the row is in cache, see _cross_entropy_backward_py)."""
    w = _ce_weight(x, target, weight, sumexp, grow)
    if w is None:
        return _ref.cross_entropy_backward(x, target, sumexp, grow, weight, ignore_index, label_smoothing)
    dx = np.empty_like(x)
    _pick(_ce_backward_nb, x.size)(x, target, grow, w, weight is not None, int(ignore_index),
                                   float(label_smoothing), dx)
    return dx


def _last_axis_rows(axis, *arrays):
    """(rows, columns) views of C-contiguous float arrays of one shape and dtype, reduced along
    their last axis ``axis``, for the row kernels; None when they do not suit (another axis
    or layout, an empty array, numba off): the reference runs."""
    first = arrays[0]
    if (not use_numba() or type(first) is not np.ndarray or first.dtype.kind != "f" or first.ndim == 0
            or first.size == 0 or axis not in (first.ndim - 1, -1)):
        return None
    for a in arrays:
        if type(a) is not np.ndarray or a.shape != first.shape or a.dtype != first.dtype or not a.flags.c_contiguous:
            return None
    return [a.reshape(-1, first.shape[-1]) for a in arrays]


def _rows_call(kernels, reference, axis, *arrays):
    """out = kernel(*arrays) row by row when the arrays suit (see _last_axis_rows), else the
    reference."""
    rows = _last_axis_rows(axis, *arrays)
    if rows is None:
        return reference(*arrays, axis)
    out = np.empty_like(arrays[0])
    _pick(kernels, out.size)(*rows, out.reshape(rows[0].shape))  # (an exp per element)
    return out


def softmax(x, axis):
    """One pass over each row: its max, exp(x - max) and their sum, the scaling."""
    return _rows_call(_softmax_rows_nb, _ref.softmax, axis, x)


def softmax_backward(g, y, axis):
    return _rows_call(_softmax_backward_rows_nb, _ref.softmax_backward, axis, g, y)


def log_softmax(x, axis):
    return _rows_call(_log_softmax_rows_nb, _ref.log_softmax, axis, x)


def log_softmax_backward(g, y, axis):
    return _rows_call(_log_softmax_backward_rows_nb, _ref.log_softmax_backward, axis, g, y)


def _float32_call(kernels, reference, *arrays):
    """out = kernel(*arrays) elementwise on float32 arrays of one dense layout (C order or
    channels-last; out gets that layout too), else the reference."""
    flats = _same_layout_flats(*arrays) if arrays[0].dtype == np.float32 else None
    if flats is None:
        return reference(*arrays)
    out = np.empty_like(arrays[0])  # same layout
    _pick(kernels, out.size)(*flats, _dense_flat(out))
    return out


def sigmoid(x):
    """One pass in float32 (vectorised exp); float64 as the reference."""
    return _float32_call(_sigmoid_nb, _ref.sigmoid, x)


def sigmoid_backward(g, y):
    return _float32_call(_sigmoid_backward_nb, _ref.sigmoid_backward, g, y)


def tanh(x):
    """One pass in float32 (vectorised expm1); float64 as the reference."""
    return _float32_call(_tanh_nb, _ref.tanh, x)


def tanh_backward(g, y):
    return _float32_call(_tanh_backward_nb, _ref.tanh_backward, g, y)



def _attention_arrays(q, k, v, mask, dropout_p, seed, offset, *more):
    """The arrays as the numba attention kernels take them (one float dtype; the mask
    broadcast along its last axis only; the dropout multipliers drawn), or None."""
    arrays = (q, k, v, *more) + (() if mask is None else (mask,))
    if not use_numba() or any(type(a) is not np.ndarray or a.dtype != q.dtype for a in arrays) or q.dtype.kind != "f":
        return None
    b, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    if not b or not tq or not tk:
        return None
    if mask is None:
        mask_arr = np.zeros((1, 1, 1), dtype=q.dtype)
    else:
        mask_arr = np.ascontiguousarray(np.broadcast_to(mask, mask.shape[:2] + (tk,)))
    keep = (dropout_mask((b, tq, tk), dropout_p, seed, offset, q.dtype) if dropout_p
            else np.ones((1, 1, 1), dtype=q.dtype))
    return mask_arr, keep


def attention_forward(q, k, v, mask, is_causal, scale, dropout_p, seed, offset):
    """reference.attention_forward with its passes between the two products fused into one
    numba pass per score row (see _attention_probs_py)."""
    _ref._check_attention("attention_forward", q, k, v, mask)
    prepared = _attention_arrays(q, k, v, mask, dropout_p, seed, offset)
    if prepared is None:
        return _ref.attention_forward(q, k, v, mask, is_causal, scale, dropout_p, seed, offset)
    mask_arr, keep = prepared
    p = q @ k.transpose(0, 2, 1)                                # S, turned into P * keep
    lse = np.empty(q.shape[:2], dtype=q.dtype)
    _pick(_attention_probs_nb, 4 * p.size)(p, mask_arr, mask is not None, bool(is_causal), float(scale),
                                           keep, bool(dropout_p), lse)
    return p @ v, lse


def attention_backward(g, q, k, v, out, lse, mask, is_causal, scale, dropout_p, seed, offset):
    _ref._check_attention("attention_backward", q, k, v, mask, g=g, out=out, lse=lse)
    prepared = _attention_arrays(q, k, v, mask, dropout_p, seed, offset, g, out, lse)
    if prepared is None:
        return _ref.attention_backward(g, q, k, v, out, lse, mask, is_causal, scale, dropout_p, seed, offset)
    mask_arr, keep = prepared
    p = q @ k.transpose(0, 2, 1)                                # S, turned into P~ = P * keep
    ds = g @ v.transpose(0, 2, 1)                               # dP, turned into dS scale
    _pick(_attention_grad_scores_nb, 4 * p.size)(p, ds, g, out, lse, mask_arr, mask is not None,
                                                 bool(is_causal), float(scale), keep, bool(dropout_p))
    return ds @ k, ds.transpose(0, 2, 1) @ q, p.transpose(0, 2, 1) @ g


def sum_of_squares(x):
    """As reference.sum_of_squares: the numba loop for a dense float array."""
    flat = _dense_flat(x) if use_numba() and type(x) is np.ndarray and x.dtype.kind == "f" else None
    if flat is None:
        return _ref.sum_of_squares(x)
    return np.asarray(_sum_of_squares_nb(flat))


# Up to this many rows of x, linear runs the numba loop instead of a BLAS call (see
# _small_linear_py; measured against single-threaded OpenBLAS for (M, 128) x (384, 128):
# 26 against 34 us at M = 8, even at 16, 102 against 59 us at 32).
_SMALL_LINEAR_ROWS = 16


def linear(x, w, b):
    """x @ w^T + b: the numba loop for a few rows of C-contiguous arrays, else the reference."""
    if (x.ndim == 2 and 0 < x.shape[0] <= _SMALL_LINEAR_ROWS and x.shape[1] and use_numba()
            and _numba_ok(x, w, *(() if b is None else (b,))) and w.ndim == 2 and x.shape[1] == w.shape[1]
            and (b is None or b.shape == (w.shape[0],))):
        out = np.empty((x.shape[0], w.shape[0]), dtype=x.dtype)
        _small_linear_nb(x, w, x[0] if b is None else b, b is not None, out)
        return out
    return _ref.linear(x, w, b)


def _bn_view(a):
    """("planes", (N, C, L) view) for a C-contiguous NCHW array, ("columns", (M, C) view) for a
    channels-last one or a C-contiguous 2-D (N, C) array, else None."""
    if type(a) is not np.ndarray or a.dtype.kind != "f":
        return None
    if a.ndim == 4 and a.flags.c_contiguous:
        return "planes", a.reshape(a.shape[0], a.shape[1], -1)
    if a.ndim == 4 and is_channels_last(a):
        return "columns", a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])
    if a.ndim == 2 and a.flags.c_contiguous:
        return "columns", a
    return None


def _per_channel(a, c, dtype, fill):
    """A (C,) contiguous array of ``dtype``: ``a`` converted, or ``fill`` where a is None."""
    if a is None:
        return np.full(c, fill, dtype=dtype)
    return a if a.dtype == dtype and a.flags.c_contiguous else np.ascontiguousarray(a, dtype=dtype)


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    """The statistics and the output from one read of x (a channel at a time for NCHW
    arrays), in x's layout; see _bn_forward_planes_py."""
    view = _bn_view(x) if use_numba() and x.size and x.shape[1] else None
    if view is None or any(a is not None and (type(a) is not np.ndarray or a.shape != (x.shape[1],))
                           for a in (weight, bias, mean, var)):
        return _ref.batch_norm_forward(x, weight, bias, eps, mean, var)
    kind, xv = view
    c, dtype = x.shape[1], x.dtype
    training = mean is None
    w, b = _per_channel(weight, c, dtype, 1), _per_channel(bias, c, dtype, 0)
    if training:
        mean, invstd = np.empty(c, dtype), np.empty(c, dtype)
    else:  # as the reference rounds them
        mean = mean.astype(dtype)
        invstd = (1 / np.sqrt(var + eps)).astype(dtype, copy=False)
    y = np.empty_like(x)  # x's layout
    yv = _bn_view(y)[1]
    if kind == "planes":
        _pick(_bn_forward_planes_nb, x.size)(xv, w, b, float(eps), training, mean, invstd, yv)
        return y, mean, invstd
    if training:
        k = xv[0].astype(np.float64)
        chunks = -(-xv.shape[0] // _BN_CHUNK)
        s, s2 = np.zeros((chunks, c)), np.zeros((chunks, c))
        _pick(_bn_column_sums_nb, x.size)(xv, k, s, s2)
        m = xv.shape[0]
        shift = s.sum(axis=0) / m
        mean[...] = k + shift
        invstd[...] = 1 / np.sqrt(np.maximum(s2.sum(axis=0) / m - shift * shift, 0) + eps)
    _pick(_bn_apply_columns_nb, x.size)(xv, mean, invstd * w, b, yv)
    return y, mean, invstd


def batch_norm_backward(g, x, weight, mean, invstd, training):
    """The sums and dx from one read of g and x each (a channel at a time for NCHW arrays)."""
    gview, xview = _bn_view(g), _bn_view(x)
    c = x.shape[1] if x.ndim >= 2 else 0
    if (not use_numba() or gview is None or xview is None or g.shape != x.shape or g.strides != x.strides
            or g.dtype != x.dtype or not x.size or not c
            or any(a is not None and (type(a) is not np.ndarray or a.shape != (c,)) for a in (weight, mean, invstd))):
        return _ref.batch_norm_backward(g, x, weight, mean, invstd, training)
    (kind, gv), xv = gview, xview[1]
    dtype = x.dtype
    w = _per_channel(weight, c, np.float64, 1)
    mean64, invstd64 = _per_channel(mean, c, np.float64, 0), _per_channel(invstd, c, np.float64, 1)
    dx = np.empty_like(x)
    dxv = _bn_view(dx)[1]
    if kind == "planes":
        dweight, dbias = np.empty(c), np.empty(c)
        _pick(_bn_backward_planes_nb, x.size)(gv, xv, mean64, invstd64, w, bool(training), dxv, dweight, dbias)
        return dx, dweight.astype(dtype), dbias.astype(dtype)
    chunks = -(-xv.shape[0] // _BN_CHUNK)
    sg, sgx = np.zeros((chunks, c)), np.zeros((chunks, c))
    _pick(_bn_backward_column_sums_nb, x.size)(gv, xv, mean64, sg, sgx)
    dbias, dweight = sg.sum(axis=0), sgx.sum(axis=0) * invstd64
    scale = w * invstd64
    m = xv.shape[0]
    c0 = scale * dbias / m if training else np.zeros(c)
    c1 = scale * invstd64 * dweight / m if training else np.zeros(c)
    _pick(_bn_backward_apply_columns_nb, x.size)(gv, xv, *(a.astype(dtype) for a in (mean64, scale, c0, c1)), dxv)
    return dx, dweight.astype(dtype), dbias.astype(dtype)


def relu(x):
    """max(x, 0) in one pass (NaN stays NaN); the output has the input's memory layout.
    (Below _NUMBA_MIN elements NumPy's one-pass maximum is as quick.)"""
    if x.size >= _NUMBA_MIN:
        flats = _same_layout_flats(x)
        if flats is not None:
            out = np.empty_like(x)  # same layout as x
            _pick(_relu_nb, x.size)(flats[0], _dense_flat(out))
            return out
    return _ref.relu(x)


def relu_backward(g, y):
    """g where y > 0, else 0, in one pass (g and y of one layout; the reference's where
    takes three, which matters at every size: a (128, 128) MLP activation 10x faster)."""
    flats = _same_layout_flats(g, y) if g.size else None
    if flats is None:
        return _ref.relu_backward(g, y)
    out = np.empty_like(g)
    _pick(_relu_backward_nb, g.size)(*flats, _dense_flat(out))
    return out


def gelu(x, approximate="none"):
    """One pass (NumPy has no erf): math.erf per element in float64, the fitted rational erf
    (vectorised, within one ulp) in float32; the backward's exp likewise."""
    flats = _same_layout_flats(x) if approximate in ("none", "tanh") else None
    if flats is None:
        return _ref.gelu(x, approximate)
    out = np.empty_like(x)
    _pick(_gelu_nb, 4 * x.size)(flats[0], _dense_flat(out), approximate == "tanh", x.dtype == np.float32)
    return out


def gelu_backward(g, x, approximate="none"):
    flats = _same_layout_flats(g, x) if approximate in ("none", "tanh") else None
    if flats is None:
        return _ref.gelu_backward(g, x, approximate)
    out = np.empty_like(g)
    _pick(_gelu_backward_nb, 4 * x.size)(*flats, _dense_flat(out), approximate == "tanh",
                                         x.dtype == np.float32)
    return out


def dropout_mask(shape, p, seed, offset, dtype, *, like=None):
    dtype = np.dtype(dtype)
    if not use_numba() or dtype.kind != "f":
        return _ref.dropout_mask(shape, p, seed, offset, dtype)
    out = np.empty(math.prod(shape), dtype=dtype)
    scale = dtype.type(1.0 / (1.0 - p) if p < 1 else 0.0)
    threshold = np.uint32(math.ceil(p * 2.0 ** 24))  # kept iff (word >> 8) >= threshold
    _pick(_dropout_mask_nb, out.size)(out, threshold, scale, np.uint32(seed & _ref._LO32),
                                      np.uint32((seed >> 32) & _ref._LO32), _u(offset))
    return out.reshape(shape)


def embedding_backward(g, indices, num_embeddings):
    if (not use_numba() or type(g) is not np.ndarray or g.dtype.kind != "f" or g.ndim != 2
            or indices.shape != g.shape[:1] or type(indices) is not np.ndarray):
        return _ref.embedding_backward(g, indices, num_embeddings)
    dw = np.zeros((num_embeddings, g.shape[1]), dtype=g.dtype)
    _embedding_backward_nb(g, indices.astype(np.int64, copy=False), dw)
    return dw


def sgd_step_(params, grads, bufs, lr, weight_decay, momentum, dampening, nesterov, first):
    if not use_numba():
        return _ref.sgd_step_(params, grads, bufs, lr, weight_decay, momentum, dampening, nesterov, first)
    _ref._check_sgd(params, grads, bufs, momentum)
    for i, (x, g) in enumerate(zip(params, grads)):
        buf = None if bufs is None else bufs[i]
        if _numba_ok(x, g) and (buf is None or _numba_ok(x, buf)):
            t = x.dtype.type
            _pick(_sgd_nb, x.size)(x.reshape(-1), g.reshape(-1), x.reshape(-1) if buf is None else buf.reshape(-1),
                                   t(lr), t(weight_decay), t(momentum), t(1 - dampening), nesterov, first)
        else:
            _ref._sgd_one(x, g.reshape(x.shape), None if buf is None else buf.reshape(x.shape),
                          lr, weight_decay, momentum, dampening, nesterov, first)


def adam_step_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps, step,
               weight_decay, decoupled):
    if not use_numba():
        return _ref.adam_step_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2,
                               eps, step, weight_decay, decoupled)
    _ref._check_step("adam_step_", params, grads=grads, exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs,
                     max_exp_avg_sqs=max_exp_avg_sqs)
    step_size, inv_sqrt_bc2, decay, l2 = _ref._adam_scalars(lr, beta1, beta2, step, weight_decay, decoupled)
    scalars = {}  # per dtype: the scalars in it (float32 stays float32 and rounds like the reference)
    for i, (x, g) in enumerate(zip(params, grads)):
        m, v = exp_avgs[i], exp_avg_sqs[i]
        vmax = None if max_exp_avg_sqs is None else max_exp_avg_sqs[i]
        if _numba_ok(x, g, m, v) and (vmax is None or _numba_ok(x, vmax)):
            t = x.dtype.type
            if t not in scalars:
                scalars[t] = tuple(t(a) for a in (step_size, beta1, 1 - beta1, beta2, 1 - beta2, eps, inv_sqrt_bc2,
                                                  l2, decay))
            _pick(_adam_nb, x.size)(x.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                                    m.reshape(-1) if vmax is None else vmax.reshape(-1), *scalars[t], vmax is not None)
        else:
            _ref._adam_one(x, g.reshape(x.shape), m.reshape(x.shape), v.reshape(x.shape),
                           None if vmax is None else vmax.reshape(x.shape), beta1, beta2, eps,
                           step_size, inv_sqrt_bc2, decay, l2)


def rmsprop_step_(params, grads, square_avgs, grad_avgs, bufs, lr, alpha, eps, weight_decay, momentum):
    """One numba pass per parameter (when every array suits; else the reference for all)."""
    lists = [params, grads, square_avgs] + [lst for lst in (grad_avgs, bufs) if lst is not None]
    if (not use_numba() or (momentum and bufs is None) or any(len(lst) != len(params) for lst in lists)
            or not all(_numba_ok(*arrays) and all(a.size == arrays[0].size for a in arrays) for arrays in zip(*lists))):
        return _ref.rmsprop_step_(params, grads, square_avgs, grad_avgs, bufs, lr, alpha, eps, weight_decay, momentum)
    for i, x in enumerate(params):
        t = x.dtype.type
        flat = [lst[i].reshape(-1) if lst is not None else x.reshape(-1) for lst in (params, grads, square_avgs,
                                                                                      grad_avgs, bufs)]
        if grad_avgs is None and bufs is None:
            _pick(_rmsprop_plain_nb, x.size)(*flat[:3], t(lr), t(alpha), t(1 - alpha), t(eps), t(weight_decay))
        else:
            _pick(_rmsprop_nb, x.size)(*flat, t(lr), t(alpha), t(1 - alpha), t(eps), t(weight_decay), t(momentum),
                                       grad_avgs is not None, bufs is not None)


# ======================================================================================
# Layer norm rows: numba versions of reference.layer_norm_* (same math;
# docs/derivations/layernorm.md), one pass over each row for the statistics and one for the
# output.
# ======================================================================================

# Rows per partial sum of the layer-norm weight gradients: fixed (not per thread), so the
# sums are added in the same order whatever the number of threads.
_LN_CHUNK = 64
if numba is not None:
    def _layer_norm_fwd_py(x, w, b, eps, y, mean, rstd):
        """Per row: the mean and the variance (sums in float64, the variance from the
        centred values: the row is in cache for the second loop), then y = (x - mean) rstd w + b
        in x's dtype.  w and b are arrays (ones and zeros stand in for absent ones)."""
        m, n = x.shape
        for r in prange(_u(m)):
            row, out = x[r], y[r]
            s = 0.0
            for j in range(n):
                s += row[j]
            mu = _cast_like(s / n, row[0])
            s2 = 0.0
            for j in range(n):
                d = row[j] - mu
                s2 += d * d
            rs = _cast_like(1.0 / math.sqrt(s2 / n + eps), row[0])
            mean[r], rstd[r] = mu, rs
            for j in range(n):
                out[j] = (row[j] - mu) * rs * w[j] + b[j]

    def _layer_norm_bwd_py(g, x, w, mean, rstd, dx, dw_part, db_part):
        """Per row, with xhat = (x - mean) rstd and gw = g w: the row means of gw and gw xhat,
        then dx; dweight and dbias summed per chunk of _LN_CHUNK rows (added up afterwards
        in a fixed order, whatever the number of threads)."""
        m, n = x.shape
        for c in prange(dw_part.shape[0]):
            pw, pb = dw_part[c], db_part[c]
            for r in range(c * _LN_CHUNK, min(m, (c + 1) * _LN_CHUNK)):
                gr, xr, out = g[r], x[r], dx[r]
                mu, rs = mean[r], rstd[r]
                s_gw = 0.0
                s_gwx = 0.0
                for j in range(n):
                    gw = gr[j] * w[j]
                    s_gw += gw
                    s_gwx += gw * ((xr[j] - mu) * rs)
                a, c2 = _cast_like(s_gw / n, mu), _cast_like(s_gwx / n, mu)
                # three loops, one output array each: a loop that writes several arrays needs
                # LLVM to prove they do not overlap, and it gave up (measured 1.5x slower)
                for j in range(n):
                    out[j] = rs * (gr[j] * w[j] - a - ((xr[j] - mu) * rs) * c2)
                for j in range(n):
                    pw[j] += gr[j] * ((xr[j] - mu) * rs)
                for j in range(n):
                    pb[j] += gr[j]

    _layer_norm_fwd_nb, _layer_norm_bwd_nb = _both(_layer_norm_fwd_py), _both(_layer_norm_bwd_py)


def _row_vector_ok(a, x):
    """``a`` is None or a NumPy vector of x's dtype and last dimension (weight, bias)."""
    return a is None or (type(a) is np.ndarray and a.dtype == x.dtype and a.shape == x.shape[1:])


def layer_norm_forward(x, weight, bias, eps):
    if (type(x) is not np.ndarray or x.ndim != 2 or x.shape[1] == 0 or x.dtype.kind != "f"
            or not _row_vector_ok(weight, x) or not _row_vector_ok(bias, x) or not use_numba()):
        return _ref.layer_norm_forward(x, weight, bias, eps)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    mean, rstd = np.empty(x.shape[0], dtype=x.dtype), np.empty(x.shape[0], dtype=x.dtype)
    n = x.shape[1]
    w, b = _per_channel(weight, n, x.dtype, 1), _per_channel(bias, n, x.dtype, 0)
    _pick(_layer_norm_fwd_nb, x.size)(x, w, b, float(eps), y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(g, x, weight, mean, rstd):
    if (type(x) is not np.ndarray or x.ndim != 2 or x.shape[1] == 0 or x.dtype.kind != "f"
            or any(type(a) is not np.ndarray or a.dtype != x.dtype for a in (g, mean, rstd))
            or g.shape != x.shape or mean.shape != x.shape[:1] or rstd.shape != x.shape[:1]
            or not _row_vector_ok(weight, x) or not use_numba()):
        return _ref.layer_norm_backward(g, x, weight, mean, rstd)
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x)
    dx = np.empty_like(x)
    parts = (-(-x.shape[0] // _LN_CHUNK), x.shape[1])  # per-chunk partial sums of dw and db
    dw, db = np.zeros(parts, dtype=x.dtype), np.zeros(parts, dtype=x.dtype)
    w = _per_channel(weight, x.shape[1], x.dtype, 1)
    _pick(_layer_norm_bwd_nb, x.size)(g, x, w, np.ascontiguousarray(mean), np.ascontiguousarray(rstd), dx, dw, db)
    return dx, dw.sum(axis=0), db.sum(axis=0)


# ======================================================================================
# Adagrad and Adadelta: one fused pass per parameter, as sgd_step_ / adam_step_.
# Hot enough to fuse: on the MNIST MLP the reference's NumPy passes took a fifth of a
# training step (docs/optim.md has the numbers).  Same arithmetic, in the same order, as
# reference.adagrad_step_ / adadelta_step_, scalars in the array dtype.
# ======================================================================================

if numba is not None:
    @njit(cache=True, error_model="numpy")
    def _adagrad_nb(x, g, s, clr, wd, eps):
        for i in range(x.size):
            gi = g[i]
            if wd != 0:
                gi = gi + wd * x[i]
            si = s[i] + gi * gi
            s[i] = si
            x[i] = x[i] - clr * (gi / (np.sqrt(si) + eps))

    @njit(cache=True, error_model="numpy")
    def _adadelta_nb(x, g, v, u, lr, rho, one_minus_rho, eps, wd):
        for i in range(x.size):  # (every load before any store: the loop vectorizes)
            xi, gi, ui = x[i], g[i], u[i]
            if wd != 0:
                gi = gi + wd * xi
            vi = rho * v[i] + one_minus_rho * (gi * gi)
            d = np.sqrt(ui + eps) / np.sqrt(vi + eps) * gi
            v[i] = vi
            u[i] = rho * ui + one_minus_rho * (d * d)
            x[i] = xi - lr * d


def adagrad_step_(params, grads, sums, lr, lr_decay, weight_decay, eps, step):
    if not use_numba():
        return _ref.adagrad_step_(params, grads, sums, lr, lr_decay, weight_decay, eps, step)
    _ref._check_step("adagrad_step_", params, grads=grads, sums=sums)
    clr = lr / (1 + (step - 1) * lr_decay)
    for x, g, s in zip(params, grads, sums):
        if _numba_ok(x, g, s):
            t = x.dtype.type
            _adagrad_nb(x.reshape(-1), g.reshape(-1), s.reshape(-1), t(clr), t(weight_decay), t(eps))
        else:
            _ref.adagrad_step_([x], [g], [s], lr, lr_decay, weight_decay, eps, step)


def adadelta_step_(params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay):
    if not use_numba():
        return _ref.adadelta_step_(params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay)
    _ref._check_step("adadelta_step_", params, grads=grads, square_avgs=square_avgs, acc_deltas=acc_deltas)
    for x, g, v, u in zip(params, grads, square_avgs, acc_deltas):
        if _numba_ok(x, g, v, u):
            t = x.dtype.type
            _adadelta_nb(x.reshape(-1), g.reshape(-1), v.reshape(-1), u.reshape(-1),
                         t(lr), t(rho), t(1 - rho), t(eps), t(weight_decay))
        else:
            _ref.adadelta_step_([x], [g], [v], [u], lr, rho, eps, weight_decay)


# Recurrent cells: each step's matrix products are BLAS calls, as in reference.py;
# what follows them (adding the products and biases, the gates' nonlinearities, the cell
# update; backward: the gates' gradients) is one numba pass over the (B, H) units instead of
# a dozen NumPy passes.  Serial: a step is ~10^5 elements, less than a thread hand-over costs
# on a busy machine.  nogil: the two directions of a bidirectional layer call them from two
# threads at once (ops/rnn.py, backend/cpu_threads.py).  The gates use _sigmoid1 and _tanh1:
# the elementwise kernels' float32 arithmetic for float32 cells (see there), libm's for float64.
# error_model="numpy": a division by zero gives inf as in NumPy; numba's default (Python's
# ZeroDivisionError) puts a branch in every division, and the loops no longer vectorise
# (measured: 8 ns instead of 1 ns per sigmoid).
# ======================================================================================


def _rows_ok(*arrays):
    """numba on, NumPy arrays of one float dtype (None entries skipped).  (Called per time step
    of a recurrent layer: one pass, no temporaries.)"""
    dtype = None
    for a in arrays:
        if a is None:
            continue
        if type(a) is not np.ndarray:
            return False
        if dtype is None:
            dtype = a.dtype
        elif a.dtype is not dtype and a.dtype != dtype:
            return False
    return dtype is not None and dtype.kind == "f" and use_numba()


if numba is not None:
    # The loops are written for LLVM's vectoriser: each runs from 0 over one gate's H units of
    # one row (slices of the row, unit stride) and touches few arrays.  (One loop per row over
    # all gates and outputs stayed scalar: measured 2-8x slower.)
    _CELL = dict(cache=True, nogil=True, fastmath=_FAST_MATH, error_model="numpy")

    @njit(inline="always", **_CELL)
    def _activate_in_place(a, aw, tanh):
        """a = sigmoid (or tanh) of a + aw, in place, over one gate's units.  (In place because
        one array read and written at the same index vectorises, where an output array beside
        the input, passed the input itself, would not: LLVM's run-time check that the two do not
        overlap fails, and the scalar loop runs.)"""
        if tanh:
            for j in range(a.size):
                a[j] = _tanh1(a[j] + aw[j])
        else:
            for j in range(a.size):
                a[j] = _sigmoid1(a[j] + aw[j])

    @njit(**_CELL)
    def _rnn_forward_nb(xw, hw, relu, out):
        for r in range(xw.shape[0]):
            a, aw, o = xw[r], hw[r], out[r]
            if relu:
                for j in range(o.size):
                    v = a[j] + aw[j]
                    o[j] = v if v > 0 or v != v else 0.0
            else:
                for j in range(o.size):
                    o[j] = _tanh1(a[j] + aw[j])

    @njit(**_CELL)
    def _rnn_backward_nb(g, h_new, relu, da):
        for r in range(g.shape[0]):
            gr, y, d = g[r], h_new[r], da[r]
            if relu:
                for j in range(d.size):
                    d[j] = gr[j] if y[j] > 0 else 0.0
            else:
                for j in range(d.size):
                    d[j] = gr[j] * (1 - y[j] * y[j])

    @njit(**_CELL)
    def _lstm_forward_nb(gates, hw, c, h_out, c_out, tcs):
        n = c.shape[1]
        for r in range(c.shape[0]):
            a = gates[r]
            for k in range(4):  # i, f, g (tanh), o: over the input's product, in place
                part = slice(k * n, (k + 1) * n)
                _activate_in_place(a[part], hw[r, part], k == 2)
            i, f, g, o, tc = a[:n], a[n:2 * n], a[2 * n:3 * n], a[3 * n:], tcs[r]
            h_new, c_new, c_old = h_out[r], c_out[r], c[r]
            for j in range(n):
                c_new[j] = f[j] * c_old[j] + i[j] * g[j]
            for j in range(n):
                tc[j] = _tanh1(c_new[j])
            for j in range(n):
                h_new[j] = o[j] * tc[j]

    @njit(**_CELL)
    def _lstm_backward_nb(g_h, g_c, c, gates, tcs, da, dc):
        n = c.shape[1]
        for r in range(c.shape[0]):
            s, d, gh, gc, c_old, dcr, tc = gates[r], da[r], g_h[r], g_c[r], c[r], dc[r], tcs[r]
            i, f, g, o = s[:n], s[n:2 * n], s[2 * n:3 * n], s[3 * n:]
            di, df, dg, do = d[:n], d[n:2 * n], d[2 * n:3 * n], d[3 * n:]
            for j in range(n):
                dcr[j] = gc[j] + gh[j] * o[j] * (1 - tc[j] * tc[j])  # dc' for now
                do[j] = gh[j] * tc[j] * o[j] * (1 - o[j])
            for j in range(n):
                di[j] = dcr[j] * g[j] * i[j] * (1 - i[j])
                df[j] = dcr[j] * c_old[j] * f[j] * (1 - f[j])
                dg[j] = dcr[j] * i[j] * (1 - g[j] * g[j])
                dcr[j] *= f[j]

    @njit(**_CELL)
    def _gru_forward_nb(gi, gh, h, h_new, saved):
        n = h.shape[1]
        for r in range(h.shape[0]):
            s, a, aw = saved[r], gi[r], gh[r]
            s[:2 * n] = a[:2 * n]
            _activate_in_place(s[:2 * n], aw[:2 * n], False)  # r, z
            rr, z, nn, ghn = s[:n], s[n:2 * n], s[2 * n:3 * n], s[3 * n:]
            a_n, aw_n, hr, out = a[2 * n:], aw[2 * n:], h[r], h_new[r]
            for j in range(n):
                ghn[j] = aw_n[j]
                nn[j] = _tanh1(a_n[j] + rr[j] * aw_n[j])
            for j in range(n):
                out[j] = (1 - z[j]) * nn[j] + z[j] * hr[j]

    @njit(**_CELL)
    def _gru_backward_nb(g, h, saved, dgi, dgh, g_z):
        n = h.shape[1]
        for r in range(h.shape[0]):
            s, di, dh, gr, hr, gzr = saved[r], dgi[r], dgh[r], g[r], h[r], g_z[r]
            rr, z, nn, ghn = s[:n], s[n:2 * n], s[2 * n:3 * n], s[3 * n:]
            for j in range(n):
                di[2 * n + j] = gr[j] * (1 - z[j]) * (1 - nn[j] * nn[j])           # da_n
                di[n + j] = gr[j] * (hr[j] - nn[j]) * z[j] * (1 - z[j])           # da_z
                gzr[j] = gr[j] * z[j]
            for j in range(n):
                di[j] = di[2 * n + j] * ghn[j] * rr[j] * (1 - rr[j])               # da_r
                dh[2 * n + j] = di[2 * n + j] * rr[j]
            dh[:2 * n] = di[:2 * n]


def _c(a):
    return np.ascontiguousarray(a)


def _products(x, h, w_ih, w_hh, b_ih, b_hh):
    """reference._gate_inputs with both biases on the input's side (one add per element fewer;
    not for a GRU, whose r multiplies gh_n + b_hn)."""
    return _ref._gate_inputs(x, h, w_ih, w_hh, None if b_ih is None else b_ih + b_hh, None)


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity):
    if not _rows_ok(x, h, w_ih, w_hh, b_ih, b_hh) or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    _ref._check_cell("rnn_cell_forward", 1, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    xw, hw = _products(x, h, w_ih, w_hh, b_ih, b_hh)
    out = np.empty_like(xw)
    rnn_step_forward(xw, hw, nonlinearity, out)
    return out


def rnn_cell_backward(g, x, h, h_new, w_ih, w_hh, nonlinearity, need_dx=True):
    if not _rows_ok(g, x, h, h_new, w_ih, w_hh) or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_cell_backward(g, x, h, h_new, w_ih, w_hh, nonlinearity, need_dx)
    _ref._check_cell("rnn_cell_backward", 1, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g, h_new_BH=h_new)
    da = np.empty(g.shape, dtype=g.dtype)
    rnn_step_backward(g, h_new, nonlinearity, da)
    return _ref._cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)[:5]


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh):
    if not _rows_ok(x, h, c, w_ih, w_hh, b_ih, b_hh):
        return _ref.lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
    b, hidden = _ref._check_cell("lstm_cell_forward", 4, x, h, w_ih, w_hh, b_ih, b_hh, c_BH=c)
    gates, hw = _products(x, h, w_ih, w_hh, b_ih, b_hh)  # gates: the input's product until the step
    hc, tc = np.empty((2, b, hidden), dtype=gates.dtype), np.empty((b, hidden), dtype=gates.dtype)
    lstm_step_forward(gates, hw, c, hc[0], hc[1], tc)
    return hc, (gates, tc)


def lstm_cell_backward(ghc, x, h, c, saved, w_ih, w_hh, need_dx=True):
    gates, tc = saved
    if not _rows_ok(ghc, x, h, c, gates, tc, w_ih, w_hh):
        return _ref.lstm_cell_backward(ghc, x, h, c, saved, w_ih, w_hh, need_dx)
    b, hidden = _ref._check_cell("lstm_cell_backward", 4, x, h, w_ih, w_hh, None, None, c_BH=c, ghc_2BH=ghc,
                                 gates_B4H=gates, tc_BH=tc)
    da, dc = np.empty((b, 4 * hidden), dtype=gates.dtype), np.empty((b, hidden), dtype=gates.dtype)
    lstm_step_backward(ghc[0], ghc[1], c, gates, tc, da, dc)
    dx, dh, dw_ih, dw_hh, db, _ = _ref._cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)
    return dx, dh, dc, dw_ih, dw_hh, db


def gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh):
    if not _rows_ok(x, h, w_ih, w_hh, b_ih, b_hh):
        return _ref.gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh)
    b, hidden = _ref._check_cell("gru_cell_forward", 3, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    gi, gh = _ref._gate_inputs(x, h, w_ih, w_hh, b_ih, b_hh)
    h_new, saved = np.empty((b, hidden), dtype=gi.dtype), np.empty((b, 4 * hidden), dtype=gi.dtype)
    gru_step_forward(gi, gh, h, h_new, saved)
    return h_new, saved


def gru_cell_backward(g, x, h, saved, w_ih, w_hh, need_dx=True):
    if not _rows_ok(g, x, h, saved, w_ih, w_hh):
        return _ref.gru_cell_backward(g, x, h, saved, w_ih, w_hh, need_dx)
    _ref._check_cell("gru_cell_backward", 3, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g, saved_B4H=saved)
    b, hidden = g.shape
    dgi, dgh, g_z = (np.empty(shape, dtype=g.dtype) for shape in ((b, 3 * hidden), (b, 3 * hidden), (b, hidden)))
    gru_step_backward(g, h, saved, dgi, dgh, g_z)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _ref._cell_weight_grads(dgi, dgh, x, h, w_ih, w_hh, need_dx)
    dh += g_z
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# The step kernels (reference.py: "the gates of one step"): the numba loops above on rows of
# the given arrays.  Inputs are read through _c (no copy when contiguous, as a layer's buffers
# are); the outputs, and the LSTM's gates (read, then written), are used where they are (numba
# follows their strides).


def rnn_step_forward(xw, hw, nonlinearity, out):
    if not _rows_ok(xw, hw, out) or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_step_forward(xw, hw, nonlinearity, out)
    _ref._check_gates("rnn_step_forward", 1, xw, hw, out_BH=out)
    _rnn_forward_nb(_c(xw), _c(hw), nonlinearity == "relu", out)


def rnn_step_backward(g, h_new, nonlinearity, da):
    if not _rows_ok(g, h_new, da) or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_step_backward(g, h_new, nonlinearity, da)
    _ref._check_gates("rnn_step_backward", 1, g, h_new, da_BH=da)
    _rnn_backward_nb(_c(g), _c(h_new), nonlinearity == "relu", da)


def lstm_step_forward(gates, hw, c, h_new, c_new, tc):
    if not _rows_ok(gates, hw, c, h_new, c_new, tc):
        return _ref.lstm_step_forward(gates, hw, c, h_new, c_new, tc)
    _ref._check_gates("lstm_step_forward", 4, gates, hw, c_BH=c, h_new_BH=h_new, c_new_BH=c_new, tc_BH=tc)
    _lstm_forward_nb(gates, _c(hw), _c(c), h_new, c_new, tc)


def lstm_step_backward(gh, gc, c, gates, tc, da, dc):
    if not _rows_ok(gh, gc, c, gates, tc, da, dc):
        return _ref.lstm_step_backward(gh, gc, c, gates, tc, da, dc)
    _ref._check_gates("lstm_step_backward", 4, da, gates, gh_BH=gh, gc_BH=gc, c_BH=c, tc_BH=tc, dc_BH=dc)
    _lstm_backward_nb(_c(gh), _c(gc), _c(c), _c(gates), _c(tc), da, dc)


def gru_step_forward(gi, gh, h, h_new, saved):
    if not _rows_ok(gi, gh, h, h_new, saved):
        return _ref.gru_step_forward(gi, gh, h, h_new, saved)
    _ref._check_gates("gru_step_forward", 3, gi, gh, h_BH=h, h_new_BH=h_new, saved_B4H=saved)
    _gru_forward_nb(_c(gi), _c(gh), _c(h), h_new, saved)


def gru_step_backward(g, h, saved, dgi, dgh, g_z):
    if not _rows_ok(g, h, saved, dgi, dgh, g_z):
        return _ref.gru_step_backward(g, h, saved, dgi, dgh, g_z)
    _ref._check_gates("gru_step_backward", 3, dgi, dgh, g_BH=g, h_BH=h, saved_B4H=saved, g_z_BH=g_z)
    _gru_backward_nb(_c(g), _c(h), _c(saved), dgi, dgh, g_z)
