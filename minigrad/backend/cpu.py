"""CPU kernels: im2col / col2im and 2-D pooling, as numba kernels with pure-NumPy fallbacks.

Arrays in, arrays out: nothing here knows about Tensors or autograd.  Every public function
picks the numba kernel when numba imports and ``numba_enabled()`` (MINIGRAD_DISABLE_NUMBA is
not set), else the NumPy version; both give the same numbers (tests/test_ops_conv.py and
tests/test_ops_pool.py check that).

Layouts (all NCHW):

* ``im2col(x, ...)`` returns ``cols`` of shape ``(C*kh*kw, N*oh*ow)``: row ``(c, i, j)`` holds,
  for every output pixel ``(n, oy, ox)``, the input value the kernel tap ``(i, j)`` of channel
  ``c`` sees there.  A convolution is then ONE matrix product ``W(O, C*kh*kw) @ cols`` whose
  result ``(O, N, oh*ow)`` needs only one cheap transpose (rows of ``oh*ow`` stay contiguous)
  to become NCHW: ``gemm_to_nchw`` does it with the bias add, ``nchw_to_gemm`` the reverse for
  the output gradient together with its row sums (the bias gradient).
  See docs/derivations/conv.md.
* ``col2im`` is its adjoint: it adds every column entry back onto the input pixel it came from.
* Max pooling returns, besides the output, ``argmax``: for every output element the flat
  index ``y*W + x`` (within its own (n, c) image) of the input element that won.

Threads: numba kernels use numba's thread pool (prange), matrix products use the BLAS pool.
They run one after the other, never nested.  numba's default OpenMP layer keeps its threads
spinning after a kernel, and so does OpenBLAS after a GEMM; on a 2-core machine the two pools
then fight for the cores (a training step of the MNIST CNN measured ~110 ms with the OpenMP
layer against ~80 ms with the "workqueue" layer), so workqueue is chosen unless the user set
NUMBA_THREADING_LAYER.  (workqueue must not be entered from two Python threads at once;
minigrad starts no threads.)

Measured on the 2-core reference machine (float32, the MNIST CNN's second conv layer):
im2col 1.2 ms numba vs 2.9 ms NumPy, col2im 2.3 ms vs 10.7 ms; the 2x2 max-pool forward
1.0 ms with its unrolled kernel vs 7.5 ms with the generic one (see benchmarks/conv_ops.py).
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


def _im2col_np(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            cols[:, i, j] = xp[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def _col2im_np(cols, shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = shape
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _tap_slices(i, j, sh, sw, dh, dw, oh, ow)
            dxp[:, :, rows, columns] += cols[:, i, j].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + w])


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
    def _im2col_nb(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        n, c, h, w = x.shape
        kk = kh * kw
        L = oh * ow
        xf = x.reshape((n * c, h * w))
        cols = np.empty((c * kk, n * L), dtype=x.dtype)
        for row in prange(c * kk):  # one row of cols = one (channel, kernel tap)
            ch = row // kk
            i = (row % kk) // kw
            j = row % kw
            ylo, yhi = _span(oh, sh, i * dh - ph, h)
            xlo, xhi = _span(ow, sw, j * dw - pw, w)
            dst = cols[row]
            for b in range(n):
                src = xf[b * c + ch]
                for y in range(oh):
                    o = b * L + y * ow
                    if y < ylo or y >= yhi:  # the whole output row reads padding
                        for q in range(ow):
                            dst[_u(o + q)] = 0
                        continue
                    s0 = (y * sh + i * dh - ph) * w + j * dw - pw
                    for q in range(xlo):
                        dst[_u(o + q)] = 0
                    if sw == 1:
                        dd, ss = _u(o + xlo), _u(s0 + xlo)
                        for t in range(_u(xhi - xlo)):
                            dst[dd + t] = src[ss + t]
                    else:
                        for q in range(xlo, xhi):
                            dst[_u(o + q)] = src[_u(s0 + q * sw)]
                    for q in range(xhi, ow):
                        dst[_u(o + q)] = 0
        return cols

    @njit(parallel=True, cache=True)
    def _col2im_nb(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        kk = kh * kw
        L = oh * ow
        dx = np.zeros((n * c, h * w), dtype=cols.dtype)
        # one task per (image, channel) plane: each writes only its own plane, so no races
        for task in prange(n * c):
            b = task // c
            ch = task % c
            dst = dx[task]
            for i in range(kh):
                ylo, yhi = _span(oh, sh, i * dh - ph, h)
                for j in range(kw):
                    xlo, xhi = _span(ow, sw, j * dw - pw, w)
                    src = cols[ch * kk + i * kw + j]
                    for y in range(ylo, yhi):
                        d0 = (y * sh + i * dh - ph) * w + j * dw - pw
                        s0 = b * L + y * ow
                        if sw == 1:
                            dd, ss = _u(d0 + xlo), _u(s0 + xlo)
                            for t in range(_u(xhi - xlo)):
                                dst[dd + t] += src[ss + t]
                        else:
                            for q in range(xlo, xhi):
                                dst[_u(d0 + q * sw)] += src[_u(s0 + q)]
        return dx.reshape((n, c, h, w))

    @njit(parallel=True, cache=True)
    def _gemm_to_nchw_nb(y, bias, n, L):
        o = y.shape[0]
        out = np.empty((n, o, L), dtype=y.dtype)
        for task in prange(n * o):
            b = task // o
            ch = task % o
            src = y[ch]
            dst = out[b, ch]
            add = bias[ch]
            base = _u(b * L)
            for t in range(_u(L)):
                dst[t] = src[base + t] + add
        return out

    @njit(parallel=True, cache=True)
    def _nchw_to_gemm_nb(g):
        n, o, L = g.shape
        G = np.empty((o, n * L), dtype=g.dtype)
        db = np.empty(o, dtype=g.dtype)
        for ch in prange(o):
            dst = G[ch]
            total = 0.0
            for b in range(n):
                src = g[b, ch]
                base = _u(b * L)
                for t in range(_u(L)):
                    v = src[t]
                    dst[base + t] = v
                    total += v
            db[ch] = total
        return G, db

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


# ======================================================================================
# Public kernels (dispatch)
# ======================================================================================


def im2col(x, kernel, stride, padding, dilation, out_size):
    """(N, C, H, W) -> cols (C*kh*kw, N*oh*ow); padded positions read as 0."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    if use_numba():
        return _im2col_nb(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return _im2col_np(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_size):
    """The adjoint of im2col: cols (C*kh*kw, N*oh*ow) -> (N, C, H, W), overlapping taps summed."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, c, h, w = x_shape
    if use_numba():
        return _col2im_nb(np.ascontiguousarray(cols), n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return _col2im_np(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def gemm_to_nchw(y, bias, n, L):
    """The GEMM result y (O, N*L) as (N, O, L), plus bias (O,) (or None) on every channel."""
    o = y.shape[0]
    if use_numba():
        b = np.zeros(o, dtype=y.dtype) if bias is None else np.ascontiguousarray(bias, dtype=y.dtype)
        return _gemm_to_nchw_nb(np.ascontiguousarray(y), b, n, L)
    out = np.empty((n, o, L), dtype=y.dtype)
    src = y.reshape(o, n, L).transpose(1, 0, 2)
    if bias is None:
        np.copyto(out, src)
    else:
        np.add(src, bias.reshape(1, o, 1), out=out)
    return out


def nchw_to_gemm(g):
    """The inverse layout change: g (N, O, L) -> (G (O, N*L), the sums of each G row (O,))."""
    n, o, L = g.shape
    if use_numba():
        return _nchw_to_gemm_nb(np.ascontiguousarray(g))
    G = np.ascontiguousarray(g.transpose(1, 0, 2)).reshape(o, n * L)
    return G, G.sum(axis=1)


def maxpool2d_forward(x, kernel, stride, padding, out_size):
    """Returns (out, argmax); argmax[n, c, oy, ox] = flat index y*W + x of the winner."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, out_size
    if use_numba():
        x = np.ascontiguousarray(x)
        if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
            return _maxpool2x2_fwd_nb(x, oh, ow)
        return _maxpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, oh, ow)
    return _maxpool_fwd_np(x, kh, kw, sh, sw, ph, pw, oh, ow)


def maxpool2d_backward(g, argmax, x_shape):
    """dx: each output gradient added onto its arg-max input (overlaps accumulate)."""
    if use_numba():
        n, c, h, w = x_shape
        return _maxpool_bwd_nb(np.ascontiguousarray(g), argmax, n, c, h, w)
    return _maxpool_bwd_np(g, argmax, x_shape)


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
