"""nn layers (minigrad/nn: layers.py, conv.py, pooling.py, normalization.py): Linear,
activations (in place too), Flatten, Dropout and channel dropout, Conv1d/Conv2d (padding
strings and modes), the pooling layers, BatchNorm1d/2d/3d and GroupNorm, and a small CNN:
shapes, init, forward against NumPy or the math written out, gradients, errors, and PyTorch
parity when torch is installed.  Module machinery, containers and init: tests/test_nn.py."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from tests.bounds import assert_within, sum_error
from tests.conftest import DEVICES
from tests.coverage import covers
from tests.helpers import assert_matches_torch, leaf
from tests.strategies import arrays, shapes


# -- Linear ---------------------------------------------------------------------------------------------------


def test_linear_default_init_and_shapes():
    lin = nn.Linear(50, 20)
    assert lin.weight.shape == (20, 50) and lin.bias.shape == (20,)
    bound = 1 / math.sqrt(50)
    assert np.abs(lin.weight.numpy()).max() <= bound and np.abs(lin.bias.numpy()).max() <= bound
    assert np.abs(lin.weight.numpy()).max() > 0.9 * bound
    assert nn.Dense is nn.Linear
    assert nn.Linear(3, 2, bias=False).bias is None
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64
    empty = nn.Linear(0, 4)  # in_features 0 is allowed: the output is just the bias, whose bound is 0
    assert empty(mg.zeros(2, 0)).numpy().tolist() == [[0.0] * 4] * 2
    with pytest.raises(ValueError, match="out_features must be a non-negative integer, got -1"):
        nn.Linear(3, -1)


@given(st.integers(0, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.data())
def test_linear_forward_matches_numpy(n, fin, fout, bias, data):
    x = data.draw(arrays((n, fin)))  # C, transposed or strided layout
    lin = nn.Linear(fin, fout, bias=bias, dtype=np.float64)
    out = lin(mg.from_numpy(x))
    w, b = lin.weight.numpy(), (lin.bias.numpy() if bias else 0)
    # GEMMs of other shapes (or another BLAS) add in other orders: within the bound of a
    # sum of fin + 1 terms, 2 gamma (|x| |W|^T + |b|) (tests/bounds.py)
    assert_within(out.numpy(), x @ w.T + b, sum_error(np.abs(x) @ np.abs(w).T + np.abs(b), fin + 1))
    # a batch of sequences: all leading dimensions are batch dimensions
    x3 = data.draw(arrays((2, n, fin)))
    assert_within(lin(mg.from_numpy(x3)).numpy(), x3 @ w.T + b, sum_error(np.abs(x3) @ np.abs(w).T + np.abs(b), fin + 1))


def test_linear_gradients():
    lin = nn.Linear(4, 3, dtype=np.float64)
    x = mg.randn(5, 4, dtype=np.float64, requires_grad=True)
    assert mg.gradcheck(lambda x, w, b: F.linear(x, w, b), x, lin.weight, lin.bias)
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(3, 5.0))
    # dW = g^T x with g = 1: column sums of x, by a GEMM here and by NumPy's sum there
    assert_within(lin.weight.grad.numpy(), np.tile(x.numpy().sum(0), (3, 1)), sum_error(np.abs(x.numpy()).sum(0), 5))


def test_linear_shape_error():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 5\), weight of shape \(3, 4\)"):
        nn.Linear(4, 3)(mg.randn(2, 5))


@pytest.mark.torch
def test_linear_torch_parity():
    torch = pytest.importorskip("torch")
    lin = nn.Linear(6, 4)
    tl = torch.nn.Linear(6, 4)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.numpy()))
        tl.bias.copy_(torch.from_numpy(lin.bias.numpy()))
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
    xo, xt = mg.from_numpy(x.copy()).requires_grad_(), torch.tensor(x, requires_grad=True)
    yo, yt = lin(xo), tl(xt)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    yo.backward(mg.from_numpy(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.weight.grad.numpy(), tl.weight.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin.bias.grad.numpy(), tl.bias.grad.numpy(), rtol=1e-5, atol=1e-6)
    # same init distribution as PyTorch: both bounded by 1/sqrt(fan_in)
    assert tl.weight.abs().max().item() <= 1 / math.sqrt(6) and np.abs(lin.weight.numpy()).max() <= 1 / math.sqrt(6)


# -- activations, Flatten, Identity ----------------------------------------------------------------------------


def test_activation_modules_match_functional():
    x = mg.randn(3, 5)
    for module, fn in [(nn.ReLU(), F.relu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh),
                       (nn.LeakyReLU(0.2), lambda v: F.leaky_relu(v, 0.2)),
                       (nn.Softmax(dim=0), lambda v: F.softmax(v, 0)),
                       (nn.LogSoftmax(dim=1), lambda v: F.log_softmax(v, 1))]:
        np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())
    assert nn.Identity(3, k=4)(x) is x
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"


@given(shapes(2, 4, allow_empty=True))
def test_flatten(shape):
    x = mg.zeros(*shape)
    assert nn.Flatten()(x).shape == (shape[0], int(np.prod(shape[1:])))
    assert nn.Flatten(0, -1)(x).shape == (int(np.prod(shape)),)
    assert F.flatten(x, 1).shape == nn.Flatten()(x).shape


# -- in-place activations ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: nn.ReLU(inplace=True), lambda: nn.LeakyReLU(0.2, inplace=True),
                                  lambda: nn.SiLU(inplace=True), lambda: nn.Dropout(0.5, inplace=True)])
def test_inplace_activation_writes_into_its_input_and_keeps_the_gradient(make, device):
    def model(layer):
        mg.manual_seed(0)
        lin = nn.Linear(4, 5).to(device=device, dtype=np.float64)
        return lin, nn.Sequential(lin, layer)

    x = mg.randn(3, 4, dtype=np.float64, device=device)
    lin_a, net_a = model(make())
    h = lin_a(x)
    before = h.array
    mg.manual_seed(1)  # (the same dropout mask for both runs)
    out = net_a[1](h)
    assert out is h and h.array is before  # the same tensor and memory, a new value
    out.sum().backward()
    layer_b = make()
    layer_b.inplace = False
    lin_b, net_b = model(layer_b)
    h_b = lin_b(x)
    mg.manual_seed(1)
    expected = net_b[1](h_b)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-15)
    expected.sum().backward()
    np.testing.assert_allclose(lin_a.weight.grad.numpy(), lin_b.weight.grad.numpy(), rtol=1e-14)


def test_inplace_relu_is_refused_where_pytorch_refuses_it():
    w = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf tensor that requires grad .* cannot be modified in place"):
        nn.ReLU(inplace=True)(w)
    s = w.sigmoid()  # sigmoid's backward reads its output, which relu_ would overwrite
    y = nn.ReLU(inplace=True)(s)
    with pytest.raises(RuntimeError, match="modified by an inplace operation: its output of Sigmoid"):
        y.sum().backward()
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)" and repr(nn.ReLU()) == "ReLU()"
    with pytest.raises(TypeError, match="ReLU: inplace must be True or False"):
        nn.ReLU("yes")
    data = mg.tensor([-1.0, 2.0])
    assert F.relu(data, inplace=True) is data and data.tolist() == [0.0, 2.0]  # no graph: a plain write


# -- Dropout ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [-0.1, 1.5, True, "0.5", None])
def test_dropout_validates_p(p):
    with pytest.raises(ValueError, match="probability p must be a number in"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match="dropout: probability p"):
        F.dropout(mg.ones(2), p)


def test_dropout_training_statistics_and_eval_identity():
    p = 0.3
    n = 100_000
    drop = nn.Dropout(p)
    x = mg.ones(n)
    y = drop(x).numpy()
    kept = y != 0
    # the dropped fraction is Binomial(n, p)/n: standard error sqrt(p(1-p)/n) = 0.0014; allow 5 of them
    assert abs((1 - kept.mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)  # inverted dropout: E[y] = x
    assert abs(y.mean() - 1) < 5 * math.sqrt(p / (1 - p) / n)
    drop.eval()
    assert drop(x) is x
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.9, training=False) is x
    assert not F.dropout(mg.ones(5), 1.0).numpy().any()


def test_dropout_backward_uses_the_same_mask_and_is_seeded():
    mg.manual_seed(3)
    x = mg.randn(50, dtype=np.float64, requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    mask = y.numpy() / x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-12)
    assert set(np.round(mask, 12)) <= {0.0, 2.0}
    mg.manual_seed(3)
    x2 = mg.randn(50, dtype=np.float64)
    np.testing.assert_array_equal(F.dropout(x2, 0.5).numpy(), y.numpy())


@covers("DropoutMask", twice=True)
@given(arrays(shapes(0, 3)))
def test_dropout_gradcheck(x):
    def fn(a):
        mg.manual_seed(11)  # the same mask on every evaluation
        return F.dropout(a, 0.4)

    xt = mg.from_numpy(x).requires_grad_()
    assert mg.gradcheck(fn, xt)
    assert mg.gradgradcheck(fn, xt)


def test_dropout_float32_stays_float32():
    assert F.dropout(mg.ones(10), 0.5).dtype == np.float32
    with pytest.raises(TypeError, match="floating-point"):
        F.dropout(mg.tensor([1, 2]), 0.5)


# -- channel dropout --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, fn, shape", [(nn.Dropout1d, F.dropout1d, (50, 40, 3)),
                                            (nn.Dropout2d, F.dropout2d, (50, 40, 2, 2)),
                                            (nn.Dropout3d, F.dropout3d, (50, 40, 1, 2, 2))])
def test_channel_dropout_zeroes_whole_channels(cls, fn, shape, device):
    p = 0.3
    x = mg.ones(*shape, dtype=np.float64, device=device, requires_grad=True)
    y = cls(p)(x)
    per_channel = y.numpy().reshape(shape[0], shape[1], -1)
    assert np.all(per_channel == per_channel[..., :1])  # one decision per (sample, channel)
    kept = per_channel[..., 0] != 0
    assert np.all(per_channel[..., 0][kept] == 1 / (1 - p))
    n = kept.size
    assert abs(kept.mean() - (1 - p)) <= 5 * math.sqrt(p * (1 - p) / n)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # d(x * m)/dx = m
    layer = cls(p).eval()
    assert layer(x) is x and fn(x, p, training=False) is x
    with pytest.raises(ValueError, match=f"{fn.__name__}: expected a"):
        fn(mg.ones(2, 3), p)


# -- Conv2d -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_layer_shapes_init_and_forward(device):
    conv = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2, device=device)
    assert conv.weight.shape == (6, 2, 3, 2) and conv.bias.shape == (6,)
    bound = 1 / math.sqrt(2 * 3 * 2)  # kaiming_uniform_(a=sqrt(5)) gives 1/sqrt(fan_in)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.bias.numpy()).max() <= bound
    assert np.abs(conv.weight.numpy()).max() > bound / 2  # really spread over the range
    x = mg.randn(2, 4, 7, 5, device=device)
    y = conv(x)
    expected = mg.conv2d(x, conv.weight, conv.bias, stride=2, padding=1, groups=2)
    np.testing.assert_array_equal(y.numpy(), expected.numpy())
    assert y.shape == (2, 6, 4, 3)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert "Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), groups=2)" in repr(conv)


def test_conv2d_layer_without_bias_trains():
    conv = nn.Conv2d(1, 2, 3, bias=False)
    assert conv.bias is None and list(conv.state_dict()) == ["weight"]
    conv(mg.randn(3, 1, 5, 5)).sum().backward()
    assert conv.weight.grad.shape == (2, 1, 3, 3)


def test_conv2d_layer_errors():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels=3 and out_channels=4 must both be divisible by groups=2"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d: out_channels must be a positive integer"):
        nn.Conv2d(3, 0, 3)
    with pytest.raises(ValueError, match=r"conv2d: input of shape \(1, 2, 5, 5\) has 2 channels but weight"):
        nn.Conv2d(3, 4, 3)(mg.randn(1, 2, 5, 5))


# -- Conv1d -----------------------------------------------------------------------------------------


def conv1d_loop(x, w, b, stride, padding, dilation, groups):
    """y[n, o, p] = b[o] + sum_{c, i} w[o, c, i] x[n, g(o) * C/groups + c, p s - pad + i d]."""
    n, c, length = x.shape
    o, cg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    out_len = (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    y = np.zeros((n, o, out_len))
    og = o // groups
    for oi in range(o):
        g = oi // og
        for p in range(out_len):
            window = xp[:, g * cg:(g + 1) * cg, p * stride:p * stride + dilation * (k - 1) + 1:dilation]
            y[:, oi, p] = (window * w[oi]).sum(axis=(1, 2)) + (0 if b is None else b[oi])
    return y


CONV1D = [dict(), dict(stride=2), dict(padding=2), dict(dilation=2, padding=1), dict(groups=2), dict(stride=(3,))]


@pytest.mark.parametrize("kw", CONV1D, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_conv1d_matches_the_loop_and_finite_differences(kw, device):
    rng = np.random.default_rng(0)
    groups = kw.get("groups", 1)
    a, w, b = rng.standard_normal((2, 4, 9)), rng.standard_normal((6, 4 // groups, 3)), rng.standard_normal(6)
    x, wt, bt = leaf(a, device), leaf(w, device), leaf(b, device)
    out = F.conv1d(x, wt, bt, **kw)
    single = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    expected = conv1d_loop(a, w, b, single.get("stride", 1), single.get("padding", 0), single.get("dilation", 1), groups)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck(lambda *ts: F.conv1d(*ts, **kw), leaf(a[:1, :, :6]), leaf(w), leaf(b))
    np.testing.assert_allclose(F.conv1d(x[0], wt, bt, **kw).numpy(), expected[0], rtol=1e-12)  # unbatched


def test_conv1d_layer_and_errors():
    mg.manual_seed(0)
    conv = nn.Conv1d(3, 8, 5, padding=2, bias=False)
    assert conv.weight.shape == (8, 3, 5) and conv.bias is None
    bound = 1 / math.sqrt(3 * 5)  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(conv.weight.numpy()).max() <= bound
    assert conv(mg.randn(2, 3, 10)).shape == (2, 8, 10)
    assert repr(conv).startswith("Conv1d(3, 8, kernel_size=(5,), stride=(1,), padding=(2,), bias=False)")
    with pytest.raises(ValueError, match=r"conv1d: input of shape \(2, 4, 10\) has 4 channels but weight"):
        F.conv1d(mg.randn(2, 4, 10), conv.weight)
    with pytest.raises(ValueError, match=r"conv1d: expected a 3-D input \(N, C, L\)"):
        F.conv1d(mg.randn(2, 3, 4, 5), conv.weight)
    with pytest.raises(ValueError, match=r"conv1d: kernel of size 5 .* is larger than the padded input \(3\)"):
        F.conv1d(mg.randn(1, 3, 3), conv.weight)
    with pytest.raises(TypeError, match=r"conv1d \(run as conv2d on \(N, C, 1, L\)\): conv2d: input \(float64\)"):
        F.conv1d(mg.randn(1, 3, 8, dtype=np.float64), conv.weight)
    with pytest.raises(ValueError, match="Conv1d: in_channels=3 and out_channels=8 must both be divisible by groups=2"):
        nn.Conv1d(3, 8, 3, groups=2)


@pytest.mark.torch
@pytest.mark.parametrize("kw", CONV1D, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_conv1d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    groups = kw.get("groups", 1)
    rng = np.random.default_rng(1)
    a, w, b = rng.standard_normal((3, 4, 11)), rng.standard_normal((6, 4 // groups, 3)), rng.standard_normal(6)
    assert_matches_torch(lambda *ts: F.conv1d(*ts, **kw), lambda *ts: torch.nn.functional.conv1d(*ts, **kw),
                         (a, w, b), rtol=1e-12, atol=1e-12)


# -- padding strings and modes ----------------------------------------------------------------------


@pytest.mark.parametrize("cls, shape", [("Conv1d", (2, 3, 9)), ("Conv2d", (2, 3, 7, 6))])
@pytest.mark.parametrize("padding, padding_mode", [("same", "zeros"), ("valid", "zeros"), (2, "reflect"),
                                                   ("same", "circular"), (1, "replicate"), ("same", "reflect")])
def test_conv_padding_strings_and_modes(cls, shape, padding, padding_mode):
    """padding="same" keeps the length (the odd padding element on the right); the modes pad
    with F.pad first: the same as padding by hand, then convolving without padding."""
    mg.manual_seed(0)
    conv = getattr(nn, cls)(3, 4, 4, padding=padding, padding_mode=padding_mode, dilation=1)
    x = mg.randn(*shape, dtype=np.float64)
    conv.to(dtype=np.float64)
    y = conv(x)
    k = len(shape) - 2
    if padding == "same":
        assert y.shape[2:] == x.shape[2:]
        pads = (1, 2) * k  # k = 4: 3 in all, 1 left and 2 right
    else:
        p = 0 if padding == "valid" else padding
        pads = (p, p) * k
    mode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}[padding_mode]
    by_hand = getattr(F, cls.lower())(F.pad(x, pads, mode=mode), conv.weight, conv.bias)
    np.testing.assert_allclose(y.numpy(), by_hand.numpy(), rtol=1e-12, atol=1e-12)
    if padding_mode != "zeros":
        assert f"padding_mode='{padding_mode}'" in repr(conv)


def test_conv_padding_errors():
    with pytest.raises(ValueError, match="Conv2d: padding='same' needs stride 1"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv1d: padding must be an int, a tuple, 'valid' or 'same', got 'full'"):
        nn.Conv1d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="Conv1d: padding_mode must be one of zeros, reflect, replicate, circular"):
        nn.Conv1d(1, 1, 3, padding_mode="mirror")


@pytest.mark.torch
@pytest.mark.parametrize("padding, padding_mode", [("same", "zeros"), (2, "reflect"), ("same", "circular"),
                                                   (1, "replicate")])
def test_conv_padding_modes_match_torch(padding, padding_mode):
    torch = pytest.importorskip("torch")
    for cls, shape in (("Conv1d", (2, 3, 9)), ("Conv2d", (2, 3, 7, 6))):
        ours = getattr(nn, cls)(3, 4, 4, padding=padding, padding_mode=padding_mode)
        theirs = getattr(torch.nn, cls)(3, 4, 4, padding=padding, padding_mode=padding_mode)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
            theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
        a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(ours(mg.tensor(a)).numpy(), theirs(torch.tensor(a)).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)


# -- pooling ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_pooling_layers(device):
    x = mg.randn(2, 3, 6, 6, device=device)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).numpy(), mg.max_pool2d(x, 2).numpy())
    np.testing.assert_array_equal(nn.AvgPool2d(3, 1, 1)(x).numpy(), mg.avg_pool2d(x, 3, 1, 1).numpy())
    a = x.numpy()
    assert_within(nn.AdaptiveAvgPool2d(1)(x).numpy(), a.mean(axis=(2, 3), keepdims=True),  # a mean of 36 (float32)
                  sum_error(np.abs(a).sum(axis=(2, 3), keepdims=True), 37, np.float32) / 36)
    assert "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)" in repr(nn.MaxPool2d(2))
    assert list(nn.MaxPool2d(2).state_dict()) == []


# -- BatchNorm --------------------------------------------------------------------------------------


def test_batchnorm2d_train_and_eval():
    bn = nn.BatchNorm2d(3, momentum=0.5)
    assert sorted(bn.state_dict()) == ["bias", "num_batches_tracked", "running_mean", "running_var", "weight"]
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32) * 3 + 2
    y = bn(mg.tensor(x))
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1
    bn.eval()
    y = bn(mg.tensor(x))
    expected = (x - bn.running_mean.numpy().reshape(1, 3, 1, 1)) / np.sqrt(bn.running_var.numpy().reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1  # eval does not count


def test_batchnorm_cumulative_average_and_no_tracking():
    bn = nn.BatchNorm1d(2, momentum=None, affine=False)
    assert bn.weight is None and list(bn.parameters()) == []
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((5, 2)) for _ in range(3)]
    for b in batches:
        bn(mg.tensor(b, dtype=np.float32))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-5)
    free = nn.BatchNorm1d(2, track_running_stats=False).eval()
    assert free.running_mean is None
    y = free(mg.tensor(batches[0], dtype=np.float32))  # eval without running stats: batch stats
    np.testing.assert_allclose(y.numpy().mean(axis=0), 0, atol=1e-5)


def test_batchnorm_matches_torch_layer():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((6, 4, 3, 3)).astype(np.float32)
    ours, theirs = nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4)
    for _ in range(2):
        ours(mg.tensor(x))
        theirs(torch.tensor(x))
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_batchnorm_state_dict_roundtrip_and_errors():
    bn = nn.BatchNorm2d(3)
    bn(mg.randn(4, 3, 2, 2))
    other = nn.BatchNorm2d(3)
    other.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(other.running_var.numpy(), bn.running_var.numpy())
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input, got shape \(4, 3\)"):
        bn(mg.randn(4, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): input of shape \(4, 2, 2, 2\) has 2 channels"):
        bn(mg.randn(4, 2, 2, 2))


# -- BatchNorm on (N, C, L) and (N, C, D, H, W) -----------------------------------------------------


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (4, 3, 5)), (nn.BatchNorm1d, (6, 3)),
                                        (nn.BatchNorm3d, (2, 3, 2, 3, 2))])
def test_batch_norm_any_rank_normalizes_per_channel_and_tracks_running_stats(cls, shape, device):
    a = np.random.default_rng(4).standard_normal(shape) * 3 + 2
    bn = cls(3, momentum=0.5).to(device)
    x = leaf(a, device)
    y = bn(x)
    axes = (0,) + tuple(range(2, len(shape)))
    mu, var = a.mean(axis=axes, keepdims=True), a.var(axis=axes, keepdims=True)
    np.testing.assert_allclose(y.numpy(), (a - mu) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-6)
    m = a.size // 3
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * mu.ravel(), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * var.ravel() * m / (m - 1), rtol=1e-6)
    bn.eval()
    np.testing.assert_allclose(bn(x).numpy(), (a - bn.running_mean.numpy().reshape(mu.shape))
                               / np.sqrt(bn.running_var.numpy().reshape(mu.shape) + 1e-5), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=f"{cls.__name__}: expected a"):
        bn(mg.randn(2, 3, 2, 2))


def test_functional_batch_norm_3d_gradients():
    rng = np.random.default_rng(5)
    a, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal(2), rng.standard_normal(2)
    fn = lambda t, u, v: mg.batch_norm(t, None, None, u, v, training=True)  # noqa: E731
    assert mg.gradcheck(fn, leaf(a), leaf(w), leaf(b)) and mg.gradgradcheck(fn, leaf(a), leaf(w), leaf(b))


@pytest.mark.torch
@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (4, 3, 5)), ("BatchNorm3d", (2, 3, 2, 3, 2))])
def test_batch_norm_any_rank_matches_torch(cls, shape):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    ours, theirs = getattr(nn, cls)(3), getattr(torch.nn, cls)(3)
    x, t = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    for _ in range(2):
        y1, y2 = ours(x), theirs(t)
    np.testing.assert_allclose(y1.numpy(), y2.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-6)
    y1.sum().backward()
    (y2 * 1).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-5)


# -- GroupNorm --------------------------------------------------------------------------------------


def group_norm_numpy(a, groups, w, b, eps):
    n, c = a.shape[:2]
    r = a.reshape(n, groups, -1)
    mu, var = r.mean(-1, keepdims=True), r.var(-1, keepdims=True)
    y = ((r - mu) / np.sqrt(var + eps)).reshape(a.shape)
    shape = (1, c) + (1,) * (a.ndim - 2)
    return y * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("shape, groups", [((2, 4, 3, 3), 2), ((3, 6, 5), 3), ((2, 4), 4), ((1, 6, 2, 2, 2), 1)])
def test_group_norm_matches_numpy_and_finite_differences(shape, groups, device):
    rng = np.random.default_rng(2)
    a, w, b = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    out = F.group_norm(leaf(a, device), groups, leaf(w, device), leaf(b, device), eps=1e-5)
    np.testing.assert_allclose(out.numpy(), group_norm_numpy(a, groups, w, b, 1e-5), rtol=1e-10, atol=1e-12)
    small = a[:1]
    fn = lambda t, u, v: F.group_norm(t, groups, u, v)  # noqa: E731
    assert mg.gradcheck(fn, leaf(small), leaf(w), leaf(b))
    assert mg.gradgradcheck(fn, leaf(small), leaf(w), leaf(b))


def test_group_norm_layer_and_errors():
    gn = nn.GroupNorm(2, 4)
    assert gn.weight.tolist() == [1.0] * 4 and gn.bias.tolist() == [0.0] * 4
    y = gn(mg.randn(3, 4, 5))
    r = y.numpy().reshape(3, 2, -1)
    np.testing.assert_allclose(r.mean(-1), 0, atol=1e-6)
    np.testing.assert_allclose(r.var(-1), 1, rtol=1e-3)  # var / (var + eps), eps = 1e-5
    assert nn.GroupNorm(2, 4, affine=False).weight is None
    assert repr(gn).startswith("GroupNorm(2, 4, eps=1e-05, affine=True)")
    with pytest.raises(ValueError, match="GroupNorm: num_channels=5 must be divisible by num_groups=2"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match="group_norm: the 6 channels of an input of shape .* cannot be split into 4"):
        F.group_norm(mg.randn(2, 6, 3), 4)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4\): expected an input \(N, 4, ...\), got shape \(3, 6\)"):
        gn(mg.randn(3, 6))


@pytest.mark.torch
def test_group_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, w, b = rng.standard_normal((2, 6, 4, 3)), rng.standard_normal(6), rng.standard_normal(6)
    assert_matches_torch(lambda x, u, v: F.group_norm(x, 3, u, v),
                         lambda x, u, v: torch.nn.functional.group_norm(x, 3, u, v), (a, w, b), rtol=1e-9, atol=1e-11)


# -- a small CNN ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_mnist_cnn_shapes_and_step(device):
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(), nn.Linear(128, 10),
    )
    model.to(device)
    x = mg.randn(4, 1, 28, 28, device=device)
    out = model(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
