"""Adagrad and Adadelta (against the published rules written out and torch.optim, bad
gradients; checkpoint resume is in tests/test_optim.py with the other optimizers) and the schedulers MultiStepLR, ExponentialLR and OneCycleLR (against
torch.optim.lr_scheduler step for step, and resume)."""
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.optim import lr_scheduler
from tests.conftest import DEVICES
from tests.test_optim import (STEPS, assert_follows_rule, assert_matches_torch, kernel_path,  # noqa: F401
                              make_params, run)


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
def test_updates_match_the_rules_step_by_step(name, kw, order, kernel_path, device):
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


@pytest.mark.parametrize("make", [lambda ps: optim.Adagrad(ps, lr=0.1), lambda ps: optim.Adadelta(ps)])
def test_a_gradient_that_does_not_match_its_parameter_never_reaches_the_update(make):
    p = nn.Parameter(mg.ones(1000))
    opt = make([p])
    p.grad = mg.ones(1000)
    p.grad.array = np.ones(1, dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"step: parameter 0 has shape \(1000,\).*\.grad has shape \(1,\)"):
        opt.step()
    np.testing.assert_array_equal(p.numpy(), np.ones(1000))
    assert p not in opt.state


@pytest.mark.parametrize("name, kernel, args", [
    ("adagrad_step_", "adagrad_step_", lambda P: ([P(3)], [P(3)], [P(4)], 0.1, 0.0, 0.0, 1e-10, 1)),
    ("adadelta_step_", "adadelta_step_", lambda P: ([P(3)], [P(3)], [P(3)], [P(2)], 1.0, 0.9, 1e-6, 0.0))])
def test_kernels_refuse_inconsistent_lists_before_writing(name, kernel, args):
    from minigrad.backend import cpu_kernels

    arrays = args(lambda n: np.ones(n))
    with pytest.raises(ValueError, match=name):
        getattr(cpu_kernels, kernel)(*arrays)
    assert np.all(arrays[0][0] == 1)


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.Adagrad(p, lr=-0.1), "Adagrad: invalid learning rate -0.1"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "Adagrad: invalid lr_decay -1"),
    (lambda p: optim.Adagrad(p, eps=-1e-3), "Adagrad: invalid eps"),
    (lambda p: optim.Adadelta(p, rho=1.5), r"Adadelta: invalid rho 1.5 \(must be in \[0, 1\]\)"),
    (lambda p: optim.Adadelta(p, weight_decay=-0.1), "Adadelta: invalid weight_decay -0.1"),
])
def test_hyperparameter_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params())


# -- schedulers ------------------------------------------------------------------------------------

SCHEDULES = {
    "multistep": (lambda s, o: s.MultiStepLR(o, milestones=[3, 7, 7, 12], gamma=0.5), "SGD", 16),
    "exponential": (lambda s, o: s.ExponentialLR(o, gamma=0.9), "SGD", 12),
    "onecycle-sgd": (lambda s, o: s.OneCycleLR(o, max_lr=0.5, total_steps=25), "SGD", 25),
    "onecycle-adam-linear-3phase": (lambda s, o: s.OneCycleLR(o, max_lr=[0.01, 0.02], epochs=4, steps_per_epoch=5,
                                                              anneal_strategy="linear", three_phase=True,
                                                              pct_start=0.25), "Adam", 20),
    "onecycle-no-momentum": (lambda s, o: s.OneCycleLR(o, max_lr=0.1, total_steps=10, cycle_momentum=False,
                                                       div_factor=10, final_div_factor=100), "Adagrad", 10),
}


def _optimizer(module, name, params):
    kw = {"SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(lr=1e-3), "Adagrad": dict(lr=0.1)}[name]
    return getattr(module, name)([{"params": [p], "lr": kw["lr"] * (i + 1)} for i, p in enumerate(params)],
                                 **kw)


def _history(opt, sched, n):
    """(lrs, momentum or beta1) of both groups after each of n steps."""
    out = []
    for step in range(n):
        if step:
            opt.step()
            sched.step()
        out.append([v for g in opt.param_groups
                    for v in (g["lr"], g["betas"][0] if "betas" in g else g.get("momentum", 0.0))])
    return np.array(out)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedulers_match_torch(name):
    torch = pytest.importorskip("torch")
    make, opt_name, n = SCHEDULES[name]
    ours = _optimizer(optim, opt_name, [mg.tensor([1.0], requires_grad=True) for _ in range(2)])
    theirs = _optimizer(torch.optim, opt_name, [torch.zeros(1, requires_grad=True) for _ in range(2)])
    got = _history(ours, make(lr_scheduler, ours), n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (PyTorch's advice about the order of step calls)
        expected = _history(theirs, make(torch.optim.lr_scheduler, theirs), n)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_schedules_by_hand_and_resume(tmp_path):
    p = mg.tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.MultiStepLR(opt, milestones=[2, 4, 4], gamma=0.5)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(5):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.125, 0.125]
    opt = optim.SGD([p], lr=2.0)
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.5)
    for _ in range(3):
        sched.step()
    assert sched.get_last_lr() == [0.25]
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.5, anneal_strategy="linear")
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 25) and opt.param_groups[0]["momentum"] == 0.95
    for _ in range(4):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0) and opt.param_groups[0]["momentum"] == pytest.approx(0.85)
    mg.save({"sched": sched.state_dict(), "optim": opt.state_dict()}, tmp_path / "s.npz")
    rest = []
    for _ in range(5):
        sched.step()
        rest.append(opt.param_groups[0]["lr"])
    assert rest[-1] == pytest.approx(1.0 / 25 / 1e4)  # the last step: initial_lr / final_div_factor
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 11 times, but the schedule has total_steps=10"):
        sched.step()
        sched.step()
    ckpt = mg.load(tmp_path / "s.npz")
    opt2 = optim.SGD([p], lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt["optim"])
    sched2 = lr_scheduler.OneCycleLR(opt2, max_lr=1.0, total_steps=10, pct_start=0.5, anneal_strategy="linear")
    sched2.load_state_dict(ckpt["sched"])
    resumed = []
    for _ in range(5):
        sched2.step()
        resumed.append(opt2.param_groups[0]["lr"])
    assert resumed == rest


def test_scheduler_errors():
    opt = optim.SGD([mg.tensor([1.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="MultiStepLR: milestones must be non-negative integers"):
        lr_scheduler.MultiStepLR(opt, milestones=[2.5])
    with pytest.raises(ValueError, match="ExponentialLR: gamma must be >= 0"):
        lr_scheduler.ExponentialLR(opt, gamma=-1)
    with pytest.raises(ValueError, match=r"OneCycleLR: define either total_steps or \(epochs and steps_per_epoch\)"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="OneCycleLR: anneal_strategy must be 'cos' or 'linear'"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="exp")
    with pytest.raises(ValueError, match="OneCycleLR: expected 1 values for max_lr"):
        lr_scheduler.OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=5)
    adagrad = optim.Adagrad([mg.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="cycle_momentum=True needs an optimizer with momentum or betas"):
        lr_scheduler.OneCycleLR(adagrad, max_lr=1.0, total_steps=5)
