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


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _validate(self, group):
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Adadelta: invalid rho {group['rho']} (must be in [0, 1])")
        self._check_nonnegative(group, ("eps", "weight_decay"))

    def _update_group(self, group):
        params = self._with_grads(group)
        states = self._states(params, lambda p: {"step": 0, "square_avg": self._zeros(p), "acc_delta": self._zeros(p)})
        for (k, _), batch in self._batches(params, [None] * len(params)):
            ps, sts = [params[i] for i in batch], [states[i] for i in batch]
            k.adadelta_step_([p.array for p in ps], [p.grad.array for p in ps],
                             [st["square_avg"].array for st in sts], [st["acc_delta"].array for st in sts],
                             group["lr"], group["rho"], group["eps"], group["weight_decay"])
            self._commit(ps, sts)
