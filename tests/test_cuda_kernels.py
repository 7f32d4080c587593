"""cuda_kernels against reference.py, kernel by kernel, on the emulator and on a real GPU.

Each test runs twice: "emulator" hands NumPy arrays to cuda_kernels, so the CUDA C runs on the
CPU through cuda_emulator (skipped with the reason when the emulator cannot run here), and
"cuda" hands CuPy arrays to it on a GPU (skipped without one).  Inputs are random, of odd
sizes, in float32 and float64, non-contiguous where that matters, and include the edge cases
each kernel promises to handle (huge logits, NaN rows, rows longer than a block, rows of
length 1, channels-last layouts, edge tiles of the GEMM ...).  Emulated sizes stay small: the
emulator runs every thread of every block on the CPU.
"""
import math

import numpy as np
import pytest

import minigrad as mg
from tests.conftest import NO_CUDA
from minigrad.backend import cuda as ck
from minigrad.backend import reference as ref
from tests.tables import NEEDS_EMULATOR

DEVICES = [
    pytest.param("emulator", marks=NEEDS_EMULATOR),
    pytest.param("cuda", marks=pytest.mark.skipif(not mg.cuda_available(), reason=NO_CUDA)),
]
DTYPES = [np.float32, np.float64]


class Dev:
    """Puts NumPy test data where the kernels should run, and brings results back."""

    def __init__(self, name):
        self.name = name
        if name == "cuda":  # CuPy on a GPU, or the CuPy stand-in on the emulated device
            self.xp = mg.backend.cupy
        else:
            self.xp = np

    def put(self, a):
        return a if self.xp is np else self.xp.asarray(a)

    def get(self, a):
        return a if isinstance(a, np.ndarray) else self.xp.asnumpy(a)


_np_empty, _np_empty_like = np.empty, np.empty_like


def _poisoned(a):
    """Fill a fresh array with garbage (NaN / -1), so an element a kernel forgets to write
    cannot pass for a lucky zero."""
    a.fill(np.nan if a.dtype.kind == "f" else -1)
    return a


@pytest.fixture(params=DEVICES)
def dev(request, monkeypatch):
    if request.param == "emulator":  # every output the wrappers allocate starts as garbage
        monkeypatch.setattr(np, "empty", lambda *a, **k: _poisoned(_np_empty(*a, **k)))
        monkeypatch.setattr(np, "empty_like", lambda *a, **k: _poisoned(_np_empty_like(*a, **k)))
    return Dev(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def close(got, want, dtype=None, rtol=None, atol=None):
    """Elementwise agreement, NaN where NaN (never masked), in float32 or float64 accuracy."""
    dtype = np.dtype(dtype or want.dtype)
    if rtol is None:
        rtol = 3e-5 if dtype == np.float32 else 1e-11
    if atol is None:
        atol = 1e-6 if dtype == np.float32 else 1e-13
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def noncontiguous(dev, a):
    """``a``'s values on the device as a non-contiguous view (every other row of a bigger array)."""
    big = np.zeros((a.shape[0] * 2,) + a.shape[1:], dtype=a.dtype)
    big[::2] = a
    view = dev.put(big)[::2]
    assert not view.flags.c_contiguous
    return view


def channels_last_view(dev, x):
    """(N, C, H, W) values stored (N, H, W, C) on the device, as conv2d's outputs are."""
    v = dev.put(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    assert ck.is_channels_last(v) and not v.flags.c_contiguous
    return v


# ======================================================================================
# Elementwise
# ======================================================================================

FORWARD = {
    "relu": lambda k, x: k.relu(x),
    "leaky_relu": lambda k, x: k.leaky_relu(x, 0.07),
    "sigmoid": lambda k, x: k.sigmoid(x),
    "tanh": lambda k, x: k.tanh(x),
    "gelu": lambda k, x: k.gelu(x, "none"),
    "gelu_tanh": lambda k, x: k.gelu(x, "tanh"),
    "silu": lambda k, x: k.silu(x),
}
BACKWARD = {
    "relu_backward": lambda k, g, s: k.relu_backward(g, k.relu(s)),
    "leaky_relu_backward": lambda k, g, s: k.leaky_relu_backward(g, s, 0.07),
    "sigmoid_backward": lambda k, g, s: k.sigmoid_backward(g, k.sigmoid(s)),
    "tanh_backward": lambda k, g, s: k.tanh_backward(g, k.tanh(s)),
    "gelu_backward": lambda k, g, s: k.gelu_backward(g, s, "none"),
    "gelu_tanh_backward": lambda k, g, s: k.gelu_backward(g, s, "tanh"),
    "silu_backward": lambda k, g, s: k.silu_backward(g, s),
}


def _activation_input(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    flat = x.reshape(-1)
    flat[::7] = 0  # the kink of relu / leaky_relu
    if flat.size > 3:
        flat[1], flat[2], flat[3] = np.nan, 80.0, -80.0  # NaN, and saturating arguments
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(FORWARD))
@pytest.mark.parametrize("shape", [(1,), (5,), (4, 4), (3, 1031)])
def test_activation_forward(dev, rng, name, dtype, shape):
    x = _activation_input(rng, shape, dtype)
    got = FORWARD[name](ck, dev.put(x))
    assert got.dtype == dtype and got.shape == shape
    close(dev.get(got), FORWARD[name](ref, x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BACKWARD))
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 1031)])
def test_activation_backward(dev, rng, name, dtype, shape):
    s = _activation_input(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    got = BACKWARD[name](ck, dev.put(g), dev.put(s))
    # judged against the exact (float64) derivative at the same inputs: where the two terms of
    # a derivative nearly cancel (gelu near x = -4.5, silu near -1.3) any float32 evaluation,
    # the reference's included, is off by a few float32 ulps of the terms, ~1e-6 absolute
    want = BACKWARD[name](ref, g.astype(np.float64), s.astype(np.float64))
    close(dev.get(got), want.astype(dtype), atol=1e-5 if dtype == np.float32 else None)


@pytest.mark.parametrize("name", ["relu", "gelu", "silu"])
def test_activation_misaligned_and_noncontiguous(dev, rng, name):
    """Views that start off a 16-byte boundary take the one-element path; strided views are
    made contiguous first.  Both must give the same numbers."""
    x = _activation_input(rng, (9, 13), np.float32)
    base = dev.put(np.concatenate([[0.5], x.reshape(-1)]).astype(np.float32))
    shifted = base[1:].reshape(9, 13)  # 4 bytes past an aligned start
    close(dev.get(FORWARD[name](ck, shifted)), FORWARD[name](ref, x))
    close(dev.get(FORWARD[name](ck, noncontiguous(dev, x))), FORWARD[name](ref, x))
    g = rng.standard_normal((9, 13)).astype(np.float32)
    back = name + "_backward"
    close(dev.get(BACKWARD[back](ck, noncontiguous(dev, g), shifted)), BACKWARD[back](ref, g, x))


def test_activation_keeps_channels_last(dev, rng):
    x = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
    y = ck.relu(channels_last_view(dev, x))
    assert ck.is_channels_last(y) and not y.flags.c_contiguous
    close(dev.get(y), ref.relu(x))
    g = rng.standard_normal(x.shape).astype(np.float32)
    dx = ck.relu_backward(channels_last_view(dev, g), y)
    assert ck.is_channels_last(dx)
    close(dev.get(dx), ref.relu_backward(g, ref.relu(x)))


def test_activation_errors_and_other_dtypes(dev):
    with pytest.raises(ValueError, match="relu_backward"):
        ck.relu_backward(dev.put(np.ones(3, np.float32)), dev.put(np.ones(4, np.float32)))
    with pytest.raises(ValueError, match="approximate"):
        ck.gelu(dev.put(np.ones(3, np.float32)), "erf")
    x16 = np.array([-1.0, 2.0], dtype=np.float16)  # no kernel: the reference computes it
    close(dev.get(ck.relu(dev.put(x16))), ref.relu(x16))


# ======================================================================================
# Softmax family
# ======================================================================================


@pytest.fixture(params=["warp", "block"])
def row_team(request, monkeypatch):
    """Run the row kernels with one warp per row, or (by lowering the threshold) one block of
    64 threads per row, so that emulated rows can be longer than a block."""
    if request.param == "block":
        monkeypatch.setattr(ck, "_WARP_ROW_MAX", 0)
        monkeypatch.setattr(ck, "_ROW_BLOCK", 64)
    return request.param


def _logits(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((6, 7), 1), ((6, 1), 1), ((1, 200), 1), ((5, 9), 0), ((3, 4, 5), 1)])
def test_softmax_forward_backward(dev, rng, row_team, dtype, shape, axis):
    x = _logits(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    for fwd, bwd in (("softmax", "softmax_backward"), ("log_softmax", "log_softmax_backward")):
        y = getattr(ck, fwd)(dev.put(x), axis)
        y_ref = getattr(ref, fwd)(x, axis)
        close(dev.get(y), y_ref)
        dx = getattr(ck, bwd)(dev.put(g), dev.put(y_ref), axis)
        close(dev.get(dx), getattr(ref, bwd)(g, y_ref, axis))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's inf - inf
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_edge_rows(dev, rng, row_team, dtype):
    """Huge logits do not overflow; a NaN makes its row NaN; an all -inf row is NaN; a +inf
    logit makes its row NaN (inf - inf), as in the reference."""
    x = _logits(rng, (6, 70), dtype, scale=1e4 if dtype == np.float32 else 1e200)
    x[1, 5] = np.nan
    x[2, :] = -np.inf
    x[3, 7] = np.inf
    x[4, :10] = -np.inf
    for name in ("softmax", "log_softmax"):
        got = dev.get(getattr(ck, name)(dev.put(x), 1))
        want = getattr(ref, name)(x, 1)
        close(got, want)
        assert np.isnan(got[1]).all() and np.isnan(got[2]).all() and np.isnan(got[3]).all()
        assert np.isfinite(got[[0, 5]]).all()


def test_softmax_long_rows_default_threshold(dev, rng):
    """Rows longer than _WARP_ROW_MAX take the block-per-row kernel (256 threads: longer than
    a block too)."""
    x = _logits(rng, (3, ck._WARP_ROW_MAX + 300), np.float64)
    close(dev.get(ck.softmax(dev.put(x), 1)), ref.softmax(x, 1))
    close(dev.get(ck.logsumexp(dev.put(x), (1,))), ref.logsumexp(x, (1,)))


def test_softmax_noncontiguous_and_empty(dev, rng):
    x = _logits(rng, (5, 11), np.float32)
    close(dev.get(ck.softmax(noncontiguous(dev, x), 1)), ref.softmax(x, 1))
    close(dev.get(ck.log_softmax(noncontiguous(dev, x), 0)), ref.log_softmax(x, 0))
    assert ck.softmax(dev.put(np.zeros((0, 4), np.float32)), 1).shape == (0, 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axes", [((4, 9), (1,)), ((4, 9), (0,)), ((3, 4, 5), (0, 2)), ((3, 4, 5), ()),
                                        ((2, 3), (0, 1)), ((3, 0), (1,)), ((3, 0), (0,))])
def test_logsumexp(dev, rng, row_team, dtype, shape, axes):
    x = _logits(rng, shape, dtype)
    close(dev.get(ck.logsumexp(dev.put(x), axes)), ref.logsumexp(x, axes))


def test_logsumexp_infinities(dev, row_team):
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [np.nan, 1.0], [1e30, 1e30]], dtype=np.float32)
    got = dev.get(ck.logsumexp(dev.put(x), (1,)))
    close(got, ref.logsumexp(x, (1,)))
    assert got[0, 0] == -np.inf and got[1, 0] == np.inf and np.isnan(got[2, 0])


def _ce_case(rng, n, c, dtype, weighted):
    x = _logits(rng, (n, c), dtype)
    target = rng.integers(0, c, n).astype(np.int64)
    target[::4] = -100  # ignored rows
    weight = rng.uniform(0.5, 2.0, c).astype(dtype) if weighted else None
    return x, target, weight


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [1, 5, 40, 300])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(dev, rng, row_team, dtype, c, weighted, smoothing):
    x, target, weight = _ce_case(rng, 9, c, dtype, weighted)
    w = None if weight is None else dev.put(weight)
    losses, lse = ck.cross_entropy_forward(dev.put(x), dev.put(target), w, -100, smoothing)
    losses_ref, lse_ref = ref.cross_entropy_forward(x, target, weight, -100, smoothing)
    close(dev.get(losses), losses_ref)
    close(dev.get(lse), lse_ref)
    assert (dev.get(losses)[::4] == 0).all()
    grow = rng.uniform(0.1, 1.0, 9).astype(dtype)
    dx = ck.cross_entropy_backward(dev.put(x), dev.put(target), dev.put(lse_ref), dev.put(grow), w, -100, smoothing)
    close(dev.get(dx), ref.cross_entropy_backward(x, target, lse_ref, grow, weight, -100, smoothing))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_edge_rows(dev, rng, dtype):
    """Huge logits stay exact; a NaN logit makes its row NaN; a label outside [0, C) that is
    not ignore_index gives NaN for its row (and nothing is read out of bounds)."""
    x, target, _ = _ce_case(rng, 6, 33, dtype, False)
    x *= 1e4 if dtype == np.float32 else 1e200
    x[1, 3] = np.nan
    target[2], target[3] = 33, -5
    losses, lse = ck.cross_entropy_forward(dev.put(x), dev.put(target), None, -100, 0.0)
    losses_ref, lse_ref = ref.cross_entropy_forward(x, target, None, -100, 0.0)
    close(dev.get(losses), losses_ref)
    close(dev.get(lse), lse_ref)
    assert np.isnan(dev.get(losses)[[1, 2, 3]]).all() and np.isfinite(dev.get(losses)[[4, 5]]).all()
    grow = np.ones(6, dtype)
    dx = ck.cross_entropy_backward(dev.put(x), dev.put(target), lse, dev.put(grow), None, -100, 0.0)
    close(dev.get(dx), ref.cross_entropy_backward(x, target, lse_ref, grow, None, -100, 0.0))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_keeps_low_digits_of_big_logits(dev, row_team, smoothing):
    """Equal logits of 500: each loss is log 3 (with smoothing too) to float32 precision, which
    x_t - lse (lse = 501.0986 on a grid of 3e-5) would miss by 1e-5."""
    x = np.full((2, 3), 500.0, dtype=np.float32)
    losses, _ = ck.cross_entropy_forward(dev.put(x), dev.put(np.array([2, 0])), None, -100, smoothing)
    np.testing.assert_allclose(dev.get(losses), [np.log(3)] * 2, rtol=1e-6)


def test_cross_entropy_errors(dev):
    x = dev.put(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="cross_entropy_forward"):
        ck.cross_entropy_forward(x, dev.put(np.zeros(2, np.int64)), None, -100, 0.0)
    with pytest.raises(ValueError, match="cross_entropy_backward"):
        ck.cross_entropy_backward(x, dev.put(np.zeros(3, np.int64)), dev.put(np.zeros(2, np.float32)),
                                  dev.put(np.zeros(3, np.float32)), None, -100, 0.0)


# ======================================================================================
# Normalization
# ======================================================================================


@pytest.fixture(params=["one_chunk", "many_chunks"])
def chunks(request, monkeypatch):
    """Per-channel sums in one chunk, or (by shrinking the chunks) in several partials merged
    in order by the finalize kernel."""
    if request.param == "many_chunks":
        monkeypatch.setattr(ck, "_MIN_CHUNK_PLANES", 7)
        monkeypatch.setattr(ck, "_MIN_CHUNK_ROWS", 2)
        monkeypatch.setattr(ck, "_MAX_PARTS", 5)
    return request.param


BN_LAYOUTS = ["2d", "nchw", "channels_last", "hw1"]


def _bn_input(dev, rng, layout, dtype):
    shape = {"2d": (13, 5), "nchw": (3, 4, 5, 6), "channels_last": (3, 4, 5, 6), "hw1": (6, 3, 1, 1)}[layout]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    return x, (channels_last_view(dev, x) if layout == "channels_last" else dev.put(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", BN_LAYOUTS)
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_training(dev, rng, chunks, dtype, layout, affine):
    x, xd = _bn_input(dev, rng, layout, dtype)
    c = x.shape[1]
    w = rng.uniform(0.5, 1.5, c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    put = (lambda a: None if a is None else dev.put(a))
    y, mean, invstd = ck.batch_norm_forward(xd, put(w), put(b), 1e-5)
    y_ref, mean_ref, invstd_ref = ref.batch_norm_forward(x, w, b, 1e-5)
    close(dev.get(y), y_ref, rtol=1e-4 if dtype == np.float32 else None)
    close(dev.get(mean), mean_ref)
    close(dev.get(invstd), invstd_ref, rtol=1e-4 if dtype == np.float32 else None)
    if layout == "channels_last":
        assert ck.is_channels_last(y) and not y.flags.c_contiguous
    g = rng.standard_normal(x.shape).astype(dtype)
    got = ck.batch_norm_backward(dev.put(g), xd, put(w), dev.put(mean_ref), dev.put(invstd_ref), True)
    want = ref.batch_norm_backward(g, x, w, mean_ref, invstd_ref, True)
    for a, e in zip(got, want):
        close(dev.get(a), e, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5 if dtype == np.float32 else 1e-12)
    again = ck.batch_norm_backward(dev.put(g), xd, put(w), dev.put(mean_ref), dev.put(invstd_ref), True)
    for a, e in zip(got, again):  # deterministic: the same bits every run
        np.testing.assert_array_equal(dev.get(a), dev.get(e))


@pytest.mark.parametrize("layout", BN_LAYOUTS)
def test_batch_norm_eval(dev, rng, layout):
    x, xd = _bn_input(dev, rng, layout, np.float32)
    c = x.shape[1]
    mean, var = rng.standard_normal(c), rng.uniform(0.5, 2, c)  # running stats in float64
    w = rng.uniform(0.5, 1.5, c).astype(np.float32)
    y, m, invstd = ck.batch_norm_forward(xd, dev.put(w), None, 1e-5, dev.put(mean), dev.put(var))
    y_ref, m_ref, invstd_ref = ref.batch_norm_forward(x, w, None, 1e-5, mean, var)
    close(dev.get(y), y_ref, rtol=1e-4)
    assert m.dtype == np.float32 and invstd.dtype == np.float32
    g = rng.standard_normal(x.shape).astype(np.float32)
    got = ck.batch_norm_backward(dev.put(g), xd, dev.put(w), m, invstd, False)
    for a, e in zip(got, ref.batch_norm_backward(g, x, w, m_ref, invstd_ref, False)):
        close(dev.get(a), e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 33), (3, 1), (1, 5), (4, 300)])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm(dev, rng, row_team, chunks, dtype, shape, affine):
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    n = shape[1]
    w = rng.uniform(0.5, 1.5, n).astype(dtype) if affine else None
    b = rng.standard_normal(n).astype(dtype) if affine else None
    put = (lambda a: None if a is None else dev.put(a))
    y, mean, rstd = ck.layer_norm_forward(dev.put(x), put(w), put(b), 1e-5)
    y_ref, mean_ref, rstd_ref = ref.layer_norm_forward(x, w, b, 1e-5)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else {}
    for a, e in zip((y, mean, rstd), (y_ref, mean_ref, rstd_ref)):
        close(dev.get(a), e, **tol)
    g = rng.standard_normal(shape).astype(dtype)
    got = ck.layer_norm_backward(dev.put(g), dev.put(x), put(w), dev.put(mean_ref), dev.put(rstd_ref))
    want = ref.layer_norm_backward(g, x, w, mean_ref, rstd_ref)
    for a, e in zip(got, want):
        close(dev.get(a), e, **(tol or dict(rtol=1e-10, atol=1e-12)))


def test_norm_errors(dev):
    x = dev.put(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="batch_norm_backward"):
        ck.batch_norm_backward(dev.put(np.zeros((4, 2), np.float32)), x, None,
                               dev.put(np.zeros(3, np.float32)), dev.put(np.ones(3, np.float32)), True)
    with pytest.raises(ValueError, match="layer_norm_backward"):
        ck.layer_norm_backward(dev.put(np.zeros((4, 2), np.float32)), x, None,
                               dev.put(np.zeros(4, np.float32)), dev.put(np.ones(4, np.float32)))


# ======================================================================================
# Convolution columns and pooling
# ======================================================================================


def _out(size, k, s, p, d, ceil=False):
    """Output length of a window op (PyTorch's rule, ceil mode included)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    return out


CONV_GEOMETRIES = [  # kernel, stride, padding, dilation
    ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 2), (2, 1), (1, 0), (1, 2)),
    ((1, 1), (1, 1), (0, 0), (1, 1)),
    ((2, 3), (3, 2), (2, 1), (2, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES)
@pytest.mark.parametrize("ones_column", [False, True])
def test_im2col_col2im(dev, rng, dtype, geometry, ones_column):
    kernel, stride, padding, dilation = geometry
    x = rng.standard_normal((2, 7, 6, 3)).astype(dtype)  # (N, H, W, C)
    out = tuple(_out(s, k, st, p, d) for s, k, st, p, d in zip(x.shape[1:3], kernel, stride, padding, dilation))
    cols = ck.im2col(dev.put(x), kernel, stride, padding, dilation, out, ones_column)
    np.testing.assert_array_equal(dev.get(cols), ref.im2col(x, kernel, stride, padding, dilation, out, ones_column))
    g = rng.standard_normal((2 * out[0] * out[1], kernel[0] * kernel[1] * 3)).astype(dtype)
    dx = ck.col2im(dev.put(g), x.shape, kernel, stride, padding, dilation, out)
    close(dev.get(dx), ref.col2im(g, x.shape, kernel, stride, padding, dilation, out))
    np.testing.assert_array_equal(dev.get(dx), dev.get(ck.col2im(dev.put(g), x.shape, kernel, stride, padding,
                                                                  dilation, out)))  # deterministic


def test_im2col_noncontiguous_and_errors(dev, rng):
    x = rng.standard_normal((3, 5, 4, 2)).astype(np.float32)
    geometry = ((3, 3), (1, 1), (1, 1), (1, 1), (5, 4))
    np.testing.assert_array_equal(dev.get(ck.im2col(noncontiguous(dev, x), *geometry)), ref.im2col(x, *geometry))
    with pytest.raises(ValueError, match="col2im"):
        ck.col2im(dev.put(np.zeros((7, 18), np.float32)), x.shape, *geometry)


POOL_GEOMETRIES = [  # kernel, stride, padding, dilation, ceil mode
    ((2, 2), (2, 2), (0, 0), (1, 1), False),
    ((3, 2), (2, 2), (1, 1), (1, 2), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), True),
    ((2, 3), (1, 2), (0, 1), (2, 1), True),
]


def _pool_case(rng, geometry, dtype, ties=False):
    kernel, stride, padding, dilation, ceil = geometry
    if ties:
        x = rng.integers(0, 3, (2, 3, 7, 9)).astype(dtype)
        x[0, 1, 2, 3] = x[1, 2, 4, 4] = np.nan
    else:
        x = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    out = tuple(_out(s, k, st, p, d, ceil) for s, k, st, p, d in zip(x.shape[2:], kernel, stride, padding, dilation))
    return x, out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("ties", [False, True])
def test_maxpool(dev, rng, dtype, geometry, layout, ties):
    x, out_size = _pool_case(rng, geometry, dtype, ties)
    kernel, stride, padding, dilation, _ = geometry
    xd = channels_last_view(dev, x) if layout == "channels_last" else dev.put(x)
    out, arg = ck.maxpool2d_forward(xd, kernel, stride, padding, dilation, out_size)
    out_ref, arg_ref = ref.maxpool2d_forward(x, kernel, stride, padding, dilation, out_size)
    np.testing.assert_array_equal(dev.get(out), out_ref)
    np.testing.assert_array_equal(dev.get(arg), arg_ref)
    assert arg.dtype == np.int32
    if layout == "channels_last":
        assert ck.is_channels_last(out) and ck.is_channels_last(arg)
    g = rng.standard_normal(out_ref.shape).astype(dtype)
    gd = channels_last_view(dev, g) if layout == "channels_last" else dev.put(g)
    dx = ck.maxpool2d_backward(gd, arg, x.shape, kernel, stride, padding, dilation)
    close(dev.get(dx), ref.maxpool2d_backward(g, arg_ref, x.shape, kernel, stride, padding, dilation))
    if layout == "channels_last":  # dx in the forward input's layout
        assert ck.is_channels_last(dx) and not dx.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avgpool(dev, rng, dtype, geometry, layout, count_include_pad):
    kernel, stride, padding, _, ceil = geometry
    x, out_size = _pool_case(rng, (kernel, stride, padding, (1, 1), ceil), dtype)
    xd = channels_last_view(dev, x) if layout == "channels_last" else dev.put(x)
    out = ck.avgpool2d_forward(xd, kernel, stride, padding, out_size, count_include_pad)
    close(dev.get(out), ref.avgpool2d_forward(x, kernel, stride, padding, out_size, count_include_pad))
    g = rng.standard_normal((2, 3) + out_size).astype(dtype)
    gd = channels_last_view(dev, g) if layout == "channels_last" else dev.put(g)
    dx = ck.avgpool2d_backward(gd, x.shape, kernel, stride, padding, out_size, count_include_pad)
    close(dev.get(dx), ref.avgpool2d_backward(g, x.shape, kernel, stride, padding, out_size, count_include_pad))


def test_pool_errors(dev):
    g = dev.put(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="maxpool2d_backward"):
        ck.maxpool2d_backward(g, dev.put(np.zeros((2, 3, 4, 5), np.int32)), (2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="avgpool2d_backward"):
        ck.avgpool2d_backward(g, (2, 4, 8, 8), (2, 2), (2, 2), (0, 0), (4, 4), True)


# ======================================================================================
# Dropout, embedding
# ======================================================================================


def test_philox_known_answers():
    """The generator both sides implement is Philox4x32-10: the known-answer vectors published
    with Random123 (Salmon et al. 2011)."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for counter, key, want in cases:
        words = ref._philox4x32(tuple(np.array([c], dtype=np.uint64) for c in counter), key)
        assert tuple(int(w[0]) for w in words) == want


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,p,seed,offset", [
    ((1,), 0.5, 0, 0),
    ((7, 5), 0.3, 42, 3),
    ((1031,), 0.9, 2 ** 40 + 7, 2 ** 33 + 5),
    ((4, 4), 0.0, 1, 0),
    ((6,), 1.0, 1, 0),
    ((3, 5, 7), 0.5, 2 ** 64 - 1, 2 ** 64 - 2),  # the counter wraps around
])
def test_dropout_mask_bit_identical(dev, dtype, shape, p, seed, offset):
    like = dev.put(np.zeros(1, dtype))
    got = ck.dropout_mask(shape, p, seed, offset, dtype, like=like)
    assert got.shape == shape and got.dtype == dtype and type(got) is type(like)
    want = ref.dropout_mask(shape, p, seed, offset, dtype)
    np.testing.assert_array_equal(dev.get(got), want)
    if 0 < p < 1 and math.prod(shape) > 100:
        kept = (want != 0).mean()
        assert abs(kept - (1 - p)) < 0.05


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,d,e", [(1, 1, 1), (50, 7, 11), (1000, 3, 6), (0, 4, 3)])
def test_embedding_backward_in_index_order(dev, rng, dtype, m, d, e):
    """Repeated indices accumulate in index order: the same bits as reference's np.add.at,
    which adds row after row; rows never picked are 0."""
    g = rng.standard_normal((m, d)).astype(dtype)
    indices = rng.integers(0, max(e - 1, 1), m).astype(np.int64)  # the last row stays unused
    got = ck.embedding_backward(dev.put(g), dev.put(indices), e)
    np.testing.assert_array_equal(dev.get(got), ref.embedding_backward(g, indices, e))


def test_embedding_backward_errors(dev):
    g = dev.put(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="embedding_backward"):
        ck.embedding_backward(g, dev.put(np.zeros(2, np.int64)), 4)
    if dev.xp is np:  # the range check reads values: free on the CPU, debug-only on a GPU
        with pytest.raises(ValueError, match="embedding_backward"):
            ck.embedding_backward(g, np.array([0, 4, 1]), 4)


# ======================================================================================
# Matrix products: the own GEMM ladder
# ======================================================================================


@pytest.fixture(params=ck.GEMM_VARIANTS)
def own_gemm(request):
    ck.set_matmul("own", request.param)
    yield request.param
    ck.set_matmul("cublas")


def _mat(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _gemm_close(got, a, b, bias=None):
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    if bias is not None:
        want = want + bias
    rtol = 1e-5 if got.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.sqrt(a.shape[-1]) * 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mkn", [(1, 1, 1), (33, 65, 17), (200, 1, 150), (64, 40, 132), (130, 9, 257)])
def test_gemm_shapes(dev, rng, own_gemm, dtype, mkn):
    m, k, n = mkn
    a, b = _mat(rng, (m, k), dtype), _mat(rng, (k, n), dtype)
    got = ck.matmul(dev.put(a), dev.put(b))
    assert got.shape == (m, n) and got.dtype == dtype
    _gemm_close(dev.get(got), a, b)


def test_gemm_tall_outer_product(dev, rng, own_gemm):
    """1000 x 1 x 1000: K = 1, a million outputs (many edge-free tiles)."""
    a, b = _mat(rng, (1000, 1), np.float32), _mat(rng, (1, 1000), np.float32)
    _gemm_close(dev.get(ck.matmul(dev.put(a), dev.put(b))), a, b)


@pytest.mark.parametrize("trans", ["a", "b", "ab"])
def test_gemm_transposed_operands(dev, rng, own_gemm, trans):
    m, k, n = 37, 24, 29
    a, b = _mat(rng, (m, k), np.float32), _mat(rng, (k, n), np.float32)
    ad = dev.put(np.ascontiguousarray(a.T)).T if "a" in trans else dev.put(a)
    bd = dev.put(np.ascontiguousarray(b.T)).T if "b" in trans else dev.put(b)
    _gemm_close(dev.get(ck.matmul(ad, bd)), a, b)


def test_gemm_batched_broadcast(dev, rng, own_gemm):
    a, b = _mat(rng, (2, 1, 5, 7), np.float64), _mat(rng, (3, 7, 4), np.float64)
    got = ck.matmul(dev.put(a), dev.put(b))
    assert got.shape == (2, 3, 5, 4)
    _gemm_close(dev.get(got), a, b)
    a, b = _mat(rng, (4, 9, 8), np.float32), _mat(rng, (8, 6), np.float32)  # b: batch stride 0
    _gemm_close(dev.get(ck.matmul(dev.put(a), dev.put(b))), a, b)
    a, b = _mat(rng, (2, 3, 2, 2, 3, 4), np.float32), _mat(rng, (3, 1, 2, 4, 5), np.float32)
    _gemm_close(dev.get(ck.matmul(dev.put(a), dev.put(b))), a, b)


def test_gemm_misaligned_and_strided(dev, rng, own_gemm):
    a, b = _mat(rng, (20, 16), np.float32), _mat(rng, (16, 12), np.float32)
    base = dev.put(np.concatenate([[1.0], a.reshape(-1)]).astype(np.float32))
    a_shifted = base[1:].reshape(20, 16)  # not 16-byte aligned: scalar loads
    b_strided = dev.put(np.repeat(b, 2, axis=1))[:, ::2]  # no unit stride: copied first
    _gemm_close(dev.get(ck.matmul(a_shifted, b_strided)), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_fused_bias(dev, rng, own_gemm, dtype, with_bias):
    x, w = _mat(rng, (19, 33), dtype), _mat(rng, (10, 33), dtype)
    bias = _mat(rng, (10,), dtype) if with_bias else None
    got = ck.linear(dev.put(x), dev.put(w), None if bias is None else dev.put(bias))
    _gemm_close(dev.get(got), x, w.T, bias)


def test_gemm_empty_and_errors(dev, rng, own_gemm):
    assert ck.matmul(dev.put(np.zeros((0, 3), np.float32)), dev.put(np.zeros((3, 4), np.float32))).shape == (0, 4)
    got = ck.matmul(dev.put(np.zeros((2, 0), np.float32)), dev.put(np.zeros((0, 3), np.float32)))
    np.testing.assert_array_equal(dev.get(got), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="matmul"):
        ck.matmul(dev.put(np.zeros((2, 3), np.float32)), dev.put(np.zeros((4, 3), np.float32)))
    with pytest.raises(ValueError, match="linear"):
        ck.linear(dev.put(np.zeros((2, 3), np.float32)), dev.put(np.zeros((4, 3), np.float32)),
                  dev.put(np.zeros(5, np.float32)))


def test_set_matmul():
    try:
        ck.set_matmul("own", "tiled")
        assert ck.get_matmul() == ("own", "tiled")
        with pytest.raises(ValueError, match="set_matmul"):
            ck.set_matmul("mine")
        with pytest.raises(ValueError, match="set_matmul"):
            ck.set_matmul("own", "fast")
        assert ck.get_matmul() == ("own", "tiled")  # a refused call changes nothing
    finally:
        ck.set_matmul("cublas")
    assert ck.get_matmul() == ("cublas", "regblock")


# ======================================================================================
# Optimizer updates: one multi-tensor launch per call
# ======================================================================================

SIZES = [(1,), (3,), (17,), (8, 8), (1000,), (5, 1, 3), ()]


@pytest.fixture
def count_launches(monkeypatch):
    """Small chunks (several blocks per tensor) and a record of every optimizer launch."""
    monkeypatch.setattr(ck, "_OPTIM_CHUNK", 64)
    launches = []
    real = ck._launch

    def spy(xp, family, kernel, *rest):
        if family == "optim":
            launches.append(kernel)
        return real(xp, family, kernel, *rest)

    monkeypatch.setattr(ck, "_launch", spy)
    return launches


def _tensors(rng, dtype, scale=1.0):
    return [np.array(rng.standard_normal(s) * scale, dtype=dtype) for s in SIZES]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,nesterov,wd", [(0.0, 0.0, False, 0.0), (0.9, 0.0, False, 1e-2),
                                                           (0.9, 0.1, False, 0.0), (0.8, 0.0, True, 5e-3)])
def test_sgd_step(dev, rng, count_launches, dtype, momentum, dampening, nesterov, wd):
    params, grads = _tensors(rng, dtype), _tensors(rng, dtype)
    bufs = _tensors(rng, dtype) if momentum else None
    mine = [dev.put(p.copy()) for p in params]
    my_bufs = None if bufs is None else [dev.put(b.copy()) for b in bufs]
    for first in (True, False):
        ck.sgd_step_(mine, [dev.put(g) for g in grads], my_bufs, 0.1, wd, momentum, dampening, nesterov, first)
        ref.sgd_step_(params, grads, bufs, 0.1, wd, momentum, dampening, nesterov, first)
    for a, e in zip(mine, params):
        close(dev.get(a), e)
    for a, e in zip(my_bufs or [], bufs or []):
        close(dev.get(a), e)
    assert count_launches == ["sgd_step", "sgd_step"]  # one launch per call for all tensors


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,amsgrad,wd", [(False, False, 0.0), (False, True, 1e-2), (True, False, 1e-2),
                                                  (True, True, 0.0)])
def test_adam_step(dev, rng, count_launches, dtype, decoupled, amsgrad, wd):
    params = _tensors(rng, dtype)
    m, v = _tensors(rng, dtype, 0.1), [np.array(abs(a), dtype=dtype) for a in _tensors(rng, dtype, 0.1)]
    vmax = [np.array(a * 1.5, dtype=dtype) for a in v] if amsgrad else None
    state = [params, m, v] + ([vmax] if amsgrad else [])
    mine = [[dev.put(a.copy()) for a in lst] for lst in state]
    for step in (1, 2, 3):
        grads = _tensors(rng, dtype)
        ck.adam_step_(mine[0], [dev.put(g) for g in grads], mine[1], mine[2], mine[3] if amsgrad else None,
                      1e-2, 0.9, 0.999, 1e-8, step, wd, decoupled)
        ref.adam_step_(params, grads, m, v, vmax, 1e-2, 0.9, 0.999, 1e-8, step, wd, decoupled)
    for got_list, want_list in zip(mine, state):
        for a, e in zip(got_list, want_list):
            close(dev.get(a), e, rtol=1e-4 if dtype == np.float32 else 1e-10)
    assert count_launches == ["adam_step"] * 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lr_decay,wd", [(0.0, 0.0), (0.1, 1e-2)])
def test_adagrad_step(dev, rng, count_launches, dtype, lr_decay, wd):
    params, sums = _tensors(rng, dtype), [np.array(abs(a) + 0.1, dtype=dtype) for a in _tensors(rng, dtype)]
    mine = [[dev.put(a.copy()) for a in lst] for lst in (params, sums)]
    for step in (1, 2, 3):
        grads = _tensors(rng, dtype)
        ck.adagrad_step_(mine[0], [dev.put(g) for g in grads], mine[1], 0.1, lr_decay, wd, 1e-10, step)
        ref.adagrad_step_(params, grads, sums, 0.1, lr_decay, wd, 1e-10, step)
    for got_list, want_list in zip(mine, (params, sums)):
        for a, e in zip(got_list, want_list):
            close(dev.get(a), e, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert count_launches == ["adagrad_step"] * 3  # one launch per call for all tensors


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rho,wd", [(0.9, 0.0), (0.5, 1e-2)])
def test_adadelta_step(dev, rng, count_launches, dtype, rho, wd):
    params = _tensors(rng, dtype)
    v, u = ([np.array(abs(a), dtype=dtype) for a in _tensors(rng, dtype, 0.1)] for _ in range(2))
    mine = [[dev.put(a.copy()) for a in lst] for lst in (params, v, u)]
    for _ in range(3):
        grads = _tensors(rng, dtype)
        ck.adadelta_step_(mine[0], [dev.put(g) for g in grads], mine[1], mine[2], 1.0, rho, 1e-6, wd)
        ref.adadelta_step_(params, grads, v, u, 1.0, rho, 1e-6, wd)
    for got_list, want_list in zip(mine, (params, v, u)):
        for a, e in zip(got_list, want_list):
            close(dev.get(a), e, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert count_launches == ["adadelta_step"] * 3


def test_optimizer_mixed_groups(dev, rng, count_launches):
    """float32 and float64 tensors in one call: one launch per dtype; a non-contiguous
    parameter is updated by the reference (in place, correctly)."""
    params = [rng.standard_normal(5).astype(np.float32), rng.standard_normal(4).astype(np.float64),
              rng.standard_normal((4, 6)).astype(np.float32)]
    grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
    mine = [dev.put(p.copy()) for p in params[:2]]
    holder = dev.put(params[2].copy())
    mine.append(holder[:, ::2])  # a strided view: updated through the reference
    want = [p.copy() for p in params[:2]] + [params[2][:, ::2].copy()]
    ck.sgd_step_(mine, [dev.put(g) for g in grads[:2]] + [dev.put(grads[2][:, ::2].copy())], None,
                 0.5, 0.0, 0.0, 0.0, False, True)
    ref.sgd_step_(want, grads[:2] + [grads[2][:, ::2].copy()], None, 0.5, 0.0, 0.0, 0.0, False, True)
    for a, e in zip(mine, want):
        close(dev.get(a), e)
    np.testing.assert_array_equal(dev.get(holder)[:, 1::2], params[2][:, 1::2])  # untouched
    assert sorted(count_launches) == ["sgd_step", "sgd_step"]


def test_pointer_table_is_a_kernel_argument(dev, rng):
    """The optimizer kernels' table of tensors travels with the launch (optim.cu's TensorTable,
    passed by value), so a step never uploads it: one row per tensor, its addresses (0 for an
    unused pointer), size and first block."""
    params = [dev.put(p) for p in _tensors(rng, np.float32)]
    grads = [dev.put(g) for g in _tensors(rng, np.float32)]
    rows = [(p, g, None, p.size) for p, g in zip(params, grads)]
    table, blocks = ck._pointer_table(rows, 5)
    assert isinstance(table, np.void) and table.dtype.itemsize == 8 * ck._TABLE_WORDS
    words = table["words"][:5 * len(rows)].reshape(len(rows), 5)
    assert words[:, 0].tolist() == [ck._address(p) for p in params]
    assert words[:, 1].tolist() == [ck._address(g) for g in grads] and not words[:, 2].any()
    assert words[:, 3].tolist() == [p.size for p in params]
    sizes = [-(-p.size // ck._OPTIM_CHUNK) for p in params]
    assert words[:, 4].tolist() == np.cumsum([0] + sizes[:-1]).tolist() and blocks == sum(sizes)


def test_optimizer_errors(dev):
    p = [dev.put(np.zeros(3, np.float32))]
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        ck.sgd_step_(p, [dev.put(np.zeros(4, np.float32))], None, 0.1, 0.0, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="adam_step_"):
        ck.adam_step_(p, [dev.put(np.zeros(3, np.float64))], [p[0]], [p[0]], None, 0.1, 0.9, 0.99, 1e-8, 1, 0.0, False)


# ======================================================================================
# The launch helper
# ======================================================================================


def test_failed_launch_names_the_kernel(dev):
    x = dev.put(np.zeros(8, np.float32))
    with pytest.raises(RuntimeError, match="relu_f32"):
        ck._launch(dev.xp, "elementwise", "relu", np.float32, (1,), (4096,), (x, x, np.int64(8)))


def test_sync_mode_runs_and_checks(dev, rng, monkeypatch):
    """MINIGRAD_CUDA_SYNC=1 synchronizes after every launch; results are unchanged."""
    monkeypatch.setenv("MINIGRAD_CUDA_SYNC", "1")
    x = rng.standard_normal(100).astype(np.float32)
    close(dev.get(ck.sigmoid(dev.put(x))), ref.sigmoid(x))


def test_same_names_as_reference():
    assert ck.__all__ == ref.__all__
    for name in ref.__all__:
        assert callable(getattr(ck, name))
