"""conv2d: forward against a plain nested-loop reference, gradients by gradcheck, numba kernels
against the NumPy fallbacks, PyTorch parity when torch is installed, and error messages."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.backend import cpu_kernels as K
from minigrad.backend import reference as R
from minigrad.ops.conv import output_size

from .coverage import covers
from .strategies import relayout


def conv2d_reference(x, w, b, stride, padding, dilation, groups):
    """The definition, written out with loops: no im2col, no tricks."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for b_ in range(n):
        for oc in range(o):
            g = oc // og
            for p in range(oh):
                for q in range(ow):
                    s = 0.0 if b is None else b[oc]
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                r, col = p * sh - ph + i * dh, q * sw - pw + j * dw
                                if 0 <= r < h and 0 <= col < wd:
                                    s += w[oc, ci, i, j] * x[b_, g * cg + ci, r, col]
                    y[b_, oc, p, q] = s
    return y


@st.composite
def conv_cases(draw, max_side=6):
    """A random valid conv2d configuration: shapes, stride, padding, dilation, groups, layout."""
    groups = draw(st.sampled_from([1, 1, 1, 2]))
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 1))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), max_side))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), max_side))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = relayout(rng.standard_normal((n, cg * groups, h, w)), draw(st.sampled_from(["C", "F", "strided"])))
    weight = rng.standard_normal((og * groups, cg, kh, kw))
    bias = rng.standard_normal(og * groups) if draw(st.booleans()) else None
    return x, weight, bias, (sh, sw), (ph, pw), (dh, dw), groups


@given(conv_cases())
def test_conv2d_forward_matches_loops(case):
    x, w, b, stride, padding, dilation, groups = case
    y = mg.conv2d(mg.tensor(x), mg.tensor(w), None if b is None else mg.tensor(b),
                  stride, padding, dilation, groups)
    np.testing.assert_allclose(y.numpy(), conv2d_reference(x, w, b, stride, padding, dilation, groups),
                               rtol=1e-12, atol=1e-12)


@covers("Conv2d")
@given(conv_cases(max_side=5))
def test_conv2d_gradcheck(case):
    x, w, b, stride, padding, dilation, groups = case
    inputs = [mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)]
    if b is not None:
        inputs.append(mg.tensor(b, requires_grad=True))

    def f(x, w, b=None):
        return mg.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    assert mg.gradcheck(f, *inputs)


def test_conv2d_float32_and_only_weight_grad():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    wt = mg.tensor(w, requires_grad=True)
    y = mg.conv2d(mg.tensor(x), wt, padding=1)
    assert y.dtype == np.float32 and y.shape == (2, 4, 6, 5)
    np.testing.assert_allclose(y.numpy(), conv2d_reference(x, w, None, (1, 1), (1, 1), (1, 1), 1),
                               rtol=1e-4, atol=1e-4)
    y.sum().backward()
    assert wt.grad.dtype == np.float32 and wt.grad.shape == w.shape


def test_conv2d_is_once_differentiable():
    x = mg.randn(1, 1, 4, 4, dtype=np.float64, requires_grad=True)
    w = mg.randn(1, 1, 2, 2, dtype=np.float64, requires_grad=True)
    (gx,) = mg.grad(mg.conv2d(x, w).sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="once-differentiable"):
        gx.sum().backward()


@pytest.mark.parametrize("numba_on", [True, False])
def test_im2col_col2im_numba_equals_numpy(numba_on, monkeypatch):
    """The numba kernels give the reference's columns, and col2im is the adjoint of im2col."""
    if numba_on and K.numba is None:
        pytest.skip("numba not installed")
    monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", "0" if numba_on else "1")
    assert K.use_numba() == numba_on
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        for (n, c, h, w), k, s, p, d in [((2, 3, 7, 8), (3, 2), (2, 1), (1, 2), (1, 2)),
                                         ((3, 1, 9, 9), (3, 3), (1, 1), (0, 0), (1, 1)),
                                         ((1, 2, 5, 4), (2, 3), (3, 2), (2, 1), (2, 1))]:
            out = tuple(output_size(*a) for a in zip((h, w), k, s, p, d))
            x = rng.standard_normal((n, c, h, w)).astype(dtype)
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # the kernels work channels-last
            cols = R.im2col(x, k, s, p, d, out)
            assert np.array_equal(K.im2col(x, k, s, p, d, out), cols)
            g = rng.standard_normal(cols.shape).astype(dtype)
            back = R.col2im(g, x.shape, k, s, p, d, out)
            np.testing.assert_allclose(K.col2im(g, x.shape, k, s, p, d, out), back,
                                       rtol=1e-5 if dtype == np.float32 else 1e-12)
            # <im2col(x), g> == <x, col2im(g)>
            np.testing.assert_allclose(np.sum(cols * g, dtype=np.float64),
                                       np.sum(x * back, dtype=np.float64), rtol=1e-4)


def test_conv2d_same_result_with_numba_disabled(monkeypatch):
    rng = np.random.default_rng(3)
    x = mg.tensor(rng.standard_normal((2, 4, 7, 6)), requires_grad=True)
    w = mg.tensor(rng.standard_normal((6, 2, 3, 2)), requires_grad=True)
    results = []
    for flag in ("0", "1"):
        monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", flag)
        x.grad = w.grad = None
        y = mg.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
        y.backward(mg.tensor(np.cos(np.arange(y.numel())).reshape(y.shape)))
        results.append((y.numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@given(conv_cases(max_side=7))
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, w, b, stride, padding, dilation, groups = case
    ours = [mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)]
    theirs = [torch.tensor(np.ascontiguousarray(x), requires_grad=True), torch.tensor(w, requires_grad=True)]
    if b is not None:
        ours.append(mg.tensor(b, requires_grad=True))
        theirs.append(torch.tensor(b, requires_grad=True))
    y = mg.conv2d(*ours, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ty = torch.nn.functional.conv2d(*theirs, stride=stride, padding=padding, dilation=dilation, groups=groups)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(mg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-10)


# -- errors ---------------------------------------------------------------------------------


def test_conv2d_channel_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"conv2d: input of shape \(2, 3, 5, 5\).*weight of shape \(4, 2, 3, 3\)"):
        mg.conv2d(mg.randn(2, 3, 5, 5), mg.randn(4, 2, 3, 3))


def test_conv2d_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel of size \(5, 5\).*larger than the padded input \(4, 4\)"):
        mg.conv2d(mg.randn(1, 1, 4, 4), mg.randn(1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"dilated: \(5, 5\)"):
        mg.conv2d(mg.randn(1, 1, 4, 4), mg.randn(1, 1, 3, 3), dilation=2)
    assert mg.conv2d(mg.randn(1, 1, 4, 4), mg.randn(1, 1, 5, 5), padding=1).shape == (1, 1, 2, 2)


def test_conv2d_needs_4d_input_and_weight():
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input .* got shape \(3, 5, 5\)"):
        mg.conv2d(mg.randn(3, 5, 5), mg.randn(1, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D weight .* got shape \(3, 3, 3\)"):
        mg.conv2d(mg.randn(1, 3, 5, 5), mg.randn(3, 3, 3))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(stride=0), ValueError, r"conv2d: stride must be >= 1, got 0"),
    (dict(stride=(1, -2)), ValueError, r"conv2d: stride must be >= 1"),
    (dict(padding=-1), ValueError, r"conv2d: padding must be >= 0, got -1"),
    (dict(dilation=0), ValueError, r"conv2d: dilation must be >= 1"),
    (dict(stride=1.5), TypeError, r"conv2d: stride must be an int or a pair of ints"),
    (dict(padding=(1, 2, 3)), TypeError, r"conv2d: padding must be an int or a pair of ints"),
    (dict(groups=0), ValueError, r"conv2d: groups must be a positive int"),
])
def test_conv2d_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        mg.conv2d(mg.randn(1, 2, 5, 5), mg.randn(2, 2, 3, 3), **kwargs)


def test_conv2d_bad_groups_bias_and_dtype():
    with pytest.raises(ValueError, match=r"not divisible by groups=2"):
        mg.conv2d(mg.randn(1, 4, 5, 5), mg.randn(3, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(2,\)"):
        mg.conv2d(mg.randn(1, 2, 5, 5), mg.randn(2, 2, 3, 3), mg.randn(3))
    with pytest.raises(TypeError, match=r"conv2d: input \(float32\) and weight \(float64\)"):
        mg.conv2d(mg.randn(1, 2, 5, 5), mg.randn(2, 2, 3, 3, dtype=np.float64))


@pytest.mark.parametrize("x_grad, groups", [(True, 1), (False, 1), (True, 2)])
def test_conv2d_empty_batch(x_grad, groups):
    x = mg.randn(0, 2, 5, 5, requires_grad=x_grad)
    w = mg.randn(4, 2 // groups, 3, 3, requires_grad=True)
    b = mg.randn(4, requires_grad=True)
    y = mg.conv2d(x, w, b, groups=groups)
    assert y.shape == (0, 4, 3, 3)
    y.sum().backward()
    assert np.all(w.grad.numpy() == 0) and np.all(b.grad.numpy() == 0)
    assert not x_grad or x.grad.shape == (0, 2, 5, 5)


@pytest.mark.parametrize("numba_on", ["1", "0"])
def test_channels_last_chain_matches_contiguous_inputs(numba_on, monkeypatch):
    """conv2d writes channels-last memory; relu and 2x2 max pooling keep it and the next conv
    reads it as is.  Values and all gradients equal those computed from contiguous copies."""
    monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", "0" if numba_on == "1" else "1")
    # the layout-keeping kernels are numba's (not under MINIGRAD_CPU_KERNELS=reference)
    numba_kernels = mg.backend.kernels(np.zeros(1)) is K and K.use_numba()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 12, 10)).astype(np.float32)
    w1 = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    b1, b2 = rng.standard_normal(4).astype(np.float32), rng.standard_normal(5).astype(np.float32)

    def run(contiguous):
        params = [mg.tensor(a, requires_grad=True) for a in (x, w1, b1, w2, b2)]
        xt, w1t, b1t, w2t, b2t = params
        # reshaping a channels-last array to 1-D copies it in C order: a C-contiguous NCHW tensor
        layout = (lambda t: t.reshape(-1).reshape(t.shape)) if contiguous else (lambda t: t)
        h = layout(mg.conv2d(xt, w1t, b1t, padding=1))
        assert h.array.flags.c_contiguous == contiguous or not numba_kernels
        h = layout(mg.max_pool2d(layout(mg.relu(h)), 2))
        if numba_kernels:  # the pool kept the conv's channels-last layout
            assert h.array.flags.c_contiguous == contiguous and (contiguous or K.is_channels_last(h.array))
        y = layout(mg.conv2d(h, w2t, b2t))
        g = np.cos(np.arange(y.numel(), dtype=np.float32)).reshape(y.shape)
        y.backward(mg.tensor(g))
        return [y.numpy()] + [p.grad.numpy() for p in params]

    for a, b in zip(run(False), run(True)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    # and against plain loops through the float64 reference path
    y64 = mg.conv2d(mg.max_pool2d(mg.relu(mg.conv2d(mg.tensor(x.astype(np.float64)), mg.tensor(w1.astype(np.float64)),
                                                    mg.tensor(b1.astype(np.float64)), padding=1)), 2),
                    mg.tensor(w2.astype(np.float64)), mg.tensor(b2.astype(np.float64)))
    np.testing.assert_allclose(run(False)[0], y64.numpy(), rtol=1e-4, atol=1e-4)


def test_maxpool_channels_last_kernels_equal_nchw_ones():
    """The channels-last 2x2 max pool gives the NCHW kernel's values, arg-max and gradient,
    ties and NaN included."""
    if not K.use_numba():
        pytest.skip("the channels-last pool kernels are numba kernels (numba missing or disabled)")
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 3, (2, 7, 6, 8)).astype(np.float32)  # many ties
    x[0, 0, 0, 0] = np.nan
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # same values, NHWC memory
    geometry = ((2, 2), (2, 2), (0, 0), (1, 1))
    out_ref, arg_ref = K.maxpool2d_forward(np.ascontiguousarray(x), *geometry, (3, 4))
    out_cl, arg_cl = K.maxpool2d_forward(x_cl, *geometry, (3, 4))
    assert not out_cl.flags.c_contiguous and K.is_channels_last(out_cl)
    np.testing.assert_array_equal(out_cl, out_ref)
    np.testing.assert_array_equal(arg_cl, arg_ref)
    g = rng.standard_normal(out_ref.shape).astype(np.float32)
    np.testing.assert_array_equal(K.maxpool2d_backward(g, arg_cl, x.shape, *geometry),
                                  K.maxpool2d_backward(g, arg_ref, x.shape, *geometry))


@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_weight_grads_same_whether_or_not_x_needs_grad(bias):
    """An input without gradient (images) takes a different backward path: same dW and db."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 6, 5))
    results = []
    for x_grad in (True, False):
        w = mg.tensor(rng.standard_normal((4, 2, 3, 2)) if not results else results[0][2], requires_grad=True)
        b = mg.tensor(np.arange(4.0), requires_grad=True) if bias else None
        y = mg.conv2d(mg.tensor(x, requires_grad=x_grad), w, b, stride=(1, 2), padding=1)
        y.backward(mg.tensor(np.sin(np.arange(y.numel())).reshape(y.shape)))
        results.append((w.grad.numpy(), None if b is None else b.grad.numpy(), w.array))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)
