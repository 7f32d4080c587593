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
  to become NCHW.  See docs/derivations/conv.md.
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

Which implementation runs: im2col always uses the NumPy version, whose kh*kw strided block
copies are already memory-bound (on the 2-core reference machine it measured 2-3x faster than
the per-element numba kernel ``_im2col_nb``, which is kept, and tested equal, as the readable
one-loop-per-index statement of the layout).  Everything else uses numba when enabled.
"""
import numpy as np

from . import numba_enabled

import os

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

    @njit(parallel=True, cache=True)
    def _im2col_nb(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        n, c, h, w = x.shape
        kk = kh * kw
        L = oh * ow
        cols = np.empty((c * kk, n * L), dtype=x.dtype)
        for task in prange(c * kk * n):
            row = task // n
            b = task % n
            ch = row // kk
            i = (row % kk) // kw
            j = row % kw
            base = b * L
            for y in range(oh):
                iy = y * sh - ph + i * dh
                o = base + y * ow
                if iy < 0 or iy >= h:
                    for xo in range(ow):
                        cols[row, o + xo] = 0
                    continue
                for xo in range(ow):
                    ix = xo * sw - pw + j * dw
                    if ix >= 0 and ix < w:
                        cols[row, o + xo] = x[b, ch, iy, ix]
                    else:
                        cols[row, o + xo] = 0
        return cols

    @njit(parallel=True, cache=True)
    def _col2im_nb(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
        kk = kh * kw
        L = oh * ow
        dx = np.zeros((n, c, h, w), dtype=cols.dtype)
        # one task per (image, channel): each writes only its own plane, so no races
        for task in prange(n * c):
            b = task // c
            ch = task % c
            base = b * L
            for i in range(kh):
                for j in range(kw):
                    row = ch * kk + i * kw + j
                    for y in range(oh):
                        iy = y * sh - ph + i * dh
                        if iy < 0 or iy >= h:
                            continue
                        o = base + y * ow
                        for xo in range(ow):
                            ix = xo * sw - pw + j * dw
                            if ix >= 0 and ix < w:
                                dx[b, ch, iy, ix] += cols[row, o + xo]
        return dx

    @njit(parallel=True, cache=True)
    def _maxpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, oh, ow):
        n, c, h, w = x.shape
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        arg = np.empty((n, c, oh, ow), dtype=np.int32)
        for task in prange(n * c):
            b = task // c
            ch = task % c
            for y in range(oh):
                for xo in range(ow):
                    best = x[b, ch, 0, 0]
                    bi = -1
                    for i in range(kh):
                        iy = y * sh - ph + i
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * sw - pw + j
                            if ix < 0 or ix >= w:
                                continue
                            v = x[b, ch, iy, ix]
                            # first max on ties (strict >); a NaN wins and the first NaN stays
                            if bi < 0 or v > best or (v != v and best == best):
                                best = v
                                bi = iy * w + ix
                    out[b, ch, y, xo] = best
                    arg[b, ch, y, xo] = bi
        return out, arg

    @njit(parallel=True, cache=True)
    def _maxpool2x2_fwd_nb(x, oh, ow):
        """The common 2x2 / stride 2 / no padding case, unrolled (same tie and NaN rules)."""
        n, c, h, w = x.shape
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        arg = np.empty((n, c, oh, ow), dtype=np.int32)
        for task in prange(n * c):
            b = task // c
            ch = task % c
            for y in range(oh):
                r0 = 2 * y
                for xo in range(ow):
                    c0 = 2 * xo
                    best = x[b, ch, r0, c0]
                    bi = r0 * w + c0
                    v = x[b, ch, r0, c0 + 1]
                    if v > best or (v != v and best == best):
                        best = v
                        bi = r0 * w + c0 + 1
                    v = x[b, ch, r0 + 1, c0]
                    if v > best or (v != v and best == best):
                        best = v
                        bi = (r0 + 1) * w + c0
                    v = x[b, ch, r0 + 1, c0 + 1]
                    if v > best or (v != v and best == best):
                        best = v
                        bi = (r0 + 1) * w + c0 + 1
                    out[b, ch, y, xo] = best
                    arg[b, ch, y, xo] = bi
        return out, arg

    @njit(parallel=True, cache=True)
    def _maxpool_bwd_nb(g, arg, n, c, h, w):
        dx = np.zeros((n, c, h * w), dtype=g.dtype)
        oh, ow = g.shape[2], g.shape[3]
        for task in prange(n * c):
            b = task // c
            ch = task % c
            for y in range(oh):
                for xo in range(ow):
                    # overlapping windows may pick the same input: accumulate
                    dx[b, ch, arg[b, ch, y, xo]] += g[b, ch, y, xo]
        return dx.reshape((n, c, h, w))

    @njit(parallel=True, cache=True)
    def _maxpool2x2_bwd_nb(g, arg, n, c, h, w):
        """2x2 / stride 2: windows do not overlap, so every input element gets exactly one
        value (its window's gradient or 0) and dx needs no separate zero-filling pass."""
        oh, ow = g.shape[2], g.shape[3]
        dx = np.empty((n, c, h, w), dtype=g.dtype)
        for task in prange(n * c):
            b = task // c
            ch = task % c
            for y in range(oh):
                for xo in range(ow):
                    dx[b, ch, 2 * y, 2 * xo] = 0
                    dx[b, ch, 2 * y, 2 * xo + 1] = 0
                    dx[b, ch, 2 * y + 1, 2 * xo] = 0
                    dx[b, ch, 2 * y + 1, 2 * xo + 1] = 0
                    a = arg[b, ch, y, xo]
                    dx[b, ch, a // w, a % w] = g[b, ch, y, xo]
            # an odd last row / column belongs to no window
            for r in range(2 * oh, h):
                for q in range(w):
                    dx[b, ch, r, q] = 0
            for r in range(2 * oh):
                for q in range(2 * ow, w):
                    dx[b, ch, r, q] = 0
        return dx

    @njit(parallel=True, cache=True)
    def _avgpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, oh, ow):
        n, c, h, w = x.shape
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        inv = 1.0 / (kh * kw)
        for task in prange(n * c):
            b = task // c
            ch = task % c
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
                                s += x[b, ch, iy, ix]
                    out[b, ch, y, xo] = s * inv
        return out

    @njit(parallel=True, cache=True)
    def _avgpool_bwd_nb(g, n, c, h, w, kh, kw, sh, sw, ph, pw):
        oh, ow = g.shape[2], g.shape[3]
        dx = np.zeros((n, c, h, w), dtype=g.dtype)
        inv = 1.0 / (kh * kw)
        for task in prange(n * c):
            b = task // c
            ch = task % c
            for y in range(oh):
                for xo in range(ow):
                    share = g[b, ch, y, xo] * inv
                    for i in range(kh):
                        iy = y * sh - ph + i
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * sw - pw + j
                            if ix >= 0 and ix < w:
                                dx[b, ch, iy, ix] += share
        return dx


# ======================================================================================
# Public kernels (dispatch)
# ======================================================================================


def im2col(x, kernel, stride, padding, dilation, out_size):
    """(N, C, H, W) -> cols (C*kh*kw, N*oh*ow); padded positions read as 0."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    # NumPy on purpose, numba or not: see the module docstring
    return _im2col_np(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def col2im(cols, x_shape, kernel, stride, padding, dilation, out_size):
    """The adjoint of im2col: cols (C*kh*kw, N*oh*ow) -> (N, C, H, W), overlapping taps summed."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_size
    n, c, h, w = x_shape
    if use_numba():
        return _col2im_nb(np.ascontiguousarray(cols), n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return _col2im_np(cols, x_shape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def maxpool2d_forward(x, kernel, stride, padding, out_size):
    """Returns (out, argmax); argmax[n, c, oy, ox] = flat index y*W + x of the winner."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, out_size
    if use_numba():
        x = np.ascontiguousarray(x)
        if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
            return _maxpool2x2_fwd_nb(x, oh, ow)
        return _maxpool_fwd_nb(x, kh, kw, sh, sw, ph, pw, oh, ow)
    return _maxpool_fwd_np(x, kh, kw, sh, sw, ph, pw, oh, ow)


def maxpool2d_backward(g, argmax, x_shape, kernel=None, stride=None, padding=None):
    """dx: each output gradient added onto its arg-max input (overlaps accumulate)."""
    if use_numba():
        n, c, h, w = x_shape
        g = np.ascontiguousarray(g)
        if (kernel, stride, padding) == ((2, 2), (2, 2), (0, 0)):
            return _maxpool2x2_bwd_nb(g, argmax, n, c, h, w)
        return _maxpool_bwd_nb(g, argmax, n, c, h, w)
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
