"""LinearLR and SequentialLR (a warm-up, then another schedule): the values of PyTorch's
schedulers step for step, saving and resuming through minigrad.save, and errors."""
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import optim
from minigrad.optim import lr_scheduler


def _opt(lr=1e-3, groups=1):
    params = [mg.tensor([1.0], requires_grad=True) for _ in range(groups)]
    return optim.AdamW([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)], lr=lr)


def _lrs(sched, n):
    out = [list(sched.get_last_lr())]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
        assert out[-1] == [g["lr"] for g in sched.optimizer.param_groups]
    return np.array(out)


def test_linear_lr_closed_form():
    sched = lr_scheduler.LinearLR(_opt(0.5), start_factor=0.1, end_factor=0.9, total_iters=4)
    expected = [0.5 * (0.1 + 0.8 * min(t, 4) / 4) for t in range(8)]
    np.testing.assert_allclose(_lrs(sched, 7)[:, 0], expected, rtol=1e-15)


SCHEDULES = {
    "warmup-cosine": lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.01, total_iters=10),
                                                     s.CosineAnnealingLR(o, T_max=20, eta_min=1e-4)], milestones=[10]),
    "three-parts": lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.5, total_iters=3),
                                                   s.StepLR(o, step_size=2, gamma=0.5),
                                                   s.CosineAnnealingLR(o, T_max=5)], milestones=[4, 9]),
    "decay-first": lambda s, o: s.SequentialLR(o, [s.CosineAnnealingLR(o, T_max=6, eta_min=1e-5),
                                                   s.LinearLR(o, start_factor=0.2, end_factor=0.6, total_iters=4)],
                                               milestones=[6]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_sequential_lr_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours = SCHEDULES[name](lr_scheduler, _opt(groups=2))
    tparams = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    topt = torch.optim.AdamW([{"params": [p], "lr": 1e-3 * (i + 1)} for i, p in enumerate(tparams)], lr=1e-3)
    theirs = SCHEDULES[name](torch.optim.lr_scheduler, topt)
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
    sched = SCHEDULES["three-parts"](lr_scheduler, opt)
    reference = _lrs(SCHEDULES["three-parts"](lr_scheduler, _opt()), 20)
    _lrs(sched, 7)
    mg.save({"sched": sched.state_dict(), "optim": opt.state_dict()}, tmp_path / "s.npz")
    ckpt = mg.load(tmp_path / "s.npz")
    opt2 = _opt()
    opt2.load_state_dict(ckpt["optim"])
    sched2 = SCHEDULES["three-parts"](lr_scheduler, opt2)
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
