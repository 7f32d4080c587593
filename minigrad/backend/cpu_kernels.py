"""The CPU kernel table: reference.py plus numba kernels for the hot paths.

Every name of reference.py is here with the same semantics (``from .reference import *``);
the functions below override some of them with numba kernels: im2col / col2im, max and
average pooling, ReLU, GELU, cross-entropy (forward and backward), the dropout mask, the
embedding gradient, the gates of the recurrent cells and the fused optimizer updates.  Each override runs its numba kernel when numba imports, is not disabled
(MINIGRAD_DISABLE_NUMBA=1) and the input suits it (dtype, memory layout, size); otherwise it
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
NUMBA_THREADING_LAYER.  (workqueue must not be entered from two Python threads at once;
minigrad starts no threads.)

Measured on the 2-core reference machine (float32, the MNIST CNN's second conv layer, the
kernel alone): im2col 0.6 ms, col2im 1.0 ms (the NCHW layout this replaced: 2.0 and 4.5 ms plus
two layout copies); see benchmarks/conv_ops.py and docs/benchmarks.md.
"""
import math
import os
import types

import numpy as np

from . import numba_enabled
from . import reference as _ref
from .reference import *  # noqa: F401,F403  (the whole table; overridden below where numba helps)
from .reference import __all__  # noqa: F401  (exactly reference's names)
from .reference import is_channels_last

try:
    import numba
    from numba import njit, prange
    from numba.extending import overload

    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"
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


# Below this many elements a NumPy call is cheaper than starting numba's threads.
_PARALLEL_MIN = 1 << 16

# Some kernels below are compiled twice, serial and parallel (prange).  A parallel launch hands
# the work to numba's worker threads and waits for them: worth it for big launches only, and
# on a machine busy with other processes the hand-over itself can take milliseconds.
_PARALLEL_WORK = 1 << 20  # elements
_FAST_MATH = {"reassoc", "contract"}  # vectorised sums; inf and NaN keep their meaning


def _pick(kernels, work, threshold=_PARALLEL_WORK):
    """The parallel variant of a (serial, parallel) pair when the launch is big and numba
    has more than one thread."""
    return kernels[1] if work >= threshold and numba.get_num_threads() > 1 else kernels[0]


def _both(fn):
    """(serial, parallel) compilations of ``fn``.  The parallel one compiles a renamed copy:
    numba's on-disk cache is keyed by the function's name and signature, not by its flags,
    so two variants of one function would overwrite each other's cached machine code."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    return njit(cache=True, fastmath=_FAST_MATH)(fn), njit(parallel=True, cache=True, fastmath=_FAST_MATH)(twin)


# ======================================================================================
# numba kernels
# ======================================================================================

if numba is not None:
    # Why the np.uint64(...) casts: numba checks every signed index for "negative means from
    # the end"; that branch stops LLVM from vectorising the inner loops.  Indices that are
    # known to be >= 0 are cast to unsigned, which drops the check (measured: col2im 4x faster).
    # Careful: uint64 mixed with int64 gives float64 in numba, so the casts stay local.
    _u = np.uint64

    @njit(parallel=True, cache=True)
    def _im2col_nb(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra=0):
        n, h, w, c = x.shape
        K = kh * kw * c + extra
        cols = np.empty((n * oh * ow, K), dtype=x.dtype)
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
        return cols

    @njit(parallel=True, cache=True)
    def _im2col_1ch_nb(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra):
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

    @njit(parallel=True, cache=True)
    def _col2im_nb(cols, n, h, w, c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        K = cols.shape[1]
        dx = np.zeros((n, h, w, c), dtype=cols.dtype)
        dxf = dx.reshape(-1)
        cf = cols.reshape(-1)
        for b in prange(n):  # one image per task: tasks never write the same pixel
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
        return dx

    @njit(parallel=True, cache=True)
    def _maxpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
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

    @njit(parallel=True, cache=True)
    def _maxpool2x2_fwd_nb(x, oh, ow):
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

    @njit(parallel=True, cache=True)
    def _maxpool_bwd_nb(g, arg, n, c, h, w):
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

    @njit(parallel=True, cache=True)
    def _maxpool2x2_nhwc_fwd_nb(x, oh, ow):
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

    @njit(parallel=True, cache=True)
    def _maxpool2x2_nhwc_bwd_nb(g, arg, h, w):
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
                k = 2 * y * w + 2 * xo
                s = _u(((b * oh + y) * ow + xo) * c)
                d00 = _u(((b * h + 2 * y) * w + 2 * xo) * c)
                d01, d10 = d00 + _u(c), d00 + _u(w * c)
                d11 = d10 + _u(c)
                for ch in range(_u(c)):
                    v = gf[s + ch]
                    t = af[s + ch]
                    df[d00 + ch] = v if t == k else 0
                    df[d01 + ch] = v if t == k + 1 else 0
                    df[d10 + ch] = v if t == k + w else 0
                    df[d11 + ch] = v if t == k + w + 1 else 0
            for r in range(2 * y, 2 * y + 2):
                for xx in range(2 * ow, w):
                    dx[b, r, xx] = 0
            if y == oh - 1:
                for r in range(2 * oh, h):
                    dx[b, r] = 0
        return dx

    @njit(inline="always")
    def _avg_count(start, k, size, pad, include_pad):
        """How many elements of a window starting at ``start`` count in the divisor (one
        axis; PyTorch's rule, see reference._avg_divisors)."""
        if include_pad:
            return min(start + k, size + pad) - start
        return min(start + k, size) - max(start, 0)

    @njit(parallel=True, cache=True)
    def _avgpool_nb(src, dst, h, w, kh, kw, sh, sw, ph, pw, oh, ow, include_pad, adjoint):
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

    def _cross_entropy_forward_py(x, target, weight, has_weight, ignore_index, e, losses, sumexp):
        """reference.cross_entropy_forward, one row per iteration (sums in float64)."""
        n, c = x.shape
        w_sum = 0.0
        for j in range(c):
            w_sum += weight[j] if has_weight else 1.0
        for i in prange(n):
            m = x[i, 0]
            for j in range(1, c):
                v = x[i, j]
                if v > m or v != v:  # a NaN sticks: nothing compares greater than it
                    m = v
            s = 0.0
            for j in range(c):
                s += math.exp(x[i, j] - m)
            log_s = math.log(s)
            sumexp[i] = s
            t = target[i]
            if t == ignore_index:
                losses[i] = 0
            elif t < 0 or t >= c:
                losses[i] = np.nan
            else:
                loss = (log_s - (x[i, t] - m)) * (weight[t] if has_weight else 1.0)
                if e != 0:
                    smooth = 0.0
                    for j in range(c):
                        smooth += (weight[j] if has_weight else 1.0) * (x[i, j] - m)
                    loss = (1 - e) * loss - (e / c) * (smooth - log_s * w_sum)
                losses[i] = loss

    def _cross_entropy_backward_py(x, target, sumexp, grow, weight, has_weight, ignore_index, e, dx):
        """reference.cross_entropy_backward, one row per iteration: p = exp(x - m) / sumexp
        with m the row max (recomputed: it is exact), never exp(x - lse)."""
        n, c = x.shape
        w_sum = 0.0
        for j in range(c):
            w_sum += weight[j] if has_weight else 1.0
        for i in prange(n):
            t = target[i]
            if t == ignore_index or t < 0 or t >= c:
                fill = 0.0 if t == ignore_index else np.nan
                for j in range(c):
                    dx[i, j] = fill
                continue
            onehot = (1 - e) * (weight[t] if has_weight else 1.0)
            p_coef = onehot + (e / c) * w_sum if has_weight else 1.0
            g = grow[i]
            m = x[i, 0]
            for j in range(1, c):
                v = x[i, j]
                m = v if v > m else m  # (a NaN in the row makes sumexp NaN: every p is NaN anyway)
            scale = p_coef / sumexp[i]  # p = exp(x - m) / sumexp, times p_coef: one multiply
            for j in range(c):
                v = math.exp(x[i, j] - m) * scale
                if j == t:
                    v -= onehot
                if e != 0:
                    v -= (e / c) * (weight[j] if has_weight else 1.0)
                dx[i, j] = v * g

    # one thread for small batches (starting the pool costs more), all of them for large ones
    _ce_forward_nb = njit(cache=True)(_cross_entropy_forward_py)
    _ce_forward_par_nb = njit(parallel=True, cache=True)(_cross_entropy_forward_py)
    _ce_backward_nb = njit(cache=True)(_cross_entropy_backward_py)
    _ce_backward_par_nb = njit(parallel=True, cache=True)(_cross_entropy_backward_py)

    @njit(parallel=True, cache=True)
    def _relu_nb(x, out):
        for i in prange(x.size):
            v = x[i]
            out[i] = 0 if v < 0 else v  # NaN stays NaN, like np.maximum

    @njit(parallel=True, cache=True)
    def _relu_backward_nb(g, y, out):
        for i in prange(g.size):
            out[i] = g[i] if y[i] > 0 else 0

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
    # (the relative error grows 256-fold: 1e-8, below float32's 6e-8).  Below t = -100 it
    # returns 0 (exp(-100) = 4e-44 is already below float32's smallest normal), so that
    # -inf * exp(-inf) is NaN as with math.exp.
    @njit(inline="always")
    def _exp_nonpositive(t):
        r = max(t, -100.0) * (1 / 256)
        e = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
            1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880)))))))))
        for _ in range(8):
            e *= e
        return 0.0 if t < -100.0 else e

    @njit(inline="always")
    def _gauss(x, float32_math):
        """exp(-x^2 / 2)"""
        return _exp_nonpositive(-0.5 * x * x) if float32_math else math.exp(-0.5 * x * x)

    def _gelu_py(x, out, tanh_form, float32_math):
        for i in prange(x.size):
            v = x[i]
            if tanh_form:
                out[i] = 0.5 * v * (1 + math.tanh(_SQRT_2_OVER_PI * (v + _GELU_C * v * v * v)))
            else:
                out[i] = 0.5 * v * (1 + _erf(v * _INV_SQRT_2, float32_math))

    def _gelu_backward_py(g, x, out, tanh_form, float32_math):
        for i in prange(x.size):
            v = x[i]
            if tanh_form:
                t = math.tanh(_SQRT_2_OVER_PI * (v + _GELU_C * v * v * v))
                du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * v * v)
                out[i] = g[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
            else:
                cdf = 0.5 * (1 + _erf(v * _INV_SQRT_2, float32_math))
                out[i] = g[i] * (cdf + v * _INV_SQRT_2PI * _gauss(v, float32_math))

    # serial below _PARALLEL_MIN elements: handing one token's activations (a GPT sampling
    # step) to the thread pool cost ~90 us, the work itself ~1 us
    _gelu_nb, _gelu_backward_nb = _both(_gelu_py), _both(_gelu_backward_py)

    # Philox4x32-10 as in reference._philox4x32, one 4-word block per loop iteration; every
    # value is uint64 (mixing in int64 would turn it into float64).
    _M0, _M1 = _u(_ref._PHILOX_M0), _u(_ref._PHILOX_M1)
    _W0, _W1 = _u(_ref._PHILOX_W0), _u(_ref._PHILOX_W1)
    _LO, _S32, _S8 = _u(_ref._LO32), _u(32), _u(8)

    @njit(parallel=True, cache=True)
    def _dropout_mask_nb(out, p, scale, k0_, k1_, offset):
        size = out.size
        for blk in prange((size + 3) // 4):
            ctr = offset + _u(blk)
            c0, c1, c2, c3 = ctr & _LO, ctr >> _S32, _u(0), _u(0)
            k0, k1 = k0_, k1_
            for r in range(10):
                if r:
                    k0, k1 = (k0 + _W0) & _LO, (k1 + _W1) & _LO
                p0 = c0 * _M0
                p1 = c2 * _M1
                c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _LO, (p0 >> _S32) ^ c3 ^ k1, p0 & _LO
            for word in range(4):
                i = 4 * blk + word
                if i < size:
                    v = c0 if word == 0 else (c1 if word == 1 else (c2 if word == 2 else c3))
                    u = np.float64(v >> _S8) * 2.0 ** -24
                    out[i] = scale if u >= p else 0

    @njit(cache=True)
    def _embedding_backward_nb(g, indices, dw):
        rows = dw.shape[0]
        for m in range(g.shape[0]):  # one thread, in index order: deterministic sums
            r = indices[m]
            if r < 0 or r >= rows:
                raise ValueError("embedding_backward: an index is outside [0, num_embeddings)")
            for d in range(g.shape[1]):
                dw[r, d] += g[m, d]

    @njit(cache=True, error_model="numpy")
    def _sgd_nb(x, g, buf, lr, wd, momentum, undamped, nesterov, first):
        for i in range(x.size):
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

    @njit(cache=True, error_model="numpy")
    def _adam_nb(x, g, m, v, vmax, step_size, b1, c1, b2, c2, eps, inv_sqrt_bc2, wd, decay, amsgrad):
        # c1 = 1 - b1 and c2 = 1 - b2 come in already in the array dtype (no float64 promotion)
        for i in range(x.size):
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
        return _im2col_1ch_nb(np.ascontiguousarray(x[..., 0]), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra).T
    return _im2col_nb(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra)


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_size):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, h, w, c = x_shape
    if (not use_numba() or type(cols) is not np.ndarray or cols.dtype.kind != "f"
            or cols.shape != (n * oh * ow, kh * kw * c)):
        return _ref.col2im(cols, x_shape, kernel, stride, padding, dilation, out_size)
    return _col2im_nb(np.ascontiguousarray(cols), n, h, w, c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


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
        out, arg = _maxpool2x2_nhwc_fwd_nb(x.transpose(0, 2, 3, 1), oh, ow)
        return out.transpose(0, 3, 1, 2), arg.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x)
    if square2:
        return _maxpool2x2_fwd_nb(x, oh, ow)
    return _maxpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def maxpool2d_backward(g, argmax, x_shape, kernel, stride, padding, dilation):
    """As reference.maxpool2d_backward; dx has the layout of the forward's input (the
    argmax array's layout tells which)."""
    n, c, h, w = x_shape
    if (not use_numba() or type(g) is not np.ndarray or g.dtype.kind != "f" or g.shape != argmax.shape
            or g.ndim != 4 or g.shape[:2] != (n, c)):
        return _ref.maxpool2d_backward(g, argmax, x_shape, kernel, stride, padding, dilation)
    if is_channels_last(argmax) and not argmax.flags.c_contiguous and \
            _is_2x2((h, w), kernel, stride, padding, dilation, g.shape[2:]):
        dx = _maxpool2x2_nhwc_bwd_nb(_ref.channels_last(g), argmax.transpose(0, 2, 3, 1), h, w)
        return dx.transpose(0, 3, 1, 2)
    return _maxpool_bwd_nb(np.ascontiguousarray(g), np.ascontiguousarray(argmax), n, c, h, w)


def avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad):
    if not use_numba() or type(x) is not np.ndarray or x.dtype.kind != "f" or x.ndim != 4:
        return _ref.avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad)
    n, c, h, w = x.shape
    out = np.empty((n * c, out_size[0] * out_size[1]), dtype=x.dtype)
    _avgpool_nb(np.ascontiguousarray(x).reshape(n * c, h * w), out, h, w, *kernel, *stride, *padding, *out_size,
                bool(count_include_pad), False)
    return out.reshape((n, c) + tuple(out_size))


def avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size, count_include_pad):
    n, c, h, w = x_shape
    if (not use_numba() or type(g) is not np.ndarray or g.dtype.kind != "f"
            or tuple(g.shape) != (n, c) + tuple(out_size)):
        return _ref.avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size, count_include_pad)
    dx = np.zeros((n * c, h * w), dtype=g.dtype)
    g_planes = np.ascontiguousarray(g).reshape(n * c, out_size[0] * out_size[1])
    _avgpool_nb(g_planes, dx, h, w, *kernel, *stride, *padding, *out_size, bool(count_include_pad), True)
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


# Rows longer than this go to the reference's forward: NumPy's vectorised exp over a wide row
# beats the row loop's scalar exp (16384 x 1024 float32: 50 ms against 78 ms on the 2-core
# machine); up to 64 classes the one-pass loop is 1.2-1.5x faster.  (The backward's loop wins
# at every width.)
_CE_LOOP_MAX_CLASSES = 64


def cross_entropy_forward(x, target, weight, ignore_index, label_smoothing):
    """One pass per row (max, sum of exponentials, the loss) instead of a dozen array calls."""
    w = _ce_weight(x, target, weight) if x.ndim == 2 and x.shape[1] <= _CE_LOOP_MAX_CLASSES else None
    if w is None:
        return _ref.cross_entropy_forward(x, target, weight, ignore_index, label_smoothing)
    losses, sumexp = np.empty(x.shape[0], dtype=x.dtype), np.empty(x.shape[0], dtype=x.dtype)
    kernel = _ce_forward_par_nb if x.size >= _PARALLEL_MIN else _ce_forward_nb
    kernel(x, target, w, weight is not None, int(ignore_index), float(label_smoothing), losses, sumexp)
    return losses, sumexp


def cross_entropy_backward(x, target, sumexp, grow, weight, ignore_index, label_smoothing):
    w = _ce_weight(x, target, weight, sumexp, grow)
    if w is None:
        return _ref.cross_entropy_backward(x, target, sumexp, grow, weight, ignore_index, label_smoothing)
    dx = np.empty_like(x)
    kernel = _ce_backward_par_nb if x.size >= _PARALLEL_MIN else _ce_backward_nb
    kernel(x, target, sumexp, grow, w, weight is not None, int(ignore_index), float(label_smoothing), dx)
    return dx


def relu(x):
    """max(x, 0) in one pass (NaN stays NaN); the output has the input's memory layout."""
    if x.size >= _PARALLEL_MIN:
        flats = _same_layout_flats(x)
        if flats is not None:
            out = np.empty_like(x)  # same layout as x
            _relu_nb(flats[0], _dense_flat(out))
            return out
    return _ref.relu(x)


def relu_backward(g, y):
    """g where y > 0, else 0, in one pass (g and y of one layout)."""
    if g.size >= _PARALLEL_MIN:
        flats = _same_layout_flats(g, y)
        if flats is not None:
            out = np.empty_like(g)
            _relu_backward_nb(*flats, _dense_flat(out))
            return out
    return _ref.relu_backward(g, y)


def gelu(x, approximate="none"):
    """One pass (NumPy has no erf): math.erf per element in float64, the fitted rational erf
    (vectorised, within one ulp) in float32; the backward's exp likewise."""
    flats = _same_layout_flats(x) if approximate in ("none", "tanh") else None
    if flats is None:
        return _ref.gelu(x, approximate)
    out = np.empty_like(x)
    _pick(_gelu_nb, x.size, _PARALLEL_MIN)(flats[0], _dense_flat(out), approximate == "tanh", x.dtype == np.float32)
    return out


def gelu_backward(g, x, approximate="none"):
    flats = _same_layout_flats(g, x) if approximate in ("none", "tanh") else None
    if flats is None:
        return _ref.gelu_backward(g, x, approximate)
    out = np.empty_like(g)
    _pick(_gelu_backward_nb, x.size, _PARALLEL_MIN)(*flats, _dense_flat(out), approximate == "tanh",
                                                    x.dtype == np.float32)
    return out


def dropout_mask(shape, p, seed, offset, dtype, *, like=None):
    dtype = np.dtype(dtype)
    if not use_numba() or dtype.kind != "f":
        return _ref.dropout_mask(shape, p, seed, offset, dtype)
    out = np.empty(math.prod(shape), dtype=dtype)
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    _dropout_mask_nb(out, float(p), scale, _u(seed & _ref._LO32), _u((seed >> 32) & _ref._LO32), _u(offset))
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
            _sgd_nb(x.reshape(-1), g.reshape(-1), x.reshape(-1) if buf is None else buf.reshape(-1),
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
            _adam_nb(x.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                     m.reshape(-1) if vmax is None else vmax.reshape(-1), *scalars[t], vmax is not None)
        else:
            _ref._adam_one(x, g.reshape(x.shape), m.reshape(x.shape), v.reshape(x.shape),
                           None if vmax is None else vmax.reshape(x.shape), beta1, beta2, eps,
                           step_size, inv_sqrt_bc2, decay, l2)


# ======================================================================================
# Layer norm rows (issue 10): numba versions of reference.layer_norm_* (same math;
# docs/derivations/layernorm.md), one pass over each row for the statistics and one for the
# output.  (Attention stays reference.attention_*: its products are BLAS calls and its exp a
# vectorised NumPy call, which measured faster on the CPU than numba loops with scalar exp.)
# ======================================================================================

# Rows per partial sum of the layer-norm weight gradients: fixed (not per thread), so the
# sums are added in the same order whatever the number of threads.
_LN_CHUNK = 64
if numba is not None:
    def _layer_norm_fwd_py(x, w, b, eps, y, mean, rstd, affine_w, affine_b):
        m, n = x.shape
        for r in prange(m):
            row = x[r]
            s = 0.0
            for j in range(n):
                s += row[j]
            mu = s / n
            s2 = 0.0
            for j in range(n):
                d = row[j] - mu
                s2 += d * d
            rs = 1.0 / math.sqrt(s2 / n + eps)
            mean[r], rstd[r] = mu, rs
            out = y[r]
            for j in range(n):
                v = (row[j] - mu) * rs
                if affine_w:
                    v = v * w[j]
                if affine_b:
                    v = v + b[j]
                out[j] = v

    def _layer_norm_bwd_py(g, x, w, mean, rstd, dx, dw_part, db_part, affine_w):
        m, n = x.shape
        chunks = dw_part.shape[0]
        for c in prange(chunks):
            pw, pb = dw_part[c], db_part[c]
            for r in range(c * _LN_CHUNK, min(m, (c + 1) * _LN_CHUNK)):
                gr, xr, out = g[r], x[r], dx[r]
                mu, rs = mean[r], rstd[r]
                s_gw = 0.0
                s_gwx = 0.0
                for j in range(n):
                    xh = (xr[j] - mu) * rs
                    gw = gr[j] * w[j] if affine_w else gr[j]
                    s_gw += gw
                    s_gwx += gw * xh
                    pw[j] += gr[j] * xh
                    pb[j] += gr[j]
                a, c2 = s_gw / n, s_gwx / n
                for j in range(n):
                    xh = (xr[j] - mu) * rs
                    gw = gr[j] * w[j] if affine_w else gr[j]
                    out[j] = rs * (gw - a - xh * c2)

    _layer_norm_fwd_nb, _layer_norm_bwd_nb = _both(_layer_norm_fwd_py), _both(_layer_norm_bwd_py)


def _rows_ok(*arrays):
    """numba on, NumPy arrays of one float dtype (None entries skipped)."""
    present = [a for a in arrays if a is not None]
    if not use_numba() or any(type(a) is not np.ndarray for a in present):
        return False
    dtype = present[0].dtype
    return dtype.kind == "f" and all(a.dtype == dtype for a in present)


def layer_norm_forward(x, weight, bias, eps):
    if (not _rows_ok(x, weight, bias) or x.ndim != 2 or x.shape[1] == 0
            or any(a is not None and a.shape != x.shape[1:] for a in (weight, bias))):
        return _ref.layer_norm_forward(x, weight, bias, eps)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    mean, rstd = np.empty(x.shape[0], dtype=x.dtype), np.empty(x.shape[0], dtype=x.dtype)
    w, b = (np.empty(0, x.dtype) if a is None else np.ascontiguousarray(a) for a in (weight, bias))
    _pick(_layer_norm_fwd_nb, x.size)(x, w, b, float(eps), y, mean, rstd, weight is not None, bias is not None)
    return y, mean, rstd


def layer_norm_backward(g, x, weight, mean, rstd):
    if (not _rows_ok(g, x, weight, mean, rstd) or g.shape != x.shape or x.ndim != 2 or x.shape[1] == 0
            or mean.shape != x.shape[:1] or rstd.shape != x.shape[:1]
            or (weight is not None and weight.shape != x.shape[1:])):
        return _ref.layer_norm_backward(g, x, weight, mean, rstd)
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x)
    dx = np.empty_like(x)
    parts = (-(-x.shape[0] // _LN_CHUNK), x.shape[1])  # per-chunk partial sums of dw and db
    dw, db = np.zeros(parts, dtype=x.dtype), np.zeros(parts, dtype=x.dtype)
    w = np.empty(0, x.dtype) if weight is None else np.ascontiguousarray(weight)
    _pick(_layer_norm_bwd_nb, x.size)(g, x, w, np.ascontiguousarray(mean), np.ascontiguousarray(rstd), dx, dw, db,
                                      weight is not None)
    return dx, dw.sum(axis=0), db.sum(axis=0)


# ======================================================================================
# Adagrad and Adadelta (issue 16): one fused pass per parameter, as sgd_step_ / adam_step_.
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


# Recurrent cells (issue 18): each step's matrix products are BLAS calls, as in reference.py;
# what follows them (adding the products and biases, the gates' nonlinearities, the cell
# update; backward: the gates' gradients) is one numba pass over the (B, H) units instead of
# a dozen NumPy passes.  Serial: a step is ~10^5 elements, less than a thread hand-over costs
# on a busy machine.  float32 uses vectorisable sigmoid and tanh (below), float64 libm's.
# error_model="numpy": a division by zero gives inf as in NumPy; numba's default (Python's
# ZeroDivisionError) puts a branch in every division, and the loops no longer vectorise
# (measured: 8 ns instead of 1 ns per sigmoid).
# ======================================================================================

if numba is not None:
    # exp(t) - 1 for t <= 0 without libm, vectorisable, accurate also near t = 0 (where
    # exp(t) - 1 would cancel): expm1(t / 256) by its Taylor polynomial of degree 10, then
    # doubled 8 times with expm1(2s) = expm1(s) (expm1(s) + 2).  Relative error below 1e-9.
    @njit(inline="always")
    def _expm1_nonpositive(t):
        r = max(t, -100.0) * (1 / 256)
        m = r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
            1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800))))))))))
        for _ in range(8):
            m = m * (m + 2.0)
        return -1.0 if t < -100.0 else m

    # sigmoid and tanh of one number, chosen by its type when numba compiles the caller:
    # float32 by the vectorisable formulas (within one float32 ulp), float64 by libm.
    def _sigmoid1(v):
        """1 / (1 + e^-v) from e = exp(-|v|) <= 1 (reference.sigmoid's formula)."""
        e = math.exp(-abs(v))
        return (1.0 if v >= 0 else e) / (1.0 + e)

    def _tanh1(v):
        return math.tanh(v)

    @overload(_sigmoid1)
    def _sigmoid1_typed(v):
        exp = _exp_nonpositive if v == numba.types.float32 else math.exp

        def sigmoid1(v):
            e = exp(-abs(v))
            return (1.0 if v >= 0 else e) / (1.0 + e)
        return sigmoid1

    @overload(_tanh1)
    def _tanh1_typed(v):
        if v != numba.types.float32:
            return lambda v: math.tanh(v)

        def tanh1(v):  # sign(v) (1 - e) / (1 + e), e = exp(-2|v|), from expm1: no cancellation at 0
            m = _expm1_nonpositive(-2.0 * abs(v))
            return math.copysign(-m / (2.0 + m), v)
        return tanh1

    # The loops are written for LLVM's vectoriser: each runs from 0 over one gate's H units of
    # one row (slices of the row, unit stride) and touches few arrays.  (One loop per row over
    # all gates and outputs stayed scalar: measured 2-8x slower.)
    _CELL = dict(cache=True, fastmath=_FAST_MATH, error_model="numpy")

    @njit(inline="always", **_CELL)
    def _activate(out, a, aw, b, tanh):
        """out = sigmoid (or tanh) of a + aw + b, elementwise over one gate's units."""
        if tanh:
            for j in range(out.size):
                out[j] = _tanh1(a[j] + aw[j] + b[j])
        else:
            for j in range(out.size):
                out[j] = _sigmoid1(a[j] + aw[j] + b[j])

    @njit(**_CELL)
    def _rnn_forward_nb(xw, hw, b, relu, out):
        for r in range(xw.shape[0]):
            a, aw, o = xw[r], hw[r], out[r]
            if relu:
                for j in range(o.size):
                    v = a[j] + aw[j] + b[j]
                    o[j] = v if v > 0 or v != v else 0.0
            else:
                for j in range(o.size):
                    o[j] = _tanh1(a[j] + aw[j] + b[j])

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
    def _lstm_forward_nb(xw, hw, b, c, hc, saved):
        n = c.shape[1]
        for r in range(c.shape[0]):
            s = saved[r]
            for k in range(4):  # i, f, g (tanh), o
                part = slice(k * n, (k + 1) * n)
                _activate(s[part], xw[r, part], hw[r, part], b[part], k == 2)
            i, f, g, o, tc = s[:n], s[n:2 * n], s[2 * n:3 * n], s[3 * n:4 * n], s[4 * n:]
            h_new, c_new, c_old = hc[0, r], hc[1, r], c[r]
            for j in range(n):
                c_new[j] = f[j] * c_old[j] + i[j] * g[j]
            for j in range(n):
                tc[j] = _tanh1(c_new[j])
            for j in range(n):
                h_new[j] = o[j] * tc[j]

    @njit(**_CELL)
    def _lstm_backward_nb(ghc, c, saved, da, dc):
        n = c.shape[1]
        for r in range(c.shape[0]):
            s, d, gh, gc, c_old, dcr = saved[r], da[r], ghc[0, r], ghc[1, r], c[r], dc[r]
            i, f, g, o, tc = s[:n], s[n:2 * n], s[2 * n:3 * n], s[3 * n:4 * n], s[4 * n:]
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
        zero = np.zeros(2 * n, dtype=gi.dtype)
        for r in range(h.shape[0]):
            s, a, aw = saved[r], gi[r], gh[r]
            _activate(s[:2 * n], a[:2 * n], aw[:2 * n], zero, False)  # r, z
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


def _summed_bias(b_ih, b_hh, like):
    """b_ih + b_hh (one add per step instead of one per element), zeros without biases."""
    if b_ih is None:
        return np.zeros(like.shape[1], dtype=like.dtype)
    return b_ih + b_hh


def _c(a):
    return np.ascontiguousarray(a)


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity):
    if not _rows_ok(x, h, w_ih, w_hh, b_ih, b_hh) or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    _ref._check_cell("rnn_cell_forward", 1, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    xw, hw = x @ w_ih.T, h @ w_hh.T
    out = np.empty_like(xw)
    _rnn_forward_nb(xw, hw, _summed_bias(b_ih, b_hh, xw), nonlinearity == "relu", out)
    return out


def rnn_cell_backward(g, x, h, h_new, w_ih, w_hh, nonlinearity, need_dx=True):
    if not _rows_ok(g, x, h, h_new, w_ih, w_hh) or nonlinearity not in ("tanh", "relu"):
        return _ref.rnn_cell_backward(g, x, h, h_new, w_ih, w_hh, nonlinearity, need_dx)
    _ref._check_cell("rnn_cell_backward", 1, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g, h_new_BH=h_new)
    da = np.empty(g.shape, dtype=g.dtype)
    _rnn_backward_nb(_c(g), _c(h_new), nonlinearity == "relu", da)
    return _ref._cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)[:5]


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh):
    if not _rows_ok(x, h, c, w_ih, w_hh, b_ih, b_hh):
        return _ref.lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
    b, hidden = _ref._check_cell("lstm_cell_forward", 4, x, h, w_ih, w_hh, b_ih, b_hh, c_BH=c)
    xw, hw = x @ w_ih.T, h @ w_hh.T
    hc, saved = np.empty((2, b, hidden), dtype=xw.dtype), np.empty((b, 5 * hidden), dtype=xw.dtype)
    _lstm_forward_nb(xw, hw, _summed_bias(b_ih, b_hh, xw), _c(c), hc, saved)
    return hc, saved


def lstm_cell_backward(ghc, x, h, c, saved, w_ih, w_hh, need_dx=True):
    if not _rows_ok(ghc, x, h, c, saved, w_ih, w_hh):
        return _ref.lstm_cell_backward(ghc, x, h, c, saved, w_ih, w_hh, need_dx)
    b, hidden = _ref._check_cell("lstm_cell_backward", 4, x, h, w_ih, w_hh, None, None, c_BH=c, ghc_2BH=ghc,
                                 saved_B5H=saved)
    da, dc = np.empty((b, 4 * hidden), dtype=saved.dtype), np.empty((b, hidden), dtype=saved.dtype)
    _lstm_backward_nb(_c(ghc), _c(c), _c(saved), da, dc)
    dx, dh, dw_ih, dw_hh, db, _ = _ref._cell_weight_grads(da, da, x, h, w_ih, w_hh, need_dx)
    return dx, dh, dc, dw_ih, dw_hh, db


def gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh):
    if not _rows_ok(x, h, w_ih, w_hh, b_ih, b_hh):
        return _ref.gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh)
    b, hidden = _ref._check_cell("gru_cell_forward", 3, x, h, w_ih, w_hh, b_ih, b_hh, h_BH=h)
    gi, gh = _ref._gate_inputs(x, h, w_ih, w_hh, b_ih, b_hh)
    h_new, saved = np.empty((b, hidden), dtype=gi.dtype), np.empty((b, 4 * hidden), dtype=gi.dtype)
    _gru_forward_nb(gi, gh, _c(h), h_new, saved)
    return h_new, saved


def gru_cell_backward(g, x, h, saved, w_ih, w_hh, need_dx=True):
    if not _rows_ok(g, x, h, saved, w_ih, w_hh):
        return _ref.gru_cell_backward(g, x, h, saved, w_ih, w_hh, need_dx)
    _ref._check_cell("gru_cell_backward", 3, x, h, w_ih, w_hh, None, None, h_BH=h, g_BH=g, saved_B4H=saved)
    b, hidden = g.shape
    dgi, dgh, g_z = (np.empty(shape, dtype=g.dtype) for shape in ((b, 3 * hidden), (b, 3 * hidden), (b, hidden)))
    _gru_backward_nb(_c(g), _c(h), _c(saved), dgi, dgh, g_z)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _ref._cell_weight_grads(dgi, dgh, x, h, w_ih, w_hh, need_dx)
    dh += g_z
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
