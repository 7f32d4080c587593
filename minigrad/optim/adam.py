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
import numpy as np

from ..tensor import Tensor
from ._fused import adam_update
from .optimizer import Optimizer
from .sgd import _check_lr


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        _check_lr(type(self).__name__, lr)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _validate(self, group):
        name = type(self).__name__
        _check_lr(name, group["lr"])
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
        state = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            x = p.data
            st = state.get(p)
            if st is None:
                xp_zeros = np.zeros_like if type(x) is np.ndarray else _zeros_like
                st = state[p] = {"step": 0, "exp_avg": Tensor._wrap(xp_zeros(x)),
                                 "exp_avg_sq": Tensor._wrap(xp_zeros(x))}
                if amsgrad:
                    st["max_exp_avg_sq"] = Tensor._wrap(xp_zeros(x))
            st["step"] += 1
            vmax = None
            if amsgrad:
                if "max_exp_avg_sq" not in st:  # amsgrad switched on after some steps
                    st["max_exp_avg_sq"] = Tensor._wrap(st["exp_avg_sq"].data.copy())
                vmax = st["max_exp_avg_sq"].data
            adam_update(x, grad.data, st["exp_avg"].data, st["exp_avg_sq"].data, vmax,
                        lr, b1, b2, eps, st["step"], wd, self._decoupled)
            p._version += 1


class AdamW(Adam):
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


def _zeros_like(x):
    from .. import backend

    return backend.array_module(x).zeros_like(x)
