"""CPU kernels: im2col / col2im and 2-D pooling, as numba kernels with pure-NumPy fallbacks.

Arrays in, arrays out: nothing here knows about Tensors or autograd.  Every public function
picks the numba kernel when numba imports and ``numba_enabled()`` (MINIGRAD_DISABLE_NUMBA is
not set), else the NumPy version; both give the same numbers (tests/test_ops_conv.py and
tests/test_ops_pool.py check that).

Layouts.  Tensors are (N, C, H, W); the convolution kernels work on the same values laid out
channels-last, (N, H, W, C) in memory ("channels_last"), because that is what makes the
convolution one matrix product with no layout copies (docs/derivations/conv.md):

* ``im2col(x_nhwc, ...)`` returns ``cols`` of shape ``(N*oh*ow, kh*kw*C)``: one ROW per output
  pixel ``(n, oy, ox)``, holding what each kernel tap ``(i, j)`` of each channel ``c`` sees
  there (taps in ``(i, j, c)`` order, so each pixel's C channels are one contiguous run).
  ``cols @ W2`` (``W2``: ``(kh*kw*C, O)``) is then the output, already channels-last.
  ``ones_column=True`` appends a column of ones that carries the bias through the same GEMM.
* ``col2im`` is its adjoint: it adds every column entry back onto the input pixel it came from.
* ``channels_last(x)`` gives the (N, H, W, C) array of an (N, C, H, W) one: free for conv
  outputs (a view), one copy otherwise.
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
import os

import numpy as np

from . import numba_enabled

try:
    import numba
    from numba import njit, prange

    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"
except Exception:  # numba is a dependency, but the NumPy path must work without it
    numba = None


def use_numba():
    """True when the numba kernels run (numba importable and not disabled by the env var)."""
    return numba is not None and numba_enabled()


def conv_output_size(size, kernel, stride, padding, dilation=1):
    """floor((size + 2 p - d (k - 1) - 1) / s) + 1, the PyTorch formula."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ======================================================================================
# NumPy reference implementations (also the fallbacks)
# ======================================================================================


def _tap_slices(i, j, sh, sw, dh, dw, oh, ow):
    """Rows/cols of the padded input that kernel tap (i, j) reads for all outputs."""
    return (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def _im2col_np(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra=0):
    """x (N, H, W, C) -> cols (N*oh*ow, kh*kw*C + extra): one row per output pixel, taps
    (i, j, c), then ``extra`` (0 or 1) columns of ones."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))) if (ph or pw) else x
    cols = np.empty((n, oh, ow, kh * kw * c + extra), dtype=x.dtype)
    taps = cols[..., :kh * kw * c].reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            taps[:, :, :, i, j] = xp[:, rows, columns]
    cols[..., kh * kw * c:] = 1
    return cols.reshape(n * oh * ow, kh * kw * c + extra)


def _col2im_np(cols, shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The adjoint of _im2col_np: cols (N*oh*ow, kh*kw*C) -> (N, H, W, C), taps summed."""
    n, h, w, c = shape
    dxp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            dxp[:, rows, columns] += cols[:, :, :, i, j]
    return np.ascontiguousarray(dxp[:, ph:ph + h, pw:pw + w])


def _maxpool_fwd_np(x, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = x.shape
    # padding is -inf so it never wins; "valid" masks keep it out of the argmax entirely
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    best = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    idx = np.full((n, c, oh, ow), -1, dtype=np.int32)
    oy = np.arange(oh)[:, None] * sh - ph
    ox = np.arange(ow)[None, :] * sw - pw
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, 1, 1, oh, ow)
            v = xp[:, :, rows, columns]
            y, xx = oy + i, ox + j
            valid = (y >= 0) & (y < h) & (xx >= 0) & (xx < w)
            # first maximum wins (strict >); a NaN beats any number, and the first NaN stays
            take = valid & ((idx < 0) | (v > best) | (np.isnan(v) & ~np.isnan(best)))
            best = np.where(take, v, best)
            idx = np.where(take, (y * w + xx).astype(np.int32), idx)
    return best, idx


def _maxpool_bwd_np(g, argmax, shape):
    n, c, h, w = shape
    dx = np.zeros((n * c, h * w), dtype=g.dtype)
    rows = np.repeat(np.arange(n * c), argmax.shape[2] * argmax.shape[3])
    np.add.at(dx, (rows, argmax.reshape(-1)), g.reshape(-1))
    return dx.reshape(shape)


def _avgpool_fwd_np(x, kh, kw, sh, sw, ph, pw, oh, ow):
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    out = np.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, 1, 1, oh, ow)
            out += xp[:, :, rows, columns]
    return out / x.dtype.type(kh * kw)


def _avgpool_bwd_np(g, shape, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = shape
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=g.dtype)
    share = g / g.dtype.type(kh * kw)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, 1, 1, oh, ow)
            dxp[:, :, rows, columns] += share
    return np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + w])


# ======================================================================================
# numba kernels
# ======================================================================================

if numba is not None:
    # Why the np.uint64(...) casts: numba checks every signed index for "negative means from
    # the end"; that branch stops LLVM from vectorising the inner loops.  Indices that are
    # known to be >= 0 are cast to unsigned, which drops the check (measured: col2im 4x faster).
    # Careful: uint64 mixed with int64 gives float64 in numba, so the casts stay local.
    _u = np.uint64

    @njit(inline="always")
    def _span(out, stride, offset, size):
        """Outputs q in [lo, hi) whose input index q*stride + offset lies inside [0, size)."""
        lo = 0
        while lo < out and lo * stride + offset < 0:
            lo += 1
        hi = out
        while hi > lo and (hi - 1) * stride + offset >= size:
            hi -= 1
        return lo, hi

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
    def _maxpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, oh, ow):
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
                        iy = y * sh - ph + i
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * sw - pw + j
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
        for task in prange(n * c):
            dst = dx[task]
            for o in range(gf.shape[1]):
                # overlapping windows may pick the same input: accumulate
                dst[_u(af[task, o])] += gf[task, o]
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

    @njit(parallel=True, cache=True)
    def _avgpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, oh, ow):
        n, c, h, w = x.shape
        xf = x.reshape((n * c, h * w))
        out = np.empty((n * c, oh * ow), dtype=x.dtype)
        inv = 1.0 / (kh * kw)
        for task in prange(n * c):
            src = xf[task]
            for y in range(oh):
                for xo in range(ow):
                    s = 0.0
                    for i in range(kh):
                        iy = y * sh - ph + i
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * sw - pw + j
                            if ix >= 0 and ix < w:
                                s += src[_u(iy * w + ix)]
                    out[task, y * ow + xo] = s * inv
        return out.reshape((n, c, oh, ow))

    @njit(parallel=True, cache=True)
    def _avgpool_bwd_nb(g, n, c, h, w, kh, kw, sh, sw, ph, pw):
        oh, ow = g.shape[2], g.shape[3]
        gf = g.reshape((n * c, oh * ow))
        dx = np.zeros((n * c, h * w), dtype=g.dtype)
        inv = 1.0 / (kh * kw)
        for task in prange(n * c):
            dst = dx[task]
            for y in range(oh):
                for xo in range(ow):
                    share = gf[task, y * ow + xo] * inv
                    for i in range(kh):
                        iy = y * sh - ph + i
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * sw - pw + j
                            if ix >= 0 and ix < w:
                                dst[_u(iy * w + ix)] += share
        return dx.reshape((n, c, h, w))


if numba is not None:

    @njit(parallel=True, cache=True)
    def _relu_nb(x, out):
        for i in prange(x.size):
            v = x[i]
            out[i] = 0 if v < 0 else v  # NaN stays NaN, like np.maximum

    @njit(parallel=True, cache=True)
    def _relu_backward_nb(g, y, out):
        for i in prange(g.size):
            out[i] = g[i] if y[i] > 0 else 0


# ======================================================================================
# Public kernels (dispatch)
# ======================================================================================


def is_channels_last(x):
    """True when a 4-D (N, C, H, W) array is laid out as (N, H, W, C) in memory."""
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous


def channels_last(x):
    """(N, C, H, W) -> the same values as a C-contiguous (N, H, W, C) array: a free view when
    x is channels-last already (as conv2d's outputs are) or has one channel, else one copy."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def im2col(x, kernel, stride, padding, dilation, out_size, ones_column=False):
    """x (N, H, W, C) -> cols (N*oh*ow, kh*kw*C): row = output pixel, columns = taps (i, j, c);
    padded positions read as 0.  ``ones_column`` appends a column of ones, so that a bias
    rides along in the same matrix product as one more weight row."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    extra = int(bool(ones_column))
    if use_numba() and x.shape[3] == 1:
        # one channel (a first layer on images): the transposed layout copies long runs;
        # the .T view is the same matrix for the GEMMs (BLAS reads it transposed, no copy)
        return _im2col_1ch_nb(np.ascontiguousarray(x[..., 0]), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra).T
    if use_numba():
        return _im2col_nb(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra)
    return _im2col_np(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, extra)


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_size):
    """The adjoint of im2col: cols (N*oh*ow, kh*kw*C) -> (N, H, W, C), overlapping taps summed.
    ``x_shape`` is the channels-last shape (N, H, W, C)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, h, w, c = x_shape
    if use_numba():
        return _col2im_nb(np.ascontiguousarray(cols), n, h, w, c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return _col2im_np(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def maxpool2d_forward(x, kernel, stride, padding, out_size):
    """Returns (out, argmax); argmax[n, c, oy, ox] = flat index y*W + x of the winner.

    A channels-last input (a conv2d output) keeps its layout through the common 2x2 pool:
    out and argmax come back as (N, C, oh, ow) views of (N, oh, ow, C) arrays."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, out_size
    if use_numba():
        square2 = (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0)
        if square2 and is_channels_last(x) and not x.flags.c_contiguous:
            out, arg = _maxpool2x2_nhwc_fwd_nb(channels_last(x), oh, ow)
            return out.transpose(0, 3, 1, 2), arg.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x)
        if square2:
            return _maxpool2x2_fwd_nb(x, oh, ow)
        return _maxpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, oh, ow)
    return _maxpool_fwd_np(x, kh, kw, sh, sw, ph, pw, oh, ow)


def maxpool2d_backward(g, argmax, x_shape):
    """dx: each output gradient added onto its arg-max input (overlaps accumulate); dx has
    the layout of the forward's input (the argmax array's layout tells which)."""
    if use_numba():
        n, c, h, w = x_shape
        if is_channels_last(argmax) and not argmax.flags.c_contiguous:
            dx = _maxpool2x2_nhwc_bwd_nb(channels_last(g), channels_last(argmax), h, w)
            return dx.transpose(0, 3, 1, 2)
        return _maxpool_bwd_nb(np.ascontiguousarray(g), np.ascontiguousarray(argmax), n, c, h, w)
    return _maxpool_bwd_np(g, np.ascontiguousarray(argmax), x_shape)


def avgpool2d_forward(x, kernel, stride, padding, out_size):
    """Window means; padding counts as zeros in the window (count_include_pad=True)."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, out_size
    if use_numba():
        return _avgpool_fwd_nb(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, oh, ow)
    return _avgpool_fwd_np(x, kh, kw, sh, sw, ph, pw, oh, ow)


def avgpool2d_backward(g, x_shape, kernel, stride, padding, out_size):
    """dx: each output gradient spread evenly (1/(kh*kw)) over its window."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, out_size
    if use_numba():
        n, c, h, w = x_shape
        return _avgpool_bwd_nb(np.ascontiguousarray(g), n, c, h, w, kh, kw, sh, sw, ph, pw)
    return _avgpool_bwd_np(g, x_shape, kh, kw, sh, sw, ph, pw, oh, ow)


# Below this many elements a NumPy call is cheaper than starting numba's threads.
_PARALLEL_MIN = 1 << 16


def _dense_flat(a):
    """A flat view of ``a`` when its elements fill one block of memory (C order, or the
    channels-last order of conv2d outputs), else None."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    if is_channels_last(a):
        return a.transpose(0, 2, 3, 1).reshape(-1)
    return None


def relu(x):
    """max(x, 0) in one pass (NaN stays NaN); the output has the input's memory layout."""
    if use_numba() and x.size >= _PARALLEL_MIN:
        flat = _dense_flat(x)
        if flat is not None:
            out = np.empty_like(x)  # same layout as x
            _relu_nb(flat, _dense_flat(out))
            return out
    return np.maximum(x, 0)


def relu_backward(g, y):
    """g where y > 0, else 0 (y is ReLU's output: y > 0 exactly where x > 0), in one pass."""
    if use_numba() and g.size >= _PARALLEL_MIN and g.strides == y.strides and g.dtype == y.dtype:
        flat_g = _dense_flat(g)
        if flat_g is not None:
            out = np.empty_like(g)
            _relu_backward_nb(flat_g, _dense_flat(y), _dense_flat(out))
            return out
    return np.where(y > 0, g, 0).astype(g.dtype, copy=False)
