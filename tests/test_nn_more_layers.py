"""Layers of issue 16: Conv1d (F.conv1d), GroupNorm (F.group_norm), BatchNorm1d on (N, C, L)
and BatchNorm3d, Dropout1d/2d/3d, in-place activations, ModuleDict, ParameterList and
init.trunc_normal_; against PyTorch where it is installed, and against the math without it."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from tests.helpers import leaf


def same_as_torch(torch, ours_fn, theirs_fn, arrays, rtol, atol):
    """ours_fn and theirs_fn (PyTorch's) agree on ``arrays`` (float64), value and gradients
    for a random upstream gradient."""
    ours = [leaf(v) for v in arrays]
    theirs = [torch.tensor(v, requires_grad=True) for v in arrays]
    y1, y2 = ours_fn(*ours), theirs_fn(*theirs)
    np.testing.assert_allclose(y1.numpy(), y2.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(9).standard_normal(y1.shape)
    y1.backward(mg.tensor(g))
    y2.backward(torch.tensor(g))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)


# -- conv1d ---------------------------------------------------------------------------------------


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
    same_as_torch(torch, lambda *ts: F.conv1d(*ts, **kw), lambda *ts: torch.nn.functional.conv1d(*ts, **kw),
                  (a, w, b), rtol=1e-12, atol=1e-12)


# -- group norm ---------------------------------------------------------------------------------


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
    same_as_torch(torch, lambda x, u, v: F.group_norm(x, 3, u, v),
                  lambda x, u, v: torch.nn.functional.group_norm(x, 3, u, v), (a, w, b), rtol=1e-9, atol=1e-11)


# -- batch norm on (N, C, L) and (N, C, D, H, W) ---------------------------------------------------


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


# -- in-place activations -----------------------------------------------------------------------------


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


# -- containers ------------------------------------------------------------------------------------


def test_module_dict():
    d = nn.ModuleDict({"enc": nn.Linear(2, 3), "act": nn.ReLU()})
    d["dec"] = nn.Linear(3, 2)
    assert list(d) == ["enc", "act", "dec"] and len(d) == 3 and "act" in d
    assert [n for n, _ in d.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert list(d.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert isinstance(d.pop("act"), nn.ReLU) and list(d.keys()) == ["enc", "dec"]
    d.update([("act", nn.Tanh())])
    assert list(d) == ["enc", "dec", "act"] and isinstance(d["act"], nn.Tanh)
    x = mg.randn(4, 2)
    assert d["dec"](d["act"](d["enc"](x))).shape == (4, 2)
    with pytest.raises(KeyError, match="ModuleDict has no module 'nope'"):
        d["nope"]
    with pytest.raises(TypeError, match="must be an nn.Module, got int"):
        d["x"] = 3
    with pytest.raises(KeyError, match="'keys' is the name of a ModuleDict attribute"):
        d["keys"] = nn.ReLU()
    with pytest.raises(NotImplementedError, match="ModuleDict has no forward"):
        d(x)
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []


def test_parameter_list_registers_its_parameters_with_the_optimizer():
    class Mixture(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.ParameterList([nn.Parameter(mg.ones(2)) for _ in range(3)])

        def forward(self, x):
            return sum(w * x for w in self.weights)

    m = Mixture()
    assert [n for n, _ in m.named_parameters()] == ["weights.0", "weights.1", "weights.2"]
    m.weights.append(mg.zeros(2))  # a plain tensor becomes a Parameter
    assert isinstance(m.weights[3], nn.Parameter) and m.weights[3].requires_grad and len(m.weights) == 4
    opt = mg.optim.SGD(m.parameters(), lr=0.5)
    m(mg.tensor([1.0, 2.0])).sum().backward()
    opt.step()
    assert m.weights[0].tolist() == [0.5, 0.0] and m.weights[-1].tolist() == [-0.5, -1.0]
    m.weights[1] = nn.Parameter(mg.full((2,), 7.0))
    assert m.state_dict()["weights.1"].tolist() == [7.0, 7.0]
    assert len(m.weights[1:3]) == 2
    with pytest.raises(TypeError, match="ParameterList: expected a Parameter or a Tensor, got float"):
        m.weights.append(1.0)


# -- trunc_normal_ ---------------------------------------------------------------------------------


def test_trunc_normal_is_the_normal_conditioned_on_the_interval():
    mg.manual_seed(0)
    w = nn.init.trunc_normal_(mg.empty(200, 100, dtype=np.float64), mean=0.5, std=1.0, a=0.0, b=2.0)
    v = w.numpy().ravel()
    assert v.min() >= 0.0 and v.max() <= 2.0
    # the conditional mean and variance of N(0.5, 1) on [0, 2]: with alpha, beta the standardized
    # bounds, Z = Phi(beta) - Phi(alpha),  mean = mu + (phi(alpha) - phi(beta)) / Z * sigma, ...
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    al, be = -0.5, 1.5
    Z = Phi(be) - Phi(al)
    mean = 0.5 + (phi(al) - phi(be)) / Z
    var = 1 + (al * phi(al) - be * phi(be)) / Z - ((phi(al) - phi(be)) / Z) ** 2
    n = v.size
    assert abs(v.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(v.var() - var) < 5 * var * math.sqrt(2 / n)
    small = nn.init.trunc_normal_(mg.empty(1000), std=0.02)  # the usual call: bounds far away
    assert small.dtype == np.float32 and abs(small.numpy().std() - 0.02) < 0.002
    assert nn.init.trunc_normal_(mg.empty(3), mean=5.0, std=0.0).tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="trunc_normal_: needs std >= 0 and a < b"):
        nn.init.trunc_normal_(mg.empty(3), a=1.0, b=0.0)
    with pytest.raises(ValueError, match="holds a fraction .* rejection sampling needs at least 1e-6"):
        nn.init.trunc_normal_(mg.empty(3), a=8.0, b=9.0)


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
