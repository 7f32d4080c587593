"""Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.

With g the gradient and x the parameter (PyTorch's formulation, docs/optim.md):

    d = g + weight_decay * x
    buf = d                                          (first step)
    buf = momentum * buf + (1 - dampening) * d       (later steps)
    d = d + momentum * buf   (nesterov)   or   d = buf
    x = x - lr * d
"""
from .. import backend
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

        params = _with_grads("SGD", group)
        # no momentum buffer yet: this step starts it (buf = d), in a kernel call of its own
        first = [momentum != 0 and state.get(p, {}).get("momentum_buffer") is None for p in params]
        for (k, is_first), batch in _batches(params, first):
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
                    state.setdefault(p, {})["momentum_buffer"] = _wrap(bufs[i])
                p._version += 1


def _with_grads(name, group):
    """The group's parameters that have a gradient, each checked against its gradient (same
    shape, dtype and device), so a fused kernel never reads past the end of one."""
    params = []
    for i, p in enumerate(group["params"]):
        g = p.grad
        if g is None:
            continue
        if g.shape != p.shape or g.dtype != p.dtype or type(g.array) is not type(p.array):
            raise ValueError(
                f"{name}: parameter {i} of shape {p.shape} ({p.dtype}, {p.device}) has a gradient of "
                f"shape {g.shape} ({g.dtype}, {g.device}); they must match"
            )
        params.append(p)
    return params


def _batches(params, keys):
    """Group the parameters that one kernel call can take: the same kernel table (device) and
    the same key (one per parameter); yields ((table, key), indices into params)."""
    batches = {}
    for i, (p, key) in enumerate(zip(params, keys)):
        batches.setdefault((backend.kernels(p.array), key), []).append(i)
    return batches.items()


def _states(optimizer, params, fresh):
    """Each parameter's state: the one it has, or ``fresh(p)`` before its first step (kept
    only once that step went through: ``_commit``)."""
    states = []
    for p in params:
        st = optimizer.state.get(p)
        # (an empty dict too: state is a defaultdict, so a lookup may have made one)
        states.append(st if st else fresh(p))
    return states


def _commit(optimizer, params, states, step=None):
    """After a kernel call updated ``params``: keep their states, count the step (``step``, or
    one more), and bump each parameter's version (a graph that saved the old value refuses
    to backward)."""
    for p, st in zip(params, states):
        st["step"] = st["step"] + 1 if step is None else step
        optimizer.state[p] = st
        p._version += 1


def _wrap(array):
    from ..tensor import Tensor

    return Tensor._wrap(array)


def _zeros_like(p):
    """A zero state buffer for parameter p (its shape, dtype and device), as a Tensor."""
    return _wrap(backend.array_module(p.array).zeros_like(p.array))


def _check_nonnegative(name, group, keys):
    """Each hyper-parameter ``keys`` of ``group`` must be >= 0 (ValueError naming it)."""
    for key in keys:
        if group[key] < 0:
            raise ValueError(f"{name}: invalid {key} {group[key]} (must be >= 0)")


def _check_lr(name, lr):
    if not isinstance(lr, (int, float)) or isinstance(lr, bool):
        raise TypeError(f"{name}: lr must be a number, got {type(lr).__name__}")
    if lr < 0:
        raise ValueError(f"{name}: invalid learning rate {lr} (must be >= 0)")
