"""Learning-rate schedulers (minigrad/optim/lr_scheduler.py): StepLR, CosineAnnealingLR,
LambdaLR, MultiStepLR, ExponentialLR, OneCycleLR, LinearLR and SequentialLR (a warm-up, then
another schedule) and ReduceLROnPlateau: closed forms, PyTorch's schedulers step for step,
saving and resuming through minigrad.save, and errors.  (Optimizers driven by a scheduler
against torch.optim: tests/test_optim.py.)"""
import math
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.optim import lr_scheduler


def _params(n):
    return [mg.tensor([1.0], requires_grad=True) for _ in range(n)]


def _sgd(lr=1.0):
    return optim.SGD(_params(1), lr=lr)


def _opt(lr=1e-3, groups=1):
    return optim.AdamW([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(_params(groups))], lr=lr)


def _lrs(sched, n):
    """The learning rates of every group, now and after each of ``n`` steps: shape (n + 1, groups)."""
    out = [list(sched.get_last_lr())]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
        assert out[-1] == [g["lr"] for g in sched.optimizer.param_groups]
    return np.array(out)


# -- StepLR, CosineAnnealingLR, LambdaLR ---------------------------------------------------------


def test_step_lr():
    sched = lr_scheduler.StepLR(_sgd(0.8), step_size=3, gamma=0.5)
    expected = [0.8 * 0.5 ** (t // 3) for t in range(10)]
    np.testing.assert_allclose(_lrs(sched, 9)[:, 0], expected, rtol=1e-15)
    assert sched.optimizer.param_groups[0]["lr"] == sched.get_last_lr()[0]


def test_cosine_annealing_lr():
    base, eta_min, T = 0.5, 0.01, 6
    sched = lr_scheduler.CosineAnnealingLR(_sgd(base), T_max=T, eta_min=eta_min)
    expected = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T)) / 2 for t in range(13)]
    got = _lrs(sched, 12)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert got[T] == pytest.approx(eta_min) and got[2 * T] == pytest.approx(base)


def test_lambda_lr_per_group():
    a, b = _params(2)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 2.0}], lr=1.0)
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 0.9 ** e, lambda e: 1 / (e + 1)])
    for _ in range(4):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [pytest.approx(0.9 ** 4), pytest.approx(2.0 / 5)]


def test_scheduler_state_dict_round_trip():
    sched = lr_scheduler.StepLR(_sgd(1.0), step_size=2, gamma=0.1)
    _lrs(sched, 5)
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 5
    other = lr_scheduler.StepLR(_sgd(1.0), step_size=7, gamma=0.3)
    other.load_state_dict(state)
    assert (other.step_size, other.gamma, other.last_epoch) == (2, 0.1, 5)
    assert other.get_last_lr() == sched.get_last_lr()


def test_scheduler_errors():
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        lr_scheduler.StepLR(_sgd(), step_size=0)
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        lr_scheduler.CosineAnnealingLR(_sgd(), T_max=0)
    with pytest.raises(ValueError, match="expected 1 lr_lambdas"):
        lr_scheduler.LambdaLR(_sgd(), [lambda e: 1, lambda e: 1])
    with pytest.raises(TypeError, match="lr_lambda must be callable"):
        lr_scheduler.LambdaLR(_sgd(), 0.5)
    with pytest.raises(TypeError, match="expected an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(_sgd(), step_size=1, last_epoch=3)


# -- MultiStepLR, ExponentialLR, OneCycleLR --------------------------------------------------

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


def test_multistep_exponential_and_onecycle_errors():
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


# -- LinearLR and SequentialLR (warm-up) ----------------------------------------------------


def test_linear_lr_closed_form():
    sched = lr_scheduler.LinearLR(_opt(0.5), start_factor=0.1, end_factor=0.9, total_iters=4)
    expected = [0.5 * (0.1 + 0.8 * min(t, 4) / 4) for t in range(8)]
    np.testing.assert_allclose(_lrs(sched, 7)[:, 0], expected, rtol=1e-15)


SEQUENTIAL = {
    "warmup-cosine": lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.01, total_iters=10),
                                                     s.CosineAnnealingLR(o, T_max=20, eta_min=1e-4)], milestones=[10]),
    "three-parts": lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.5, total_iters=3),
                                                   s.StepLR(o, step_size=2, gamma=0.5),
                                                   s.CosineAnnealingLR(o, T_max=5)], milestones=[4, 9]),
    "decay-first": lambda s, o: s.SequentialLR(o, [s.CosineAnnealingLR(o, T_max=6, eta_min=1e-5),
                                                   s.LinearLR(o, start_factor=0.2, end_factor=0.6, total_iters=4)],
                                               milestones=[6]),
}


@pytest.mark.parametrize("name", sorted(SEQUENTIAL))
def test_sequential_lr_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours = SEQUENTIAL[name](lr_scheduler, _opt(groups=2))
    tparams = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    topt = torch.optim.AdamW([{"params": [p], "lr": 1e-3 * (i + 1)} for i, p in enumerate(tparams)], lr=1e-3)
    theirs = SEQUENTIAL[name](torch.optim.lr_scheduler, topt)
    got = _lrs(ours, 30)
    expected = [theirs.get_last_lr()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (PyTorch's advice about the order of step calls)
        for _ in range(30):
            topt.step()
            theirs.step()
            expected.append(theirs.get_last_lr())
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-12)


def test_sequential_lr_resumes_from_a_checkpoint(tmp_path):
    opt = _opt()
    sched = SEQUENTIAL["three-parts"](lr_scheduler, opt)
    reference = _lrs(SEQUENTIAL["three-parts"](lr_scheduler, _opt()), 20)
    _lrs(sched, 7)
    mg.save({"sched": sched.state_dict(), "optim": opt.state_dict()}, tmp_path / "s.npz")
    ckpt = mg.load(tmp_path / "s.npz")
    opt2 = _opt()
    opt2.load_state_dict(ckpt["optim"])
    sched2 = SEQUENTIAL["three-parts"](lr_scheduler, opt2)
    sched2.load_state_dict(ckpt["sched"])
    assert sched2.get_last_lr() == sched.get_last_lr() == [opt2.param_groups[0]["lr"]]
    np.testing.assert_allclose(_lrs(sched2, 13), reference[7:], rtol=1e-15)


def test_warmup_and_sequential_errors():
    opt = _opt()
    with pytest.raises(ValueError, match=r"LinearLR: start_factor must be in \(0, 1\]"):
        lr_scheduler.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="LinearLR: total_iters must be a positive integer"):
        lr_scheduler.LinearLR(opt, total_iters=0)
    a, b = lr_scheduler.LinearLR(opt), lr_scheduler.StepLR(opt, 2)
    with pytest.raises(ValueError, match="expected 1 milestones for 2 schedulers, got 2"):
        lr_scheduler.SequentialLR(opt, [a, b], milestones=[1, 2])
    with pytest.raises(ValueError, match="drives another optimizer"):
        lr_scheduler.SequentialLR(_opt(), [a, b], milestones=[3])
    with pytest.raises(TypeError, match=r"schedulers\[1\] must be an LRScheduler"):
        lr_scheduler.SequentialLR(opt, [a, object()], milestones=[3])


# -- ReduceLROnPlateau ---------------------------------------------------------------------


def test_reduce_lr_on_plateau_waits_patience_epochs_then_cools_down():
    p = nn.Parameter(mg.ones(1))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    lrs = []
    for loss in [5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]:
        sched.step(loss)
        lrs.append(opt.param_groups[0]["lr"])
    # improves at epochs 1-2; 3 bad epochs -> halve; 1 cooldown epoch; 3 more bad -> halve ...
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    for _ in range(10):
        sched.step(4)
    assert opt.param_groups[0]["lr"] == 0.2  # min_lr
    state = sched.state_dict()
    fresh = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    fresh.load_state_dict(state)
    assert fresh.best == 4 and fresh.patience == 2 and fresh.cooldown == 1
    with pytest.raises(ValueError, match="factor must be < 1.0"):
        optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.5)


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", [dict(), dict(mode="max", threshold_mode="abs", threshold=0.1, patience=1),
                                    dict(factor=0.3, patience=0, cooldown=2, min_lr=0.01)])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    metrics = np.abs(np.sin(np.arange(40) * 0.7)) + np.linspace(1, 0, 40)
    p = nn.Parameter(mg.ones(1))
    ours = optim.SGD([p], lr=1.0)
    s1 = optim.lr_scheduler.ReduceLROnPlateau(ours, **kwargs)
    tp = torch.nn.Parameter(torch.ones(1))
    theirs = torch.optim.SGD([tp], lr=1.0)
    s2 = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    for m in metrics:
        s1.step(m)
        s2.step(m)
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"])
