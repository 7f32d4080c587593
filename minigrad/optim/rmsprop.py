"""RMSprop (Hinton's lecture 6e; PyTorch's ``torch.optim.RMSprop``), with g the gradient:

    g = g + weight_decay * x
    v = alpha * v + (1 - alpha) * g^2             running mean of the squared gradient
    s = sqrt(v) + eps                              (centered: a = alpha * a + (1 - alpha) * g,
                                                    s = sqrt(v - a^2) + eps: the running variance)
    x = x - lr * g / s                             (momentum: buf = momentum * buf + g / s,
                                                    x = x - lr * buf)

Each coordinate's step is scaled by the root of its recent squared gradients, like Adam's second
moment without the first moment and without bias correction (v starts at 0, so early steps are
larger than Adam's).  The update is the kernel table's ``rmsprop_step_``.
"""
from .optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered)
        super().__init__(params, defaults)

    def _validate(self, group):
        self._check_nonnegative(group, ("alpha", "eps", "weight_decay", "momentum"))
        if group["alpha"] > 1:
            raise ValueError(f"RMSprop: invalid alpha {group['alpha']} (must be in [0, 1])")

    def _update_group(self, group):
        momentum, centered = group["momentum"], group["centered"]
        params = self._with_grads(group)
        states = self._states(params, lambda p: {"step": 0, "square_avg": self._zeros(p)})
        for p, st in zip(params, states):
            if momentum > 0 and "momentum_buffer" not in st:  # (also when switched on later)
                st["momentum_buffer"] = self._zeros(p)
            if centered and "grad_avg" not in st:
                st["grad_avg"] = self._zeros(p)
        for (k, _), batch in self._batches(params, [None] * len(params)):
            ps, sts = [params[i] for i in batch], [states[i] for i in batch]
            k.rmsprop_step_([p.array for p in ps], [p.grad.array for p in ps],
                            [st["square_avg"].array for st in sts],
                            [st["grad_avg"].array for st in sts] if centered else None,
                            [st["momentum_buffer"].array for st in sts] if momentum > 0 else None,
                            group["lr"], group["alpha"], group["eps"], group["weight_decay"], momentum)
            self._commit(ps, sts)
