"""Adam and AdamW.

Adam (Kingma & Ba), with g the gradient at step t = 1, 2, ...:

    g = g + weight_decay * x                   (Adam only: L2 penalty folded into the gradient)
    m = beta1 * m + (1 - beta1) * g            first moment (mean)
    v = beta2 * v + (1 - beta2) * g^2          second moment (uncentred variance)
    m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)       bias correction (m, v start at 0)
    x = x - lr * m_hat / (sqrt(v_hat) + eps)

AdamW (Loshchilov & Hutter) decouples the decay from the adaptive step: before the update
``x = x * (1 - lr * weight_decay)`` and no L2 term in g.  ``amsgrad`` uses the running maximum
of v in the denominator.
"""
from ..tensor import Tensor
from .optimizer import Optimizer


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _validate(self, group):
        name = type(self).__name__
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {i}: {b} (must be in [0, 1))")
        group["betas"] = tuple(betas)
        if group["eps"] < 0:
            raise ValueError(f"{name}: invalid epsilon value {group['eps']} (must be >= 0)")
        if group["weight_decay"] < 0:
            raise ValueError(f"{name}: invalid weight_decay value {group['weight_decay']} (must be >= 0)")

    def _update_group(self, group):
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        wd, amsgrad = group["weight_decay"], group["amsgrad"]
        params = self._with_grads(group)
        states = self._states(params, lambda p: {"step": 0, "exp_avg": self._zeros(p), "exp_avg_sq": self._zeros(p)})
        for st in states:
            if amsgrad and "max_exp_avg_sq" not in st:  # (also when amsgrad is switched on later)
                st["max_exp_avg_sq"] = Tensor._wrap(st["exp_avg_sq"].array.copy())
        # one fused kernel call per step count (the same for all, unless parameters joined later)
        for (k, step), batch in self._batches(params, [st["step"] + 1 for st in states]):
            ps, sts = [params[i] for i in batch], [states[i] for i in batch]
            k.adam_step_([p.array for p in ps], [p.grad.array for p in ps],
                         [st["exp_avg"].array for st in sts], [st["exp_avg_sq"].array for st in sts],
                         [st["max_exp_avg_sq"].array for st in sts] if amsgrad else None,
                         lr, b1, b2, eps, step, wd, self._decoupled)
            self._commit(ps, sts, step)


class AdamW(Adam):
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
