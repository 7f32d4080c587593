"""Adadelta (Zeiler 2012; PyTorch's ``torch.optim.Adadelta``), with g the gradient:

    g = g + weight_decay * x
    v = rho * v + (1 - rho) * g^2                 running mean of the squared gradient
    d = sqrt(u + eps) / sqrt(v + eps) * g         the step
    u = rho * u + (1 - rho) * d^2                 running mean of the squared step
    x = x - lr * d

The ratio of the two root-mean-squares gives d the units of x (a step's size is measured by
the recent steps, not set by hand), so the original method needs no learning rate: ``lr``
(default 1.0) only scales it.  v and u start at 0.  The update is the kernel table's
``adadelta_step_``.
"""
from .optimizer import Optimizer
from .sgd import _batches, _check_lr, _check_nonnegative, _commit, _states, _with_grads, _zeros_like


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        _check_lr("Adadelta", lr)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _validate(self, group):
        _check_lr("Adadelta", group["lr"])
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Adadelta: invalid rho {group['rho']} (must be in [0, 1])")
        _check_nonnegative("Adadelta", group, ("eps", "weight_decay"))

    def _update_group(self, group):
        params = _with_grads("Adadelta", group)
        states = _states(self, params, lambda p: {"step": 0, "square_avg": _zeros_like(p), "acc_delta": _zeros_like(p)})
        for (k, _), batch in _batches(params, [None] * len(params)):
            ps, sts = [params[i] for i in batch], [states[i] for i in batch]
            k.adadelta_step_([p.array for p in ps], [p.grad.array for p in ps],
                             [st["square_avg"].array for st in sts], [st["acc_delta"].array for st in sts],
                             group["lr"], group["rho"], group["eps"], group["weight_decay"])
            _commit(self, ps, sts)
