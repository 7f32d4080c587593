"""PyTorch's API where minigrad has the concept: the namespace, names that used to mean
something else (randint, Tensor(2, 3)), the custom autograd.Function protocol, PyTorch's
arguments (backward(gradient=), gradcheck(fn, (x,)), DataLoader(num_workers=)), Optimizer.state,
the thin namespaces (utils.data, vision, backends, accelerator), the transforms, and the errors
for PyTorch arguments minigrad does not have.  The scripts that use all this together are in
tests/test_pytorch_scripts.py."""
import inspect
import types

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.autograd import Function

from tests.helpers import assert_matches_torch
from tests.idx_files import make_dataset_dir
from tests.test_pytorch_scripts import load_script

# -- the namespace -------------------------------------------------------------------------------

# Everything public at the top level besides the functional forms of the ops (``ops.__all__``,
# the one list a new op is added to).  Internal submodules (norm, shape, loss, ...) and operator
# helpers (radd, lift, ...) must not be here.
TOP_LEVEL = """
    Device GradcheckError NoCUDAError Tensor accelerator arange autograd backend backends bool bool_
    cuda cuda_available data default_device detect_anomaly device diagnostics distributed doctor
    double empty enable_grad eye float float16 float32 float64 from_numpy full get_default_dtype
    grad gradcheck gradgradcheck half inference_mode int int16 int32 int64 int8 io
    is_anomaly_enabled is_grad_enabled linspace load long manual_seed metrics multinomial nn no_grad
    ones ones_like ops optim rand rand_like randint randn randn_like randperm save
    set_default_device set_default_dtype set_grad_enabled short tensor uint8 utils vision viz
    zeros zeros_like
""".split()
SUBMODULES = {"accelerator", "autograd", "backend", "backends", "cuda", "data", "diagnostics",
              "distributed", "io", "metrics", "nn", "ops", "optim", "utils", "vision", "viz"}


def test_the_top_level_namespace_is_the_public_api():
    public = {n for n in vars(mg) if not n.startswith("_")}
    assert public == set(TOP_LEVEL) | set(mg.ops.__all__)
    assert not set(TOP_LEVEL) & set(mg.ops.__all__)
    for name in public:
        is_module = isinstance(getattr(mg, name), types.ModuleType)
        assert is_module == (name in SUBMODULES), name
    for name in mg.ops.__all__:
        assert inspect.isfunction(getattr(mg, name)), f"ops.__all__ lists {name}, not a function"
    for internal in ("norm", "shape", "loss", "conv", "pool", "reduce", "activation", "attention",
                     "elementwise", "radd", "lift", "getitem", "astype", "REGISTRY", "Function"):
        assert not isinstance(getattr(mg, internal, None), types.ModuleType)
        assert internal not in mg.ops.__all__ or internal == "norm"


def test_dtype_and_device_names():
    assert (mg.float, mg.double, mg.half) == (np.float32, np.float64, np.float16)
    assert (mg.long, mg.int, mg.short, mg.bool) == (np.int64, np.int32, np.int16, np.bool_)
    assert mg.zeros(2, dtype=mg.long).dtype == np.int64 and mg.tensor([1.0]).dtype == mg.float32
    assert mg.device("cpu") == "cpu" and mg.device("cuda:0").type == "cuda"
    assert mg.device is mg.Device
    assert mg.backends.mps.is_available() is False and mg.backends.cudnn.is_available() is False
    mg.backends.cudnn.benchmark = True  # accepted, changes nothing
    mg.backends.cuda.matmul.allow_tf32 = False
    assert mg.accelerator.is_available() == mg.cuda.is_available()
    assert (mg.accelerator.current_accelerator() is None) != mg.cuda.is_available()


# -- names that meant something else --------------------------------------------------------------


def test_randint_follows_pytorch():
    x = mg.randint(65, (257,))
    assert x.shape == (257,) and x.dtype == np.int64
    assert 0 <= x.numpy().min() and x.numpy().max() < 65
    assert mg.randint(1000, (4,)).shape == (4,)
    y = mg.randint(5, 10, (3, 4))
    assert y.shape == (3, 4) and 5 <= y.numpy().min() and y.numpy().max() < 10
    assert mg.randint(low=2, high=3, size=(2,)).tolist() == [2, 2]
    assert mg.randint(3, size=[2]).shape == (2,)
    with pytest.raises(TypeError, match="randint: size must be a tuple of ints.*got 4"):
        mg.randint(3, 4)  # PyTorch refuses it too (it was one number in [3, 4))
    with pytest.raises(TypeError, match="randint: high and size are required"):
        mg.randint(5)
    with pytest.raises(TypeError, match="randint: high must be an int"):
        mg.randint(2.5, (3,))
    with pytest.raises(ValueError, match=r"randint: the range \[low, high\) = \[4, 4\) is empty"):
        mg.randint(4, 4, (1,))


def test_legacy_tensor_constructor():
    t = mg.Tensor(2, 3)
    assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
    assert mg.Tensor(5).shape == (5,) and mg.Tensor().shape == (0,)
    assert mg.Tensor([1, 2]).dtype == np.float32  # Python data: the default float, as torch.Tensor
    assert mg.Tensor((2, 3)).tolist() == [2.0, 3.0]  # a tuple is data
    assert mg.Tensor(np.arange(3)).dtype == np.int64  # an array keeps its dtype
    assert mg.Tensor(np.int64(-3)).item() == -3  # a NumPy number is data, not a shape
    assert mg.Tensor(2, 3, dtype=mg.float64).dtype == np.float64
    assert mg.tensor([1, 2]).dtype == np.int64 and mg.tensor(3).item() == 3
    with pytest.raises(TypeError, match="Tensor: expected one data argument"):
        mg.Tensor([1.0], [2.0])


def test_format_spec():
    loss = mg.tensor(1.23456)
    assert f"{loss:.4f}" == "1.2346" and f"{mg.tensor(7):3d}" == "  7" and "{}".format(loss) == repr(loss)
    assert f"{mg.tensor([1.0, 2.0])}" == repr(mg.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"Tensor.__format__: .*0-d tensors .* shape \(2,\)"):
        f"{mg.tensor([1.0, 2.0]):.2f}"


def test_tensor_to_forms():
    x = mg.tensor([1.0, 2.0])
    assert x.to(mg.float64).dtype == np.float64 and x.to("cpu") is x
    assert x.to("cpu", mg.float64).dtype == np.float64 and x.to(dtype=mg.float16).dtype == np.float16
    assert x.to(mg.zeros(1, dtype=mg.float64)).dtype == np.float64
    assert x.to("cpu", non_blocking=True) is x
    c = x.to(copy=True)
    assert c is not x and not np.shares_memory(c.numpy(), x.numpy())
    with pytest.raises(TypeError, match="Tensor.to: expected a device or a dtype"):
        x.to("gpu0")


def test_equal():
    assert mg.equal(mg.tensor([1, 2]), mg.tensor([1, 2]))
    assert not mg.equal(mg.tensor([1, 2]), mg.tensor([1, 3]))
    assert not mg.equal(mg.tensor([1, 2]), mg.tensor([[1, 2]]))
    assert mg.tensor([1.0]).equal(mg.tensor([1.0]))


# -- backward and grad with PyTorch's arguments ----------------------------------------------------


def test_backward_gradient_keyword_and_inputs():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    w = mg.tensor([3.0, 4.0], requires_grad=True)
    (x * w).backward(gradient=mg.tensor([1.0, 0.5]))
    assert x.grad.tolist() == [3.0, 2.0] and w.grad.tolist() == [1.0, 1.0]
    x.grad = w.grad = None
    (x * w).sum().backward(inputs=[x])  # only x accumulates
    assert x.grad.tolist() == [3.0, 4.0] and w.grad is None
    y = x * 2
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    assert x.grad.tolist() == [7.0, 8.0]


def test_autograd_backward_with_several_tensors():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    a, b = x * 2, (x * x).sum()
    mg.autograd.backward([a, b], [mg.tensor([1.0, 1.0]), None])
    assert x.grad.tolist() == [4.0, 6.0]  # 2 + 2x
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.autograd.backward(mg.tensor(1.0))


def test_grad_materialize_grads():
    x = mg.tensor(1.0, requires_grad=True)
    y = mg.tensor(2.0, requires_grad=True)
    gx, gy = mg.grad(x * 3, [x, y], materialize_grads=True)
    assert gx.item() == 3.0 and gy.item() == 0.0


def test_gradcheck_pytorch_forms():
    x = mg.randn(3, dtype=mg.float64, requires_grad=True)
    assert mg.autograd.gradcheck(lambda t: t.sin(), (x,), eps=1e-6, atol=1e-5, rtol=1e-3)
    assert mg.autograd.gradgradcheck(lambda t: t.sin(), (x,))
    assert mg.gradcheck(lambda t: t.sin(), (x,), fast_mode=True)

    def wrong(t):  # forward sin, a backward that says cos + 1
        return Wrong.apply(t)

    assert mg.gradcheck(wrong, (x,), raise_exception=False) is False
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(wrong, x)


class Wrong(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.cos() + 1)


def test_inference_mode_and_bare_decorators():
    x = mg.tensor(1.0, requires_grad=True)
    with mg.inference_mode():
        assert not (x * 2).requires_grad
    with mg.inference_mode(False):
        assert (x * 2).requires_grad

    @mg.no_grad
    def double(t):
        return t * 2

    @mg.inference_mode
    def triple(t):
        return t * 3

    assert not double(x).requires_grad and not triple(x).requires_grad
    assert (x * 2).requires_grad and mg.is_grad_enabled()


# -- custom Functions: PyTorch's protocol ------------------------------------------------------------


# the custom Function of the "Learning PyTorch with Examples" fit, from its script
LegendrePolynomial3 = load_script("polynomial_legendre.py").LegendrePolynomial3


class ScaledSplit(Function):
    """Several outputs, one of them integer and one marked non-differentiable, and a non-tensor
    argument:  (x * k, x * y, argmax(x), y + 1)  with y + 1 marked non-differentiable.
    d/dx = g0 * k + g1 * y,   d/dy = g1 * x   (g3 is zeros: the mark)"""

    @staticmethod
    def forward(ctx, x, k, y):
        ctx.save_for_backward(x, y)
        ctx.k = k
        shifted = y + 1
        ctx.mark_non_differentiable(shifted)
        return x * k, x * y, x.argmax(), shifted

    @staticmethod
    def backward(ctx, g0, g1, g_index, g_shifted):
        x, y = ctx.saved_tensors
        assert g_index.dtype == np.int64 and not g_shifted.numpy().any()  # zeros, never None
        return g0 * ctx.k + g1 * y, None, g1 * x


def test_custom_function_records_and_differentiates():
    x = mg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = LegendrePolynomial3.apply(x)
    assert y.requires_grad and y.grad_fn.name == "LegendrePolynomial3"
    np.testing.assert_allclose(y.detach().numpy(), 0.5 * (5 * x.detach().numpy() ** 3 - 3 * x.detach().numpy()),
                               rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.5 * (5 * x.detach().numpy() ** 2 - 1), rtol=1e-6)
    with mg.no_grad():
        assert not LegendrePolynomial3.apply(x).requires_grad  # no record outside grad mode


def test_custom_functions_gradcheck_through_their_backward():
    x = mg.randn(4, dtype=mg.float64, requires_grad=True)
    w = mg.randn(4, dtype=mg.float64, requires_grad=True)
    assert mg.gradcheck(LegendrePolynomial3.apply, (x,))
    assert mg.gradgradcheck(LegendrePolynomial3.apply, (x,))  # the backward is made of ops
    pieces = lambda a, b: ScaledSplit.apply(a, 2.5, b)[:2]  # noqa: E731  (the differentiable ones)
    assert mg.gradcheck(pieces, (x, w)) and mg.gradgradcheck(pieces, (x, w))


def test_custom_function_several_outputs():
    x = mg.tensor([1.0, 3.0], requires_grad=True)
    y = mg.tensor([2.0, -1.0], requires_grad=True)
    a, b, i, s = ScaledSplit.apply(x, 2.0, y)
    assert a.requires_grad and b.requires_grad and not i.requires_grad and not s.requires_grad
    assert i.item() == 1 and s.tolist() == [3.0, 0.0]
    (a.sum() + (b * b).sum()).backward()
    # d/dx = 2 + 2 b y = 2 + 2 x y^2,  d/dy = 2 b x = 2 x^2 y
    assert x.grad.tolist() == [2 + 2 * 1 * 4, 2 + 2 * 3 * 1] and y.grad.tolist() == [4.0, -18.0]


def test_custom_function_ctx():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, x, y, scale):
            seen["needs"] = ctx.needs_input_grad
            seen["recording"] = mg.is_grad_enabled()
            return x * y * scale

        @staticmethod
        def backward(ctx, g):
            return g, None, None

    x, y = mg.tensor(1.0, requires_grad=True), mg.tensor(2.0)
    Probe.apply(x, y, 3.0)
    assert seen == {"needs": (True, False, False), "recording": False}  # forward is not recorded
    with pytest.raises(TypeError, match="save_for_backward: argument 0 is a float"):
        class Bad(Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(1.0)
                return x

            @staticmethod
            def backward(ctx, g):
                return g

        Bad.apply(x)


def test_custom_function_saved_tensors_are_version_checked():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    y = LegendrePolynomial3.apply(h)
    h.add_(1)  # h was saved for backward
    with pytest.raises(RuntimeError, match="modified by an inplace operation: saved tensor 0 of LegendrePolynomial3"):
        y.sum().backward()


def test_custom_function_wrong_backward_is_reported():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    class NotATensor(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.numpy()

    x = mg.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="TooFew.backward returned 1 gradients, but forward took 2"):
        TooFew.apply(x, x).backward()
    with pytest.raises(TypeError, match="NotATensor.backward returned a ndarray"):
        NotATensor.apply(x).backward()


def test_custom_function_setup_context_and_once_differentiable():
    class Square(Function):
        @staticmethod
        def forward(x):
            return x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        @mg.autograd.once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x

    x = mg.tensor(3.0, requires_grad=True)
    (g,) = mg.grad(Square.apply(x), x, create_graph=True)
    assert g.item() == 6.0
    with pytest.raises(RuntimeError, match="once-differentiable"):
        g.backward()
    with pytest.raises(NotImplementedError, match="mark_dirty"):
        mg.autograd.FunctionCtx(()).mark_dirty(x)


def test_custom_function_matches_pytorch():
    torch = pytest.importorskip("torch")

    TorchP3 = load_script("polynomial_legendre.py", "torch").LegendrePolynomial3
    values = np.linspace(-2, 2, 9)
    ours = mg.tensor(values, requires_grad=True)
    theirs = torch.tensor(values, requires_grad=True)
    (g1,) = mg.grad((LegendrePolynomial3.apply(ours) ** 2).sum(), ours, create_graph=True)
    (t1,) = torch.autograd.grad((TorchP3.apply(theirs) ** 2).sum(), theirs, create_graph=True)
    np.testing.assert_allclose(g1.detach().numpy(), t1.detach().numpy(), rtol=1e-12)
    (g2,) = mg.grad(g1.sum(), ours)
    (t2,) = torch.autograd.grad(t1.sum(), theirs)
    np.testing.assert_allclose(g2.numpy(), t2.numpy(), rtol=1e-12)


# -- compositions of the smaller PyTorch names, against PyTorch ---------------------------------


@pytest.mark.torch
def test_compositions_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal(4) + 3
    cases = [
        (lambda m, t: m.cumsum(t[0], 1), lambda t: torch.cumsum(t[0], 1)),
        (lambda m, t: t[0].repeat(2, 1, 3), lambda t: t[0].repeat(2, 1, 3)),
        (lambda m, t: t[0].index_select(1, m.tensor([3, 0, 3])), lambda t: t[0].index_select(1, torch.tensor([3, 0, 3]))),
        (lambda m, t: m.addcmul(t[0], t[1], t[2], value=0.5), lambda t: torch.addcmul(t[0], t[1], t[2], value=0.5)),
        (lambda m, t: m.addcdiv(t[0], t[1], t[2], value=-2), lambda t: torch.addcdiv(t[0], t[1], t[2], value=-2)),
        (lambda m, t: m.nn.functional.normalize(t[0], dim=0), lambda t: torch.nn.functional.normalize(t[0], dim=0)),
        (lambda m, t: t[0].T.contiguous().view_as(t[1]), lambda t: t[0].T.contiguous().view_as(t[1])),
        (lambda m, t: t[2][None].expand_as(t[0]) * t[0], lambda t: t[2][None].expand_as(t[0]) * t[0]),
    ]
    for k, (ours_fn, theirs_fn) in enumerate(cases):
        assert_matches_torch(lambda *ts: ours_fn(mg, ts), lambda *ts: theirs_fn(ts), (a, b, c),
                             rtol=1e-13, atol=1e-14, seed=k)
    for name in ("all", "any"):
        for dim in (None, 0, 1):
            m = a > 0.5
            ours = getattr(mg.tensor(m), name)() if dim is None else getattr(mg.tensor(m), name)(dim)
            theirs = getattr(torch.tensor(m), name)() if dim is None else getattr(torch.tensor(m), name)(dim)
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
# -- optimizers ---------------------------------------------------------------------------------------


def test_optimizer_state_is_a_defaultdict_keyed_by_parameter():
    class SignSGD(optim.Optimizer):
        """A custom optimizer, written as PyTorch's documentation shows."""

        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def _update_group(self, group):
            for p in group["params"]:
                state = self.state[p]  # created on first use
                state["step"] = state.get("step", 0) + 1
                p.array -= group["lr"] * np.sign(p.grad.array)

    w = nn.Parameter(mg.tensor([1.0, -2.0]))
    opt = SignSGD([w])
    (w * mg.tensor([3.0, -1.0])).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.tolist(), [0.9, -1.9], rtol=1e-7)  # w - 0.1 sign([3, -1])
    assert opt.state[w]["step"] == 1
    assert opt.state_dict()["state"] == {0: {"step": 1}}
    adam = optim.Adam([w])
    assert adam.state[w] == {}  # a lookup makes an empty state, and Adam still starts afresh
    w.grad = mg.ones(2)
    adam.step()
    assert adam.state[w]["step"] == 1


# -- arguments PyTorch has and minigrad does not ----------------------------------------------------


@pytest.mark.parametrize("make, names", [
    (lambda: nn.Dropout(0.5, extra=1), ("Dropout", "'extra'", "p=0.5")),
    (lambda: nn.ReLU(True, 3), ("ReLU", "too many positional arguments")),
    (lambda: nn.Identity(), ()),
    (lambda: nn.Linear(3, 4, device="cpu", dtype=mg.float64), ()),
    (lambda: nn.Linear(3, 4, bias=False, frozen=True), ("Linear", "'frozen'", "in_features, out_features")),
    (lambda: optim.Adam([mg.zeros(2, requires_grad=True)], foreach=True), ("Adam", "'foreach'", "amsgrad=False")),
    (lambda: optim.SGD([mg.zeros(2, requires_grad=True)], 0.1, 0.9, maximize=True), ("SGD", "'maximize'", "nesterov")),
    (lambda: optim.lr_scheduler.StepLR(optim.SGD([mg.zeros(2, requires_grad=True)], lr=0.1), 3,
                                       verbose=True), ("StepLR", "'verbose'", "step_size")),
    (lambda: mg.utils.data.DataLoader([1, 2], prefetch_factor=2), ("DataLoader", "'prefetch_factor'", "num_workers=0")),
    (lambda: mg.vision.transforms.Normalize((0.5,), (0.5,), True, 3), ("Normalize", "too many", "mean, std")),
    (lambda: mg.vision.transforms.RandomCrop(3, fil=0), ("RandomCrop", "'fil'", "padding_mode")),
])
def test_a_pytorch_argument_minigrad_lacks_names_the_class_and_what_it_takes(make, names):
    if not names:
        make()  # accepted
        return
    with pytest.raises(TypeError) as info:
        make()
    for part in names:
        assert part in str(info.value)
    assert "docs/differences.md" in str(info.value)


def test_load_takes_pytorchs_arguments(tmp_path):
    path = tmp_path / "checkpoint.pt"  # any file name: the format is minigrad's .npz either way
    mg.save({"w": mg.ones(2)}, path)
    assert mg.load(path, map_location="cpu")["w"].tolist() == [1.0, 1.0]
    assert mg.load(path, map_location=mg.device("cpu"), weights_only=False)["w"].device == "cpu"
    with pytest.raises(TypeError, match="load: map_location must be a device"):
        mg.load(path, map_location={"cuda:0": "cpu"})


def test_dataloader_accepts_workers_and_pinning():
    data = mg.utils.data.TensorDataset(mg.arange(10))
    loader = mg.utils.data.DataLoader(data, batch_size=4, num_workers=2, pin_memory=True,
                                      persistent_workers=True)
    assert [b.tolist() for (b,) in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert loader.num_workers == 2 and loader.pin_memory
    with pytest.raises(ValueError, match="DataLoader: num_workers must be an int >= 0"):
        mg.utils.data.DataLoader(data, num_workers=-1)


# -- thin namespaces --------------------------------------------------------------------------------


def test_utils_data_and_vision_are_the_data_module():
    import minigrad.utils.data as D
    from minigrad.utils.data.distributed import DistributedSampler
    from minigrad.vision import datasets, transforms

    assert D.DataLoader is mg.data.DataLoader and D.random_split is mg.data.random_split
    assert DistributedSampler is mg.data.DistributedSampler
    assert datasets.MNIST is mg.data.MNIST and datasets.FashionMNIST is mg.data.FashionMNIST
    assert transforms.Normalize is mg.data.Normalize and transforms.ToTensor is mg.data.ToTensor


def test_mnist_with_torchvisions_arguments_offline(tmp_path, monkeypatch):
    arrays = make_dataset_dir(tmp_path / "shared" / "mnist", n_train=12, n_test=5, seed=4)
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    t = mg.vision.transforms
    transform = t.Compose([t.ToTensor(), t.Normalize((0.1307,), (0.3081,))])
    # download=True finds the files and does not go to the network
    train = mg.vision.datasets.MNIST("../data", train=True, download=True, transform=transform,
                                     target_transform=lambda y: y * 10)
    image, label = train[3]
    assert isinstance(image, mg.Tensor) and image.shape == (1, 28, 28) and image.dtype == np.float32
    expected = (arrays["train"][0][3].astype(np.float32) / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081)
    np.testing.assert_array_equal(image.numpy()[0], expected)
    assert label == 10 * arrays["train"][1][3]
    xb, yb = next(iter(mg.utils.data.DataLoader(train, batch_size=5)))
    np.testing.assert_array_equal(xb.numpy()[3], image.numpy())
    assert yb.tolist() == [10 * v for v in arrays["train"][1][:5]]
    # torchvision's own layout, root/MNIST/raw/, is found too
    make_dataset_dir(tmp_path / "tv" / "MNIST" / "raw", n_train=7, n_test=2, seed=5)
    assert len(mg.vision.datasets.MNIST(tmp_path / "tv", train=False, download=False)) == 2


# -- transforms ----------------------------------------------------------------------------------------


def test_to_tensor_as_torchvision():
    T = mg.vision.transforms
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = T.ToTensor()(gray)
    assert isinstance(out, mg.Tensor) and out.shape == (1, 3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy()[0], gray.astype(np.float32) / np.float32(255))
    color = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)  # (H, W, C)
    np.testing.assert_array_equal(T.ToTensor()(color).numpy(), color.transpose(2, 0, 1) / np.float32(255))
    floats = np.full((2, 2), 3.5)
    assert T.ToTensor()(floats).dtype == np.float64 and T.ToTensor()(floats).numpy().max() == 3.5
    batch = np.stack([gray, gray + 1])
    np.testing.assert_array_equal(T.ToTensor().apply_batch(batch)[1], T.ToTensor()(gray + 1).numpy())
    with pytest.raises(ValueError, match="ToTensor: expected \\(H, W\\) or \\(H, W, C\\) images"):
        T.ToTensor()(np.zeros(5))


def test_normalize_per_channel():
    T = mg.vision.transforms
    x = np.random.default_rng(0).random((2, 3, 4, 4)).astype(np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = T.Normalize(mean, std).apply_batch(x)
    m, s = np.array(mean, np.float32)[:, None, None], np.array(std, np.float32)[:, None, None]
    np.testing.assert_array_equal(out, (x - m) / s)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(T.Normalize(0.5, 0.25).apply_batch(x), (x - np.float32(0.5)) / np.float32(0.25))
    assert T.Normalize((0.1307,), (0.3081,)).mean == 0.1307  # one value: a number, as before
    with pytest.raises(ValueError, match="Normalize: 3 channel means/stds need examples of shape \\(C=3, H, W\\)"):
        T.Normalize(mean, std).apply_batch(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="Normalize: std must be nonzero"):
        T.Normalize((0.5, 0.5), (0.2, 0.0))
    with pytest.raises(ValueError, match="Normalize: mean has 3 values and std 2"):
        T.Normalize(mean, (0.2, 0.2))
    with pytest.raises(TypeError, match="Normalize: mean must be a number or a sequence of numbers"):
        T.Normalize("0.5", 0.2)


def test_normalize_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random((3, 5, 5)).astype(np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    theirs = torch.from_numpy(x).sub(torch.tensor(mean).view(-1, 1, 1)).div(torch.tensor(std).view(-1, 1, 1))
    ours = mg.vision.transforms.Normalize(mean, std)(mg.tensor(x))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())  # the same float32 arithmetic


def test_crops_and_flips():
    T = mg.vision.transforms
    xb = np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6)
    np.testing.assert_array_equal(T.CenterCrop(3).apply_batch(xb), xb[:, 1:4, 2:5])
    np.testing.assert_array_equal(T.CenterCrop((5, 6))(xb[0]), xb[0])
    big = T.CenterCrop(8)(xb[0])  # padded with zeros around, as torchvision
    assert big.shape == (8, 8) and big[1:6, 1:7].tolist() == xb[0].tolist() and big[0].sum() == 0
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0).apply_batch(xb), xb[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0).apply_batch(xb), xb)
    mg.manual_seed(3)
    crops = T.RandomCrop(4, padding=2).apply_batch(np.repeat(xb[:1], 50, axis=0))
    assert crops.shape == (50, 4, 4)
    padded = np.pad(xb[0], 2)
    windows = {padded[i:i + 4, j:j + 4].tobytes() for i in range(6) for j in range(7)}
    assert all(c.tobytes() in windows for c in crops)  # every crop is a window of the padded image
    assert len({c.tobytes() for c in crops}) > 10  # and each example draws its own
    mg.manual_seed(3)
    np.testing.assert_array_equal(T.RandomCrop(4, padding=2).apply_batch(np.repeat(xb[:1], 50, axis=0)), crops)
    chw = T.RandomCrop((2, 3), padding_mode="reflect", padding=1)(np.zeros((3, 5, 6), np.float32))
    assert chw.shape == (3, 2, 3)  # the last two axes are the image's
    with pytest.raises(ValueError, match="RandomCrop: a \\(9, 9\\) window does not fit"):
        T.RandomCrop(9)(xb[0])
    assert T.RandomCrop(9, pad_if_needed=True)(xb[0]).shape == (9, 9)


def test_transforms_after_to_tensor_see_tensors():
    """As in torchvision: a Lambda after ToTensor receives a Tensor, per example and in the
    DataLoader's batches alike."""
    T = mg.vision.transforms
    seen = []

    def flatten(x):
        seen.append(type(x))
        return x.view(-1)  # Tensor.view (NumPy's view would take a dtype)

    pipeline = T.Compose([T.ToTensor(), T.Lambda(flatten)])
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    single = pipeline(images[0])
    batch = pipeline.apply_batch(images)
    assert single.shape == (16,) and batch.shape == (3, 16) and set(seen) == {mg.Tensor}
    np.testing.assert_array_equal(batch[0], single.numpy())
