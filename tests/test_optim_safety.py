"""Optimizer safety and the training utilities around it: a gradient that does not match its
parameter never reaches the fused kernels; gradient clipping and ReduceLROnPlateau behave as
PyTorch's (checked against torch when it is installed)."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps),
                                  lambda ps: optim.RMSprop(ps, momentum=0.9, centered=True)])
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
