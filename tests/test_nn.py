"""nn's machinery (minigrad/nn: module.py, parameter.py, init.py, containers.py, utils): Module
(registration, tree walks, state_dict, modes, to(), repr), Parameter, init, the containers
(Sequential, ModuleList, ModuleDict, ParameterList), gradient clipping.  The layers:
tests/test_nn_layers.py."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import init


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.scale = nn.Parameter(mg.ones(3))
        self.register_buffer("running", mg.zeros(3))
        self.register_buffer("count", mg.tensor(0))  # an integer buffer
        self.register_buffer("cache", mg.zeros(2), persistent=False)
        self.note = "not registered"

    def forward(self, x):
        return self.fc(x) * self.scale + self.running


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(3, 2))
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.head(self.drop(self.body(x)))


# -- Parameter ---------------------------------------------------------------------------------


def test_parameter_basics():
    a = mg.randn(2, 3)
    p = nn.Parameter(a)
    assert isinstance(p, mg.Tensor) and p.requires_grad and p.is_leaf
    assert p.array is a.array  # shares memory, as torch.nn.Parameter(tensor)
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert type(p * 2) is mg.Tensor  # ops make plain tensors
    assert not nn.Parameter(mg.ones(2), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        nn.Parameter(mg.tensor([1, 2]))
    assert nn.Parameter(mg.tensor([1, 2]), requires_grad=False).dtype == np.int64


# -- registration and tree walks ----------------------------------------------------------------


def test_registration_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["body.scale", "body.fc.weight", "body.fc.bias", "head.1.weight", "head.1.bias"]
    assert [n for n, _ in net.named_buffers()] == ["body.running", "body.count", "body.cache"]
    assert [n for n, _ in net.named_children()] == ["body", "head", "drop"]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.fc", "head", "head.0", "head.1", "drop"]
    assert len(list(net.modules())) == 7 and len(list(net.children())) == 3
    assert list(net.parameters(recurse=False)) == []
    assert net.num_parameters() == 3 + 12 + 3 + 6 + 2
    assert net.get_submodule("head.1") is net.head[1]
    # attribute access is an ordinary __dict__ lookup: no __getattr__ on the hot path
    assert "weight" in net.body.fc.__dict__ and not hasattr(nn.Module, "__getattr__")


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]


def test_reassignment_and_deletion():
    m = Block()
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'scale'"):
        m.scale = mg.ones(3)
    with pytest.raises(TypeError, match="cannot assign str as child module 'fc'"):
        m.fc = "linear"
    with pytest.raises(TypeError, match="cannot assign int as buffer 'running'"):
        m.running = 3
    m.running = mg.ones(3)  # a tensor replaces a buffer
    assert m.state_dict()["running"].tolist() == [1, 1, 1]
    m.scale = None
    assert "scale" not in dict(m.named_parameters())
    m.fc = nn.Linear(4, 3, bias=False)
    assert [n for n, _ in m.named_parameters()] == ["fc.weight"]
    del m.fc
    assert list(m.parameters()) == [] and not hasattr(m, "fc")
    m.extra = nn.Parameter(mg.zeros(1))
    m.extra = nn.Linear(1, 1)  # a name moves from parameters to modules
    assert [n for n, _ in m.named_parameters()] == ["extra.weight", "extra.bias"]


def test_registration_errors():
    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mg.ones(1))

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) first in Forgot.__init__"):
        Forgot()
    m = nn.Module()
    with pytest.raises(KeyError, match="without '.'"):
        m.register_buffer("a.b", mg.ones(1))
    with pytest.raises(TypeError, match="must be a Tensor or None"):
        m.register_buffer("b", np.ones(1))
    with pytest.raises(TypeError, match="must be an nn.Parameter or None"):
        m.register_parameter("w", mg.ones(1))
    with pytest.raises(TypeError, match="must be an nn.Module or None"):
        m.add_module("c", 3)
    with pytest.raises(NotImplementedError, match="has no forward"):
        m(1)


def test_train_eval_propagates():
    net = Net()
    assert net.training and net.head[0].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError, match="mode must be a bool"):
        net.train("no")


def test_zero_grad_and_requires_grad_():
    net = Net()
    net.eval()
    net(mg.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_visits_every_module():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Block", "ReLU", "Linear", "Sequential", "Dropout", "Net"]


# -- state_dict -------------------------------------------------------------------------------------


def test_state_dict_contents():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["body.scale", "body.running", "body.count", "body.fc.weight", "body.fc.bias",
                        "head.1.weight", "head.1.bias"]  # the non-persistent buffer is left out
    assert not sd["body.scale"].requires_grad and sd["body.scale"].array is net.body.scale.array
    assert net.state_dict(keep_vars=True)["body.scale"] is net.body.scale


def test_state_dict_round_trip_through_a_file(tmp_path):
    mg.manual_seed(1)
    a = Net().eval()
    mg.manual_seed(2)
    b = Net().eval()
    x = mg.randn(5, 4)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    a.body.running.array[...] = 0.25
    a.body.count.array[...] = 7
    mg.save(a.state_dict(), tmp_path / "net.npz")
    params_before = list(b.parameters())
    result = b.load_state_dict(mg.load(tmp_path / "net.npz"))
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert list(b.parameters()) == params_before  # loaded in place: same Parameter objects
    assert b.body.count.item() == 7 and b.body.count.dtype == np.int64


def test_load_state_dict_strict_errors_leave_model_untouched():
    net = Net()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    sd = Net().state_dict()
    del sd["head.1.bias"]
    sd["head.2.weight"] = mg.zeros(2, 3)
    sd["body.fc.weight"] = mg.zeros(3, 5)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert "Error(s) in loading state_dict for Net" in msg
    assert 'Missing key(s) in state_dict: "head.1.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "head.2.weight"' in msg
    assert ("size mismatch for body.fc.weight: copying a param with shape (3, 5) from checkpoint, "
            "the shape in the current model is (3, 4)") in msg
    for k, v in net.state_dict().items():  # nothing was written, not even the valid entries
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_load_state_dict_non_strict():
    net = Net()
    sd = Net().state_dict()
    del sd["head.1.bias"]
    sd["extra"] = mg.zeros(1)
    result = net.load_state_dict(sd, strict=False)
    assert result == (["head.1.bias"], ["extra"])
    assert result.missing_keys == ["head.1.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(net.head[1].weight.numpy(), sd["head.1.weight"].numpy())
    sd["head.1.weight"] = mg.zeros(9)
    with pytest.raises(RuntimeError, match="size mismatch for head.1.weight"):
        net.load_state_dict(sd, strict=False)  # a shape mismatch is an error even when not strict
    assert repr(net.load_state_dict(Net().state_dict())) == "<All keys matched successfully>"


def test_load_state_dict_preserves_dtype_and_accepts_arrays():
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.eye(2), "bias": mg.tensor([1.0, 2.0], dtype=np.float64)})
    assert lin.weight.dtype == lin.bias.dtype == np.float32
    np.testing.assert_array_equal(lin.weight.numpy(), np.eye(2))
    with pytest.raises(TypeError, match="expected a dict"):
        lin.load_state_dict([1, 2])


# -- to(), dtypes and devices ---------------------------------------------------------------------------


def test_to_dtype_keeps_parameter_objects():
    net = Net()
    params = list(net.parameters())
    assert net.to(np.float64) is net
    assert list(net.parameters()) == params
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.body.running.dtype == np.float64 and net.body.count.dtype == np.int64  # ints stay
    net.eval()
    assert net(mg.randn(2, 4, dtype=np.float64)).dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    net.to(dtype="float64").to("cpu")
    assert net.body.fc.weight.dtype == np.float64 and net.body.fc.weight.device == "cpu"
    with pytest.raises(TypeError, match="only floating dtypes"):
        net.to(np.int32)
    with pytest.raises(TypeError, match="expected a device or a dtype"):
        net.to(object())


def test_to_device_round_trip(device):
    net = Net()
    x = mg.randn(3, 4)
    net.eval()
    expected = net(x).numpy()
    net.to(device)
    assert all(p.device == device for p in net.parameters())
    assert all(b.device == device for b in net.buffers())
    np.testing.assert_allclose(net(x.to(device)).numpy(), expected, rtol=1e-6)
    net.to("cpu")
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-6)


# -- repr ---------------------------------------------------------------------------------------------------


def test_repr_tree_with_parameter_counts():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2),
                          nn.Sequential(nn.Linear(128, 10), nn.LogSoftmax(dim=1)))
    assert repr(model) == "\n".join([
        "Sequential(",
        "  (0): Flatten(start_dim=1, end_dim=-1)",
        "  (1): Linear(in_features=784, out_features=128, bias=True)  # 100,480 params",
        "  (2): ReLU()",
        "  (3): Dropout(p=0.2)",
        "  (4): Sequential(  # 1,290 params",
        "    (0): Linear(in_features=128, out_features=10, bias=True)  # 1,290 params",
        "    (1): LogSoftmax(dim=1)",
        "  )",
        ")  # total: 101,770 params",
    ])
    model[1].requires_grad_(False)
    assert repr(model).endswith(")  # total: 101,770 params (1,290 trainable)")
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)  # total: 6 params"
    assert repr(nn.ReLU()) == "ReLU()"


# -- init ------------------------------------------------------------------------------------------------------


def test_fans_and_gains():
    assert init.calculate_fan_in_and_fan_out(mg.empty(7, 5)) == (5, 7)
    assert init.calculate_fan_in_and_fan_out(mg.empty(16, 8, 3, 3)) == (72, 144)
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions \(shape \(5,\)\)"):
        init.xavier_uniform_(mg.empty(5))
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("linear") == init.calculate_gain("conv2d") == init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01 ** 2))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        init.kaiming_normal_(mg.empty(3, 3), mode="fan_avg")
    with pytest.raises(TypeError, match="expected a floating-point tensor"):
        init.normal_(mg.zeros(3, dtype=np.int64))


# n = 256 * 512 = 131,072 samples.  The sample std s of n i.i.d. values has relative standard
# error sqrt((kurtosis - 1) / (4 n)): 0.0012 for a uniform (kurtosis 9/5), 0.0020 for a normal
# (kurtosis 3).  rtol = 0.01 is > 5 standard errors, so a correct init fails with probability
# < 1e-6 (and the seed is fixed anyway), while a wrong fan or gain (>= 10% off) always fails.
# The sample mean has standard error std / sqrt(n) = 0.0028 std: we allow 5 of those.
N_OUT, N_IN = 256, 512


@pytest.mark.parametrize("fill, mean, std, bound", [
    (lambda w: init.uniform_(w, -0.3, 0.5), 0.1, 0.8 / math.sqrt(12), None),
    (lambda w: init.normal_(w, 0.2, 0.7), 0.2, 0.7, None),
    (lambda w: init.xavier_uniform_(w, gain=2.0), 0.0, 2.0 * math.sqrt(2 / (N_IN + N_OUT)),
     2.0 * math.sqrt(6 / (N_IN + N_OUT))),
    (lambda w: init.xavier_normal_(w), 0.0, math.sqrt(2 / (N_IN + N_OUT)), None),
    (lambda w: init.kaiming_uniform_(w, nonlinearity="relu"), 0.0, math.sqrt(2 / N_IN), math.sqrt(6 / N_IN)),
    (lambda w: init.kaiming_uniform_(w, a=math.sqrt(5)), 0.0, 1 / math.sqrt(3 * N_IN), 1 / math.sqrt(N_IN)),
    (lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), 0.0, math.sqrt(2 / N_OUT), None),
], ids=["uniform", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_uniform_sqrt5",
        "kaiming_normal_fan_out"])
def test_init_statistics(fill, mean, std, bound):
    w = mg.empty(N_OUT, N_IN)
    version = w._version
    assert fill(w) is w
    assert w._version == version + 1 and w.dtype == np.float32
    a = w.numpy().astype(np.float64)
    np.testing.assert_allclose(a.std(), std, rtol=0.01)
    assert abs(a.mean() - mean) < 5 * std / math.sqrt(a.size)
    if bound is not None:
        assert a.min() >= -bound and a.max() <= bound
        assert a.min() < -0.99 * bound and a.max() > 0.99 * bound  # the full range is used


def test_constant_inits_and_seeding():
    w = mg.empty(3, 2)
    assert init.ones_(w).numpy().tolist() == [[1, 1]] * 3
    assert not init.zeros_(w).numpy().any()
    assert (init.constant_(w, 0.5).numpy() == 0.5).all()
    mg.manual_seed(7)
    a = init.kaiming_normal_(mg.empty(4, 4)).numpy().copy()
    b = nn.Linear(4, 4).weight.numpy().copy()
    mg.manual_seed(7)
    np.testing.assert_array_equal(init.kaiming_normal_(mg.empty(4, 4)).numpy(), a)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.numpy(), b)


def test_init_works_on_parameters_that_require_grad():
    p = nn.Parameter(mg.empty(3, 3))
    init.xavier_uniform_(p)  # writes under the hood, never recorded on the tape
    assert p.requires_grad and p.is_leaf and np.all(np.abs(p.numpy()) <= math.sqrt(1.0))


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


# -- containers ---------------------------------------------------------------------------------------------------


def test_sequential_indexing_slicing_iteration():
    layers = [nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    x = mg.randn(5, 4)
    np.testing.assert_array_equal(seq(x).numpy(), layers[2](layers[1](layers[0](x))).numpy())
    np.testing.assert_array_equal(seq[1:](head[0](x)).numpy(), seq(x).numpy())
    seq.append(nn.Tanh())
    assert len(seq) == 4 and isinstance(seq[3], nn.Tanh)
    np.testing.assert_array_equal(seq(x).numpy(), mg.tanh(layers[2](layers[1](layers[0](x)))).numpy())
    seq[3] = nn.Identity()
    assert isinstance(seq[-1], nn.Identity)
    del seq[3]
    assert len(seq) == 3
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        seq[3]
    with pytest.raises(TypeError, match="argument 1 is a int, not an nn.Module"):
        nn.Sequential(nn.ReLU(), 3)


def test_sequential_with_names_and_state_dict():
    seq = nn.Sequential(OrderedDict([("fc1", nn.Linear(2, 3)), ("act", nn.ReLU()), ("fc2", nn.Linear(3, 1))]))
    assert list(seq.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert seq.fc1 is seq[0]
    seq.fc2 = nn.Linear(3, 4)  # replacing an attribute updates the forward pipeline
    assert seq(mg.randn(1, 2)).shape == (1, 4)


def test_module_list():
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(blocks) == 3 and len(list(blocks.parameters())) == 6
    blocks.append(nn.Linear(2, 1))
    assert [n for n, _ in blocks.named_parameters()][-1] == "3.bias"
    assert isinstance(blocks[1:], nn.ModuleList) and len(blocks[1:]) == 3
    with pytest.raises(NotImplementedError, match="iterate over it"):
        blocks(mg.ones(2))


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


# -- nn.utils: gradient clipping ---------------------------------------------------------------------


def _params_with_grads():
    mg.manual_seed(0)
    ps = [nn.Parameter(mg.randn(3, 4)), nn.Parameter(mg.randn(5)), nn.Parameter(mg.randn(2))]
    for p, scale in zip(ps, (1.0, 3.0, 0.5)):
        p.grad = mg.randn(*p.shape) * scale
    ps[2].grad = None  # parameters without a gradient are skipped
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_scales_all_gradients_together(norm_type):
    ps = _params_with_grads()
    grads = [p.grad.numpy().astype(np.float64).ravel() for p in ps[:2]]
    flat = np.concatenate(grads)
    total = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    out = nn.utils.clip_grad_norm_(ps, max_norm=1.0, norm_type=norm_type)
    assert out.item() == pytest.approx(total, rel=1e-5)
    scale = min(1.0, 1.0 / (total + 1e-6))
    for p, g in zip(ps[:2], grads):
        np.testing.assert_allclose(p.grad.numpy().ravel(), g * scale, rtol=1e-5)
    assert ps[2].grad is None
    # below the limit nothing changes
    before = [p.grad.numpy().copy() for p in ps[:2]]
    nn.utils.clip_grad_norm_(ps, max_norm=1e6, norm_type=norm_type)
    for p, b in zip(ps[:2], before):
        np.testing.assert_array_equal(p.grad.numpy(), b)


def test_clip_grad_norm_nonfinite_and_clip_grad_value():
    ps = _params_with_grads()
    ps[0].grad.array[0, 0] = np.nan
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is nan"):
        nn.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert math.isnan(nn.utils.clip_grad_norm_(ps, 1.0).item())  # NaN stays visible
    ps = _params_with_grads()
    nn.utils.clip_grad_value_(ps, 0.5)
    for p in ps[:2]:
        assert np.abs(p.grad.numpy()).max() <= 0.5
    assert nn.utils.clip_grad_norm_([], 1.0).item() == 0.0


@pytest.mark.torch
def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    ps = _params_with_grads()
    tps = [torch.nn.Parameter(torch.tensor(p.numpy())) for p in ps[:2]]
    for tp, p in zip(tps, ps):
        tp.grad = torch.tensor(p.grad.numpy())
    ours = nn.utils.clip_grad_norm_(ps, 2.0)
    theirs = torch.nn.utils.clip_grad_norm_(tps, 2.0)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    for tp, p in zip(tps, ps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6)
