"""The device switch: one word moves tensors, layers, optimizers and data between the CPU and
the GPU; without a GPU the error says why.  (The cuda cases skip with a reason without one.)"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, nn, optim
from minigrad.data import DataLoader, TensorDataset

needs_no_gpu = pytest.mark.skipif(mg.cuda_available(), reason="checks the message of a machine without a GPU")


@pytest.fixture
def restore_default_device():
    saved = list(backend._default_device)
    yield
    backend._default_device[:] = saved


def test_tensors_move_between_devices_and_back(device):
    x = mg.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    y = x.to(device)
    assert y.device == mg.Device(device) and (x.cuda() if device == "cuda" else x.cpu()).device == y.device
    np.testing.assert_array_equal(y.cpu().numpy(), x.numpy())
    (y.relu() * 2).sum().backward()          # the gradient comes back to the CPU leaf
    assert x.grad.device == mg.Device("cpu")
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 0.0], [2.0, 2.0]])


def test_the_default_device_applies_to_creation_and_layers(device, restore_default_device):
    mg.set_default_device(device)
    assert mg.default_device() == mg.Device(device)
    for t in (mg.zeros(2), mg.ones(2, 3), mg.full((2,), 7.0), mg.randn(3), mg.rand(2), mg.arange(4),
              mg.eye(2), mg.tensor([1.0, 2.0]), mg.tensor(np.arange(3.0)), mg.randint(0, 5, size=(4,))):
        assert t.device == mg.Device(device)
    layer = nn.Linear(3, 2)
    assert layer.weight.device == mg.Device(device)
    assert mg.from_numpy(np.zeros(2)).device == mg.Device("cpu")  # shares NumPy's memory: stays


@needs_no_gpu
def test_without_a_gpu_every_way_to_ask_for_one_says_why(restore_default_device):
    why = mg.cuda.status()
    assert why.startswith("no CUDA GPU found")
    for ask in (lambda: mg.zeros(2, device="cuda"), lambda: mg.tensor([1.0]).to("cuda"),
                lambda: nn.Linear(2, 2).to("cuda"), lambda: mg.set_default_device("cuda"),
                lambda: mg.cuda.synchronize()):
        with pytest.raises(mg.NoCUDAError, match="device 'cuda': no CUDA GPU found"):
            ask()
    assert mg.default_device() == mg.Device("cpu")  # the failed switch changed nothing
    assert not mg.cuda.is_available() and mg.cuda.device_count() == 0


def test_minigrad_device_environment_variable(tmp_path):
    import subprocess
    import sys

    code = "import minigrad as mg; print(mg.zeros(1).device, mg.default_device())"
    out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "MINIGRAD_DEVICE": "cpu"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "cpu"]
    if not mg.cuda_available():
        proc = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "MINIGRAD_DEVICE": "cuda"},
                              capture_output=True, text=True)
        assert proc.returncode != 0 and "no CUDA GPU found" in proc.stderr


def test_a_model_and_its_optimizer_move_together(device):
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    data = TensorDataset(mg.randn(16, 4), mg.randint(0, 3, size=(16,)))
    for x, y in DataLoader(data, batch_size=8):          # a first step on the CPU: Adam has state
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.to(device)
    for x, y in DataLoader(data, batch_size=8, device=device):  # batches arrive on the device
        assert x.device == mg.Device(device)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for p in model.parameters():
        assert p.device == mg.Device(device)
        assert all(v.device == p.device for v in opt.state[p].values() if isinstance(v, mg.Tensor))


def test_a_model_saved_on_a_device_loads_on_the_cpu(device, tmp_path):
    model = nn.Linear(3, 2).to(device)
    mg.save({"model": model.state_dict()}, tmp_path / "m.npz")
    state = mg.load(tmp_path / "m.npz")               # no device named: the CPU
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(state["model"])
    np.testing.assert_array_equal(fresh.weight.numpy(), model.weight.cpu().numpy())

