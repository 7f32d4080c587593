"""Adagrad (Duchi, Hazan & Singer 2011; PyTorch's ``torch.optim.Adagrad``), with g the gradient
at step t = 1, 2, ...:

    g = g + weight_decay * x
    s = s + g^2                                   the sum of every squared gradient so far
    x = x - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

Each coordinate's step shrinks with the gradients it has seen: rarely-updated coordinates
(rare features, rare words) keep large steps.  s only grows, so every step size decays, which
is what RMSprop and Adadelta (running means instead of a sum) were made to avoid.  s starts at
``initial_accumulator_value``.  The update is the kernel table's ``adagrad_step_``.
"""
from .optimizer import Optimizer


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, defaults)

    def _validate(self, group):
        self._check_nonnegative(group, ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"))

    def _update_group(self, group):
        params = self._with_grads(group)
        states = self._states(params, lambda p: {"step": 0, "sum": self._zeros(p, group["initial_accumulator_value"])})
        # one fused kernel call per step count (the same for all, unless parameters joined later)
        for (k, step), batch in self._batches(params, [st["step"] + 1 for st in states]):
            ps, sts = [params[i] for i in batch], [states[i] for i in batch]
            k.adagrad_step_([p.array for p in ps], [p.grad.array for p in ps], [st["sum"].array for st in sts],
                            group["lr"], group["lr_decay"], group["weight_decay"], group["eps"], step)
            self._commit(ps, sts, step)
