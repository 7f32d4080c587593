"""Layers: Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d/2d."""
import math

import numpy as np
import pytest

import minigrad as mg
from tests.bounds import assert_within, sum_error
from minigrad import nn
from tests.conftest import DEVICES


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
