"""F.interpolate and nn.Upsample: nearest, nearest-exact and (bi/tri)linear with
align_corners both ways, against a per-pixel loop of PyTorch's formulas and against PyTorch
itself; first and second derivatives against finite differences; errors."""
import itertools
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F


def _source(j, n, m, mode, align_corners, scale_factor, ndim):
    """PyTorch's source coordinate of output j along an axis of input length n, output m."""
    if mode in ("nearest", "nearest-exact"):
        scale = np.float32(1.0 / scale_factor) if scale_factor else np.float32(n) / np.float32(m)
        if mode == "nearest":
            if ndim == 4 and m in (n, 2 * n):  # PyTorch's 2-D kernel copies or halves the index here
                return j if m == n else j // 2
            return min(int(math.floor(np.float32(j) * scale)), n - 1)
        return min(int(math.floor((j + 0.5) * float(scale))), n - 1)
    if m == n:  # PyTorch's linear modes copy an axis whose length stays
        return float(j)
    if align_corners:
        return j * (n - 1) / (m - 1) if m > 1 else 0.0
    scale = 1.0 / scale_factor if scale_factor else n / m
    return max((j + 0.5) * scale - 0.5, 0.0)


def loop_interpolate(a, sizes, mode, align_corners=False, scale_factors=None):
    """One output pixel at a time: nearest reads one input pixel, linear modes weigh the 2^k
    corners around the source point by the products of (1 - l) and l."""
    n_spatial = a.ndim - 2
    scale_factors = scale_factors or (None,) * n_spatial
    out = np.zeros(a.shape[:2] + tuple(sizes))
    for pos in itertools.product(*(range(m) for m in sizes)):
        srcs = [_source(j, n, m, mode, align_corners, sf, a.ndim)
                for j, n, m, sf in zip(pos, a.shape[2:], sizes, scale_factors)]
        if mode.startswith("nearest"):
            out[(Ellipsis,) + pos] = a[(Ellipsis,) + tuple(srcs)]
            continue
        total = 0.0
        for corner in itertools.product((0, 1), repeat=n_spatial):
            index, weight = [], 1.0
            for c, s, n in zip(corner, srcs, a.shape[2:]):
                i0 = min(int(math.floor(s)), n - 1)
                lam = s - i0
                index.append(min(i0 + c, n - 1))
                weight *= lam if c else 1 - lam
            total = total + weight * a[(Ellipsis,) + tuple(index)]
        out[(Ellipsis,) + pos] = total
    return out


CASES = [  # (mode, input shape, size, scale_factor, align_corners)
    ("nearest", (1, 2, 5), (9,), None, None),
    ("nearest", (2, 1, 3, 4), (6, 8), None, None),        # m = 2n
    ("nearest", (1, 1, 7, 5), (3, 4), None, None),        # down
    ("nearest", (1, 2, 3, 4), None, (1.7, 2.5), None),    # scale factors: 1 / scale_factor
    ("nearest", (1, 1, 2, 3, 2), (3, 5, 4), None, None),
    ("nearest-exact", (1, 2, 5, 3), (7, 2), None, None),
    ("linear", (2, 2, 4), (7,), None, False),
    ("linear", (1, 1, 4), (7,), None, True),
    ("linear", (1, 1, 6), (2,), None, False),
    ("bilinear", (2, 3, 4, 5), (7, 3), None, False),
    ("bilinear", (1, 2, 4, 5), (7, 3), None, True),
    ("bilinear", (1, 1, 3, 3), None, 2.0, False),
    ("bilinear", (1, 1, 3, 4), (1, 1), None, True),       # a single output pixel
    ("bilinear", (1, 1, 5, 3), None, (0.7, 1.3), False),  # the width keeps its length: copied
    ("trilinear", (1, 1, 2, 3, 3), (3, 4, 2), None, False),
    ("trilinear", (1, 1, 2, 3, 3), (3, 4, 2), None, True),
]


def _case_args(size, scale, align):
    kw = {"size": size} if size is not None else {"scale_factor": scale}
    if align is not None:
        kw["align_corners"] = align
    return kw


def _sizes(shape, size, scale):
    if size is not None:
        return size
    scales = scale if isinstance(scale, tuple) else (scale,) * (len(shape) - 2)
    return tuple(int(math.floor(n * s)) for n, s in zip(shape[2:], scales))


@pytest.mark.parametrize("mode, shape, size, scale, align", CASES)
def test_interpolate_matches_the_formulas(mode, shape, size, scale, align, device):
    a = np.random.default_rng(0).standard_normal(shape)
    x = mg.tensor(a, device=device)
    out = F.interpolate(x, mode=mode, **_case_args(size, scale, align))
    sizes = _sizes(shape, size, scale)
    factors = None if scale is None else (scale if isinstance(scale, tuple) else (scale,) * len(sizes))
    np.testing.assert_allclose(out.numpy(), loop_interpolate(a, sizes, mode, bool(align), factors),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode, shape, size, scale, align", [c for c in CASES if c[1][0] * np.prod(c[1]) <= 40])
def test_interpolate_gradients(mode, shape, size, scale, align):
    """Composed of gathers and products: the gathers' backward is the transposed interpolation."""
    a = np.random.default_rng(1).standard_normal(shape)
    x = mg.tensor(a, requires_grad=True)
    fn = lambda t: F.interpolate(t, mode=mode, **_case_args(size, scale, align)) ** 2  # noqa: E731
    assert mg.gradcheck(fn, x) and mg.gradgradcheck(fn, x)


def test_upsampling_by_two_spreads_each_gradient_over_its_copies():
    x = mg.tensor(np.arange(4.0).reshape(1, 1, 2, 2), requires_grad=True)
    y = nn.Upsample(scale_factor=2)(x)
    np.testing.assert_array_equal(y.numpy()[0, 0], np.kron(np.arange(4.0).reshape(2, 2), np.ones((2, 2))))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 1, 2, 2), 4.0))
    assert "scale_factor=2" in repr(nn.Upsample(scale_factor=2))
    same = F.interpolate(x, size=(2, 2), mode="bilinear")  # no axis changes: still a new tensor
    assert same is not x and not np.shares_memory(same.array, x.array)
    np.testing.assert_array_equal(same.numpy(), x.numpy())


def test_interpolate_float32_and_errors():
    x = mg.randn(1, 2, 3, 4)
    assert F.interpolate(x, size=(5, 6), mode="bilinear").dtype == np.float32
    with pytest.raises(ValueError, match="interpolate: give exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="interpolate: mode 'bicubic' is not supported"):
        F.interpolate(x, size=(5, 6), mode="bicubic")
    with pytest.raises(ValueError, match="mode 'bilinear' needs a 4-D input, got shape"):
        F.interpolate(mg.randn(1, 2, 3), size=5, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners can only be set with the linear modes"):
        F.interpolate(x, size=(5, 6), align_corners=True)
    with pytest.raises(ValueError, match=r"size must have 2 entries .* got \(5,\)"):
        F.interpolate(x, size=(5,))
    with pytest.raises(ValueError, match="expected a 3-D, 4-D or 5-D input"):
        F.interpolate(mg.randn(2, 3), size=4)
    with pytest.raises(TypeError, match="interpolate: expected a floating-point tensor"):
        F.interpolate(mg.tensor(np.ones((1, 1, 2), dtype=np.int64)), size=4)
    with pytest.raises(ValueError, match="scale_factor 0.1 makes an empty output"):
        F.interpolate(x, scale_factor=0.1)


@pytest.mark.torch
@pytest.mark.parametrize("mode, shape, size, scale, align", CASES + [
    ("nearest", (1, 1, 10), None, 1.1, None), ("nearest", (1, 1, 5), None, 2.1, None),
    ("nearest", (1, 1, 5), None, 1.1, None), ("nearest", (1, 1, 2, 5), None, (1.1, 2.1), None),
    ("nearest", (1, 1, 1, 2, 5), None, (1.0, 1.1, 2.1), None), ("linear", (1, 1, 3), None, 1.3, False),
    ("trilinear", (1, 1, 2, 3, 3), None, (1.2, 1.3, 1.5), False), ("nearest-exact", (1, 1, 3, 3), None, 1.3, None),
    ("nearest", (1, 1, 7, 3), (11, 13), None, None), ("bilinear", (1, 1, 5, 3), None, (0.7, 1.3), False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interpolate_matches_torch(mode, shape, size, scale, align, dtype):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    x, t = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    kw = _case_args(size, scale, align)
    ours, theirs = F.interpolate(x, mode=mode, **kw), torch.nn.functional.interpolate(t, mode=mode, **kw)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **tol)
    sizes = _sizes(shape, size, scale)
    if mode == "nearest" and len(shape) != 4 and scale is not None and any(
            m in (n, 2 * n) for n, m in zip(shape[2:], sizes)):
        # PyTorch's 1-D and 3-D nearest kernels read floor(j / scale_factor) forward but
        # take j (m = n) or j // 2 (m = 2n) backward: its gradient is not its forward's.  Ours
        # is (gradcheck above); docs/differences.md
        return
    g = np.random.default_rng(3).standard_normal(ours.shape).astype(dtype)
    ours.backward(mg.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **tol)
