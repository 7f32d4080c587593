"""Optimizers (minigrad/optim): SGD, Adam and AdamW, RMSprop, Adagrad and Adadelta, each update
against the published rule written out plainly; gradients that do not match their parameter
never reach the fused kernels; param groups, validation, state dtype and device,
checkpoint/resume, and parity with torch.optim when torch is installed.  The learning-rate
schedulers: tests/test_optim_lr_scheduler.py."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.backend import cpu_kernels
from minigrad.optim import lr_scheduler
from tests.conftest import DEVICES

# -- helpers --------------------------------------------------------------------------------

SHAPES = [(3, 4), (5,), ()]


def make_params(dtype=np.float64, seed=0, order="C", device="cpu"):
    rng = np.random.default_rng(seed)
    out = []
    for s in SHAPES:
        a = rng.standard_normal(s).astype(dtype)
        if order == "F" and a.ndim == 2:
            a = np.asfortranarray(a)  # non-contiguous in C order: the NumPy fallback path
        out.append(nn.Parameter(mg.from_numpy(a) if device == "cpu" else mg.tensor(a, device=device)))
    return out


def grad_sequence(steps, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def run(opt, params, grads, sched=None):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = mg.tensor(g.copy(), device=p.device)
        opt.step()
        if sched is not None:
            sched.step()


STEPS = 6


def assert_follows_rule(make_opt, rule, order, device, rtol, atol):
    """STEPS updates of the optimizer ``make_opt(params)`` against ``rule(x0, grads)`` (the
    update written out in NumPy, returning x after each step), compared after every step."""
    params = make_params(order=order, device=device)
    x0 = [p.numpy().copy() for p in params]
    grads = grad_sequence(STEPS)
    opt = make_opt(params)
    expected = [rule(x, [g[i] for g in grads]) for i, x in enumerate(x0)]
    for step, gs in enumerate(grads):
        run(opt, params, [gs])
        for i, p in enumerate(params):
            np.testing.assert_allclose(p.numpy(), expected[i][step], rtol=rtol, atol=atol)
    return opt, params


@pytest.fixture(params=["numba", "numpy"])
def kernel_path(request, monkeypatch):
    """Every update runs through the fused numba kernel and through the NumPy fallback."""
    monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", "1" if request.param == "numpy" else "0")
    return request.param


# -- the update rules, written out ------------------------------------------------------------


def sgd_reference(x0, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """SGD as published in the PyTorch docs (momentum buffer starts as the first gradient)."""
    x, buf, out = x0.copy(), None, []
    for g in grads:
        d = g + weight_decay * x
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        x = x - lr * d
        out.append(x.copy())
    return out


def adam_reference(x0, grads, lr, b1, b2, eps, weight_decay=0.0, decoupled=False, amsgrad=False):
    """Adam (Kingma & Ba, with PyTorch's eps placement) and AdamW (Loshchilov & Hutter)."""
    x = x0.copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    vmax = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            x = x * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            v_hat = vmax / (1 - b2 ** t)
        else:
            v_hat = v / (1 - b2 ** t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(x.copy())
    return out


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_matches_update_rule_step_by_step(kw, order, kernel_path, device):
    assert_follows_rule(lambda ps: optim.SGD(ps, **kw), lambda x, gs: sgd_reference(x, gs, **kw),
                        order, device, rtol=1e-13, atol=1e-14)


ADAM_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=1e-2, amsgrad=True),
    dict(lr=3e-3, betas=(0.0, 0.5), weight_decay=0.05, amsgrad=True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("decoupled", [False, True], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_adam_and_adamw_match_update_rule_step_by_step(kw, order, decoupled, kernel_path, device):
    cls = optim.AdamW if decoupled else optim.Adam
    full = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01 if decoupled else 0.0, amsgrad=False)
    full.update(kw)
    b1, b2 = full.pop("betas")
    opt, params = assert_follows_rule(lambda ps: cls(ps, **kw),
                                      lambda x, gs: adam_reference(x, gs, b1=b1, b2=b2, decoupled=decoupled, **full),
                                      order, device, rtol=1e-12, atol=1e-13)
    assert opt.state[params[0]]["step"] == STEPS


def rmsprop_reference(x0, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    """RMSprop as in PyTorch's documentation (square average, grad average and buffer start at 0)."""
    x, v, a, buf, out = x0.copy(), np.zeros_like(x0), np.zeros_like(x0), np.zeros_like(x0), []
    for g in grads:
        g = g + weight_decay * x
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            s = np.sqrt(v - a * a) + eps
        else:
            s = np.sqrt(v) + eps
        if momentum:
            buf = momentum * buf + g / s
            x = x - lr * buf
        else:
            x = x - lr * g / s
        out.append(x.copy())
    return out


RMSPROP_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, alpha=0.9, eps=1e-6),
    dict(lr=1e-2, momentum=0.9),
    dict(lr=1e-2, centered=True),
    dict(lr=3e-3, alpha=0.5, weight_decay=0.1, momentum=0.5, centered=True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("kw", RMSPROP_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_rmsprop_matches_update_rule_step_by_step(kw, order, device):
    opt, params = assert_follows_rule(lambda ps: optim.RMSprop(ps, **kw), lambda x, gs: rmsprop_reference(x, gs, **kw),
                                      order, device, rtol=1e-12, atol=1e-13)
    assert opt.state[params[0]]["step"] == STEPS
    assert ("momentum_buffer" in opt.state[params[0]]) == bool(kw.get("momentum"))
    assert ("grad_avg" in opt.state[params[0]]) == bool(kw.get("centered"))


@pytest.mark.torch
@pytest.mark.parametrize("kw", RMSPROP_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_rmsprop_matches_torch(kw):
    assert_matches_torch("RMSprop", kw)


def assert_matches_torch(name, kw):
    """optim.<name> and torch.optim.<name> with the hyper-parameters ``kw``: 8 steps, the same."""
    torch = pytest.importorskip("torch")
    params = make_params()
    theirs = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in params]
    ours_opt, their_opt = getattr(optim, name)(params, **kw), getattr(torch.optim, name)(theirs, **kw)
    for gs in grad_sequence(8):
        for p, t, g in zip(params, theirs, gs):
            p.grad, t.grad = mg.tensor(g.copy()), torch.tensor(g.copy())
        ours_opt.step()
        their_opt.step()
    for p, t in zip(params, theirs):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_and_numpy_paths_agree(dtype, monkeypatch):
    """The fused kernel and the fallback round identically enough to be interchangeable."""
    results = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("MINIGRAD_DISABLE_NUMBA", flag)
        params = make_params(dtype)
        opt = optim.Adam(params, lr=1e-2, weight_decay=0.1, amsgrad=True)
        run(opt, params, grad_sequence(10, dtype))
        results[flag] = [p.numpy().copy() for p in params]
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for a, b in zip(results["0"], results["1"]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
def test_update_is_in_place_and_bumps_version(device):
    for opt_cls, kw in [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, {}), (optim.AdamW, {})]:
        params = make_params(np.float32, device=device)
        arrays = [p.array for p in params]
        opt = opt_cls(params, **kw)
        run(opt, params, grad_sequence(2, np.float32))
        for p, a in zip(params, arrays):
            assert p.array is a
            assert p._version == 2
            assert p.dtype == np.float32


def test_parameters_without_grad_are_skipped():
    params = make_params()
    before = [p.numpy().copy() for p in params]
    params[0].grad = mg.ones(*SHAPES[0], dtype=np.float64)
    opt = optim.Adam(params, lr=0.1)
    opt.step()
    assert not np.array_equal(params[0].numpy(), before[0])
    for p, b in zip(params[1:], before[1:]):
        np.testing.assert_array_equal(p.numpy(), b)
        assert p not in opt.state


def test_zero_grad():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    for p in params:
        p.grad = mg.ones_like(p)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_with_closure_returns_loss():
    w = nn.Parameter(mg.tensor([3.0], dtype=np.float64))
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0
    assert w.item() == 3.0 - 0.25 * 6.0  # w - lr * 2w


@pytest.mark.parametrize("device", DEVICES)
def test_training_a_model_reduces_the_loss(device):
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).to(device)
    x = mg.randn(32, 4)
    y = (x.numpy() @ np.array([[1.0], [-2.0], [0.5], [0.0]], dtype=np.float32))
    x, y = x.to(device), mg.tensor(y, device=device)
    opt = optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


class _CallLog:
    """Wraps a kernel of the CPU table and records the parameter lists it is called with."""

    def __init__(self, monkeypatch, name):
        self.calls = []
        kernel = getattr(cpu_kernels, name)

        def spy(params, *args):
            self.calls.append([p.shape for p in params])
            return kernel(params, *args)

        monkeypatch.setattr(cpu_kernels, name, spy)


def test_one_fused_call_per_group_and_a_first_momentum_step_of_its_own(monkeypatch):
    sgd = _CallLog(monkeypatch, "sgd_step_")
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, grad_sequence(2))
    assert sgd.calls == [SHAPES, SHAPES]  # one call per step for the whole group
    extra = nn.Parameter(mg.ones(2, dtype=np.float64))
    opt.add_param_group({"params": [extra], "lr": 0.01})
    params[0].grad = params[1].grad = params[2].grad = extra.grad = None
    params[1].grad = mg.ones(5, dtype=np.float64)
    extra.grad = mg.ones(2, dtype=np.float64)
    sgd.calls.clear()
    opt.step()
    assert sgd.calls == [[(5,)], [(2,)]]  # one call per group; the new parameter starts its momentum
    assert np.allclose(extra.numpy(), 1 - 0.01)  # first step: buf = g, x -= lr g

    adam = _CallLog(monkeypatch, "adam_step_")
    a, b, c = make_params()
    opt = optim.Adam([a, b], lr=0.1)
    run(opt, [a, b], [[np.ones(SHAPES[0]), np.ones(SHAPES[1])]])
    opt.add_param_group({"params": [c]})
    for p in (a, b, c):
        p.grad = mg.ones_like(p)
    adam.calls.clear()
    opt.step()
    # a and b take their second step, c its first: two calls, grouped by step
    assert sorted(adam.calls) == sorted([[SHAPES[0], SHAPES[1]], [SHAPES[2]]])
    assert [opt.state[p]["step"] for p in (a, b, c)] == [2, 2, 1]


# -- a gradient that does not match its parameter ---------------------------------------------


@pytest.mark.parametrize("opt_cls", [optim.SGD, optim.Adam, optim.RMSprop])
def test_a_gradient_that_does_not_match_its_parameter_raises_before_any_update(opt_cls):
    """A fused kernel must never read past the end of a gradient: checked before anything is
    written, so the parameters and the optimizer state (of an earlier step) stay as they were.
    Assigning such a gradient is refused already (as PyTorch does); a raw swap of ``.grad.array``
    is what reaches step()."""
    params = make_params()
    opt = opt_cls(params, lr=0.1, momentum=0.9) if opt_cls is optim.SGD else opt_cls(params, lr=0.1)
    run(opt, params, grad_sequence(1))
    before = [p.numpy().copy() for p in params]
    state = {k: {n: (v.numpy().copy() if hasattr(v, "numpy") else v) for n, v in st.items()} for k, st in opt.state.items()}
    for p in params:
        p.grad = mg.ones_like(p)
    params[2].grad = None
    for bad, message in [(np.ones(1000), r"\(1000,\) \(float64, cpu\)"),  # for a (5,) parameter
                         (np.ones(5, dtype=np.float32), r"\(5,\) \(float32, cpu\)")]:
        with pytest.raises(RuntimeError, match="cannot be assigned"):
            params[1].grad = mg.from_numpy(bad)
        params[1].grad.array = bad
        with pytest.raises(RuntimeError, match=r"step: parameter 1 has shape \(5,\) \(float64, cpu\) but its \.grad "
                                               r"has shape " + message + "; they must match"):
            opt.step()
        params[1].grad.array = np.ones(5)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    for k, st in opt.state.items():
        for n, v in st.items():
            np.testing.assert_array_equal(v.numpy() if hasattr(v, "numpy") else v, state[k][n])


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps),
                                  lambda ps: optim.RMSprop(ps, momentum=0.9, centered=True),
                                  lambda ps: optim.Adagrad(ps, lr=0.1), lambda ps: optim.Adadelta(ps)])
def test_a_gradient_of_another_shape_never_reaches_the_update(make):
    p = nn.Parameter(mg.ones(1000))
    opt = make([p])
    with pytest.raises(RuntimeError, match=r"shape \(1,\).*shape \(1000,\)"):
        p.grad = mg.ones(1)          # the assignment is refused...
    p.grad = mg.ones(1000)
    p.grad.array = np.ones(1, dtype=np.float32)  # ...and a raw swap is caught by step()
    with pytest.raises(RuntimeError, match=r"step: parameter 0 has shape \(1000,\).*\.grad has shape \(1,\)"):
        opt.step()
    np.testing.assert_array_equal(p.numpy(), np.ones(1000))  # untouched
    assert p not in opt.state
    p.grad.array = np.ones((10, 100), dtype=np.float32)      # same size, another shape
    with pytest.raises(RuntimeError, match=r"\(10, 100\)"):
        opt.step()
    p.grad.array = np.ones(1000, dtype=np.float64)           # another dtype
    with pytest.raises(RuntimeError, match="float64"):
        opt.step()
    np.testing.assert_array_equal(p.numpy(), np.ones(1000))


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad", "Adadelta"])
def test_a_bad_gradient_in_a_later_group_leaves_every_group_untouched(name):
    """step() checks every gradient before it moves any parameter: a bad one in the second
    group must not leave the first group updated (a half-applied step)."""
    a, b = nn.Parameter(mg.ones(4)), nn.Parameter(mg.ones(3))
    opt = getattr(optim, name)([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad, b.grad = mg.ones(4), mg.ones(3)
    b.grad.array = np.ones(2, dtype=np.float32)
    with pytest.raises(RuntimeError, match=rf"{name}.step: parameter 0 has shape \(3,\)"):
        opt.step()
    np.testing.assert_array_equal(a.numpy(), np.ones(4))
    assert not opt.state  # no state was kept for a step that did not happen


@pytest.mark.parametrize("name, kernel, args", [
    ("adagrad_step_", "adagrad_step_", lambda P: ([P(3)], [P(3)], [P(4)], 0.1, 0.0, 0.0, 1e-10, 1)),
    ("adadelta_step_", "adadelta_step_", lambda P: ([P(3)], [P(3)], [P(3)], [P(2)], 1.0, 0.9, 1e-6, 0.0))])
def test_kernels_refuse_inconsistent_lists_before_writing(name, kernel, args):
    arrays = args(lambda n: np.ones(n))
    with pytest.raises(ValueError, match=name):
        getattr(cpu_kernels, kernel)(*arrays)
    assert np.all(arrays[0][0] == 1)


# -- Adagrad and Adadelta ------------------------------------------------------------------


def adagrad_reference(x0, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    """Adagrad as in PyTorch's documentation."""
    x, s, out = x0.copy(), np.full_like(x0, initial_accumulator_value), []
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * x
        s = s + g * g
        x = x - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        out.append(x.copy())
    return out


def adadelta_reference(x0, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """Adadelta as in PyTorch's documentation (Zeiler 2012 with a learning rate)."""
    x, v, u, out = x0.copy(), np.zeros_like(x0), np.zeros_like(x0), []
    for g in grads:
        g = g + weight_decay * x
        v = rho * v + (1 - rho) * g * g
        d = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d * d
        x = x - lr * d
        out.append(x.copy())
    return out


ADAGRAD_CASES = [dict(), dict(lr=0.1, lr_decay=0.05), dict(lr=0.05, weight_decay=0.1),
                 dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)]
ADADELTA_CASES = [dict(), dict(lr=0.5, rho=0.5), dict(weight_decay=0.1, eps=1e-4), dict(lr=2.0, rho=0.99)]
_ids = lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults"  # noqa: E731


RULES = {"Adagrad": adagrad_reference, "Adadelta": adadelta_reference}
CASES = [("Adagrad", kw) for kw in ADAGRAD_CASES] + [("Adadelta", kw) for kw in ADADELTA_CASES]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("name, kw", CASES, ids=[f"{n}-{_ids(kw)}" for n, kw in CASES])
def test_adagrad_and_adadelta_match_update_rule_step_by_step(name, kw, order, kernel_path, device):
    opt, params = assert_follows_rule(lambda ps: getattr(optim, name)(ps, **kw),
                                      lambda x, gs: RULES[name](x, gs, **kw), order, device, rtol=1e-12, atol=1e-13)
    assert opt.state[params[0]]["step"] == STEPS


@pytest.mark.torch
@pytest.mark.parametrize("name, kw", CASES, ids=[f"{n}-{_ids(kw)}" for n, kw in CASES])
def test_adagrad_and_adadelta_match_torch(name, kw):
    assert_matches_torch(name, kw)


def test_adagrad_parameters_joining_later_take_their_own_step_count():
    a, b = make_params()[:2]
    opt = optim.Adagrad([a], lr=0.1, lr_decay=0.5)
    run(opt, [a], [[np.ones((3, 4))]])
    opt.add_param_group({"params": [b], "lr": 0.1, "lr_decay": 0.5})
    b0 = b.numpy().copy()
    a.grad, b.grad = mg.ones(3, 4, dtype=np.float64), mg.ones(5, dtype=np.float64)
    opt.step()
    assert opt.state[a]["step"] == 2 and opt.state[b]["step"] == 1
    np.testing.assert_allclose(b.numpy(), b0 - 0.1 * 1 / (1 + 1e-10), rtol=1e-12)  # its first step: no decay


# -- param groups ----------------------------------------------------------------------------


def test_param_groups_and_defaults():
    a, b, c = make_params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.0
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    opt.add_param_group({"params": c, "lr": 0.01})
    assert opt.param_groups[2]["params"] == [c] and opt.param_groups[2]["nesterov"] is False
    g = np.ones(SHAPES[0])
    a0, b0 = a.numpy().copy(), b.numpy()[0].copy()
    a.grad, b.grad = mg.from_numpy(g.copy()), mg.ones(5, dtype=np.float64)
    opt.step()
    np.testing.assert_allclose(a.numpy(), a0 - 0.1 * g)
    np.testing.assert_allclose(b.numpy()[0], b0 - 0.5)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_optimizer_input_errors():
    p = make_params()[0]
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="required optimization parameter lr"):
        optim.SGD([p])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="parameter 1 is a"):
        optim.Adam([p, 3.0])
    with pytest.raises(ValueError, match="more than one"):
        optim.Adam([p, p])


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.SGD(p, lr=-0.1), "invalid learning rate -0.1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "invalid momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "invalid weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires momentum > 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening = 0"),
    (lambda p: optim.Adam(p, lr=-1e-3), "invalid learning rate"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"beta parameter at index 0: 1.0 \(must be in \[0, 1\)\)"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "beta parameter at index 1"),
    (lambda p: optim.Adam(p, eps=-1e-8), "invalid epsilon"),
    (lambda p: optim.RMSprop(p, alpha=1.5), r"RMSprop: invalid alpha 1.5 \(must be in \[0, 1\]\)"),
    (lambda p: optim.RMSprop(p, momentum=-0.1), "RMSprop: invalid momentum -0.1"),
    (lambda p: optim.RMSprop(p, lr=-1.0), "RMSprop: invalid learning rate"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), "AdamW: invalid weight_decay"),
    (lambda p: optim.Adam([{"params": p, "lr": -2.0}]), "invalid learning rate -2.0"),
    (lambda p: optim.Adagrad(p, lr=-0.1), "Adagrad: invalid learning rate -0.1"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "Adagrad: invalid lr_decay -1"),
    (lambda p: optim.Adagrad(p, eps=-1e-3), "Adagrad: invalid eps"),
    (lambda p: optim.Adadelta(p, rho=1.5), r"Adadelta: invalid rho 1.5 \(must be in \[0, 1\]\)"),
    (lambda p: optim.Adadelta(p, weight_decay=-0.1), "Adadelta: invalid weight_decay -0.1"),
])
def test_hyperparameter_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params())


def test_lr_must_be_a_number():
    with pytest.raises(TypeError, match="lr must be a number"):
        optim.SGD(make_params(), lr="0.1")


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.1),
                                  lambda ps: optim.RMSprop(ps, lr=0.1, momentum=0.9, centered=True)])
def test_optimizer_state_follows_the_parameters_dtype_and_device(make, device):
    mg.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = make(model.parameters())
    x = mg.randn(4, 3)
    for dtype in (np.float32, np.float64):
        model.to(device=device, dtype=dtype)
        loss = model(x.to(device=device, dtype=dtype)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()  # the state made in float32 (on the CPU) follows the parameters
        for p in model.parameters():
            for v in opt.state[p].values():
                if isinstance(v, mg.Tensor):
                    assert v.dtype == np.dtype(dtype) and v.device == p.device


# -- state_dict: stop, save, resume --------------------------------------------------------------


def _model():
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))


def _train_steps(model, opt, sched, batches):
    for x, y in batches:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize("make_opt, make_sched", [
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
     lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    (lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
     lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=1e-4)),
    (lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1),
     lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.9)),
    (lambda p: optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
     lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.9)),
    (lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
     lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.5)),
    (lambda p: optim.Adadelta(p, lr=0.5, weight_decay=1e-3),
     lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9)),
], ids=["SGD+StepLR", "Adam-amsgrad+Cosine", "AdamW+StepLR", "RMSprop-centered-momentum+StepLR",
        "Adagrad+MultiStepLR", "Adadelta+ExponentialLR"])
def test_resume_from_checkpoint_is_bit_identical(make_opt, make_sched, tmp_path):
    rng = np.random.default_rng(0)
    batches = [(mg.from_numpy(rng.standard_normal((4, 5)).astype(np.float32)),
                mg.from_numpy(rng.integers(0, 3, 4))) for _ in range(10)]
    mg.manual_seed(5)
    ref = _model()
    init_state = {k: v.numpy().copy() for k, v in ref.state_dict().items()}
    ref_opt = make_opt(ref.parameters())
    _train_steps(ref, ref_opt, make_sched(ref_opt), batches)

    model = _model()
    model.load_state_dict(init_state)
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    _train_steps(model, opt, sched, batches[:5])
    path = tmp_path / "ckpt.npz"
    mg.save({"model": model.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict()}, path)
    del model, opt, sched

    ckpt = mg.load(path)
    model = _model()  # fresh random weights, replaced by the checkpoint
    model.load_state_dict(ckpt["model"])
    opt = make_opt(model.parameters())
    opt.load_state_dict(ckpt["optim"])
    sched = make_sched(opt)
    sched.load_state_dict(ckpt["sched"])
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
    _train_steps(model, opt, sched, batches[5:])
    for (name, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]


def test_state_dict_layout_and_copies():
    params = make_params()
    opt = optim.Adam(params, lr=1e-2)
    run(opt, params, grad_sequence(2))
    sd = opt.state_dict()
    assert sd["param_groups"] == [{"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                                   "amsgrad": False, "params": [0, 1, 2]}]
    assert sorted(sd["state"]) == [0, 1, 2]
    assert sd["state"][0]["step"] == 2
    saved = sd["state"][0]["exp_avg"].numpy().copy()
    run(opt, params, grad_sequence(1, seed=7))
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"].numpy(), saved)  # a snapshot, not a view


def test_load_state_dict_errors_leave_optimizer_unchanged():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, grad_sequence(1))
    good = opt.state_dict()
    other = optim.SGD(make_params()[:2], lr=0.5)
    with pytest.raises(ValueError, match="group 0 has 3 parameters, the loaded one has 2"):
        opt.load_state_dict(other.state_dict())
    two_groups = optim.SGD([{"params": make_params()[:1]}, {"params": make_params()[1:]}], lr=0.2)
    with pytest.raises(ValueError, match="has 2 parameter groups, the optimizer has 1"):
        opt.load_state_dict(two_groups.state_dict())
    bad = opt.state_dict()
    bad["state"][0]["momentum_buffer"] = mg.zeros(2, 2, dtype=np.float64)
    bad["param_groups"][0]["lr"] = 99.0
    with pytest.raises(ValueError, match=r"shape \(2, 2\), the parameter has shape \(3, 4\)"):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(opt.state[params[0]]["momentum_buffer"].numpy(),
                                  good["state"][0]["momentum_buffer"].numpy())


def test_load_state_dict_casts_buffers_to_parameter_dtype():
    p32 = [nn.Parameter(mg.ones(3))]
    opt = optim.SGD(p32, lr=0.1, momentum=0.9)
    opt.load_state_dict({"state": {0: {"momentum_buffer": mg.ones(3, dtype=np.float64)}},
                         "param_groups": [{"lr": 0.2, "momentum": 0.9, "dampening": 0.0,
                                           "weight_decay": 0.0, "nesterov": False, "params": [0]}]})
    assert opt.state[p32[0]]["momentum_buffer"].dtype == np.float32
    assert opt.param_groups[0]["lr"] == 0.2


# -- parity with torch.optim ---------------------------------------------------------------------

TORCH_CASES = [
    ("SGD", dict(lr=0.1), None),
    ("SGD", dict(lr=0.05, momentum=0.9), None),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2), None),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), None),
    ("SGD", dict(lr=0.1, weight_decay=0.05), None),
    ("Adam", dict(lr=1e-2), None),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1), None),
    ("Adam", dict(lr=1e-2, amsgrad=True), None),
    ("AdamW", dict(lr=1e-2), None),
    ("AdamW", dict(lr=1e-2, weight_decay=0.3, amsgrad=True), None),
    ("SGD", dict(lr=0.1, momentum=0.9), ("StepLR", dict(step_size=4, gamma=0.5))),
    ("Adam", dict(lr=1e-2), ("CosineAnnealingLR", dict(T_max=7, eta_min=1e-3))),
    ("SGD", dict(lr=0.1), ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e)))),
]


@pytest.mark.torch
@pytest.mark.parametrize("name, kw, sched", TORCH_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(TORCH_CASES)])
def test_torch_parity_20_steps(name, kw, sched, kernel_path):
    torch = pytest.importorskip("torch")
    params = make_params(np.float32)
    tparams = [torch.nn.Parameter(torch.from_numpy(p.numpy().copy())) for p in params]
    opt = getattr(optim, name)(params, **kw)
    topt = getattr(torch.optim, name)(tparams, **kw)
    s = ts = None
    if sched is not None:
        sname, skw = sched
        s = getattr(lr_scheduler, sname)(opt, **skw)
        ts = getattr(torch.optim.lr_scheduler, sname)(topt, **skw)
    for step, gs in enumerate(grad_sequence(20, np.float32)):
        for p, tp, g in zip(params, tparams, gs):
            p.grad = mg.from_numpy(g.copy())
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        if s is not None:
            s.step()
            ts.step()
            assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
        for p, tp in zip(params, tparams):
            # float32 rounding: a few ulps per step, accumulated over at most 20 steps
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=2e-5, atol=2e-6,
                                       err_msg=f"step {step}")
