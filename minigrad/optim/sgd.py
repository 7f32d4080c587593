"""Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.

With g the gradient and x the parameter (PyTorch's formulation, docs/optim.md):

    d = g + weight_decay * x
    buf = d                                          (first step)
    buf = momentum * buf + (1 - dampening) * d       (later steps)
    d = d + momentum * buf   (nesterov)   or   d = buf
    x = x - lr * d
"""
from .. import backend
from ..tensor import Tensor
from .optimizer import Optimizer, required


class SGD(Optimizer):
    def __init__(self, params, lr=required, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _validate(self, group):
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

        params = self._with_grads(group)
        # no momentum buffer yet: this step starts it (buf = d), in a kernel call of its own
        first = [momentum != 0 and state.get(p, {}).get("momentum_buffer") is None for p in params]
        for (k, is_first), batch in self._batches(params, first):
            ps = [params[i] for i in batch]
            xp = backend.array_module(ps[0].array)
            bufs = None
            if momentum != 0:
                bufs = ([xp.empty_like(p.array) for p in ps] if is_first
                        else [state[p]["momentum_buffer"].array for p in ps])
            k.sgd_step_([p.array for p in ps], [p.grad.array for p in ps], bufs,
                        lr, wd, momentum, dampening, nesterov, is_first)
            for i, p in enumerate(ps):
                if is_first:  # kept only once the step went through
                    state[p]["momentum_buffer"] = Tensor._wrap(bufs[i])
                p._version += 1
