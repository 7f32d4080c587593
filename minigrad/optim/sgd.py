"""Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.

With g the gradient and x the parameter (PyTorch's formulation, docs/optim.md):

    d = g + weight_decay * x
    buf = d                                          (first step)
    buf = momentum * buf + (1 - dampening) * d       (later steps)
    d = d + momentum * buf   (nesterov)   or   d = buf
    x = x - lr * d
"""
from ._fused import sgd_update
from .optimizer import Optimizer, required


class SGD(Optimizer):
    def __init__(self, params, lr=required, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr is not required:
            _check_lr("SGD", lr)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_lr("SGD", group["lr"])
        if group["momentum"] < 0:
            raise ValueError(f"SGD: invalid momentum {group['momentum']} (must be >= 0)")
        if group["weight_decay"] < 0:
            raise ValueError(f"SGD: invalid weight_decay {group['weight_decay']} (must be >= 0)")
        if not 0 <= group["dampening"] <= 1:
            raise ValueError(f"SGD: invalid dampening {group['dampening']} (must be in [0, 1])")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening = 0 "
                             f"(got momentum={group['momentum']}, dampening={group['dampening']})")

    def _update_group(self, group):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        wd, nesterov = group["weight_decay"], group["nesterov"]
        state = self.state
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            buf, first = None, False
            if momentum != 0:
                st = state.get(p)
                if st is None or st.get("momentum_buffer") is None:
                    buf = p.data.copy()  # any values: the first step overwrites it
                    state[p] = st = {"momentum_buffer": _wrap(buf)}
                    first = True
                else:
                    buf = st["momentum_buffer"].data
            sgd_update(p.data, grad.data, buf, lr, wd, momentum, dampening, nesterov, first)
            p._version += 1


def _wrap(array):
    from ..tensor import Tensor

    return Tensor._wrap(array)


def _check_lr(name, lr):
    if not isinstance(lr, (int, float)) or isinstance(lr, bool):
        raise TypeError(f"{name}: lr must be a number, got {type(lr).__name__}")
    if lr < 0:
        raise ValueError(f"{name}: invalid learning rate {lr} (must be >= 0)")
