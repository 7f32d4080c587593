"""Optimizer: the base class of SGD, Adam, AdamW, RMSprop, Adagrad and Adadelta (PyTorch's
``torch.optim.Optimizer``), and what every update uses (``_states``, ``_commit``, ``_batches``).

An optimizer holds

* ``param_groups``: a list of dicts, each ``{"params": [Parameter, ...], "lr": ..., ...}``;
  hyper-parameters missing from a group are filled from the optimizer's ``defaults``;
* ``state``: a ``defaultdict(dict)``, ``Parameter -> dict`` of per-parameter buffers (momentum,
  Adam's moments), as in PyTorch: a custom optimizer writes ``state = self.state[p]`` and
  fills it on the first step (``if not state: ...``).

``step()`` updates the parameters in place on their raw arrays (nothing is recorded on the tape),
and bumps each parameter's version counter so a stale saved graph is detected.
``state_dict()`` / ``load_state_dict()`` use PyTorch's layout: parameters are numbered in the
order they appear across the groups, and the state is keyed by that number, so a checkpoint
does not depend on object identities and a run can be resumed exactly.
"""
import copy
from collections import defaultdict

import numpy as np

from .. import backend
from .._arguments import CheckedArguments
from ..autograd import enable_grad
from ..tensor import Tensor, clear_grads


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer(CheckedArguments):
    def __init__(self, params, defaults):
        self._check_group(defaults)  # the hyper-parameters first (PyTorch's order), then the params
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, got a "
                "single Tensor; pass [tensor] or model.parameters()"
            )
        param_groups = list(params)
        if not param_groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group of parameters with its own hyper-parameters (e.g. a smaller lr)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: a param group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("add_param_group: the group has no 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("add_param_group: parameters must be an ordered collection, not a set")
        params = list(params)
        name = type(self).__name__
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, but parameter {i} is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (parameter {i}, shape {p.shape})")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating-point tensors, parameter {i} has dtype {p.dtype}")
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required optimization parameter {key}")
            group.setdefault(key, default)
        self._check_group(group)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids) or existing & set(ids):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group (or twice in one)")
        self.param_groups.append(group)

    def _check_group(self, group):
        """The hyper-parameters of ``group`` (or of the defaults): lr here, the rest in
        ``_validate``."""
        if group.get("lr", required) is not required:
            self._check_lr(group["lr"])
        self._validate(group)

    def _validate(self, group):
        """Check a group's hyper-parameters other than lr (subclasses raise ValueError with a
        clear message)."""

    def zero_grad(self, set_to_none=True):
        """Clear the ``.grad`` of every parameter (to None, or to zeros in place)."""
        clear_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure`` (re-evaluates and returns
        the loss) is called first when given, and its loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:  # every gradient checked before any parameter moves
            self._check_grads(group["params"])
        for group in self.param_groups:
            self._state_follows(group["params"])
            self._update_group(group)
        return loss

    def _state_follows(self, params):
        """Per-parameter state (momentum, Adam's moments) moves to its parameter's device and
        dtype: after ``model.to("cuda")`` or ``model.double()`` the next step just works."""
        for p in params:
            st = self.state.get(p)
            if not st:
                continue
            for v in st.values():
                if isinstance(v, Tensor) and (type(v.array) is not type(p.array) or v.array.dtype != p.array.dtype):
                    v.array = backend.to_device(v.array, p.device).astype(p.array.dtype, copy=False)

    def _update_group(self, group):
        raise NotImplementedError(f"{type(self).__name__}._update_group")

    # -- what every update uses (SGD, Adam, RMSprop, Adagrad, Adadelta) -----------------------
    def _check_grads(self, params):
        """Each ``.grad`` must match its parameter: the fused update kernels read them side by
        side.  (Assigning ``.grad`` checks this too, but ``p.grad.array`` can be replaced; and
        the kernels check sizes themselves, so that no direct caller reads past an array.)"""
        for i, p in enumerate(params):
            g = p._grad
            if g is not None and (g.array.shape != p.array.shape or g.array.dtype != p.array.dtype
                                  or type(g.array) is not type(p.array)):  # (the device: NumPy or CuPy)
                raise RuntimeError(
                    f"{type(self).__name__}.step: parameter {i} has shape {p.shape} ({p.dtype}, "
                    f"{p.device}) but its .grad has shape {g.shape} ({g.dtype}, {g.device}); they must match")

    @staticmethod
    def _with_grads(group):
        """The group's parameters that have a gradient (checked by step() beforehand)."""
        return [p for p in group["params"] if p.grad is not None]

    def _states(self, params, fresh):
        """Each parameter's state: the one it has, or ``fresh(p)`` before its first step (kept
        only once that step went through: ``_commit``).  (An empty dict counts as none: state
        is a defaultdict, so a mere lookup makes one.)"""
        return [self.state.get(p) or fresh(p) for p in params]

    def _commit(self, params, states, step=None):
        """After a kernel call updated ``params``: keep their states, count the step (``step``,
        or one more), and bump each parameter's version (a graph that saved the old value then
        refuses to backward)."""
        for p, st in zip(params, states):
            st["step"] = st["step"] + 1 if step is None else step
            self.state[p] = st
            p._version += 1

    @staticmethod
    def _batches(params, keys):
        """Group the parameters that one kernel call can take: the same kernel table (device)
        and the same key (one per parameter); yields ((table, key), indices into params)."""
        batches = {}
        for i, (p, key) in enumerate(zip(params, keys)):
            batches.setdefault((backend.kernels(p.array), key), []).append(i)
        return batches.items()

    @staticmethod
    def _zeros(p, value=0):
        """A state buffer for parameter p (its shape, dtype and device) filled with ``value``."""
        return Tensor._wrap(backend.array_module(p.array).full(p.shape, value, dtype=p.dtype))

    def _check_lr(self, lr):
        name = type(self).__name__
        if not isinstance(lr, (int, float)) or isinstance(lr, bool):
            raise TypeError(f"{name}: lr must be a number, got {type(lr).__name__}")
        if lr < 0:
            raise ValueError(f"{name}: invalid learning rate {lr} (must be >= 0)")

    def _check_nonnegative(self, group, keys):
        """Each hyper-parameter ``keys`` of ``group`` must be >= 0 (ValueError naming it)."""
        for key in keys:
            if group[key] < 0:
                raise ValueError(f"{type(self).__name__}: invalid {key} {group[key]} (must be >= 0)")

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self):
        """``{"state": {index: {name: Tensor or number}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Tensors in the state are copies, so later steps do not change a saved dict."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[index[id(p)]] = {
                        k: (Tensor._wrap(v.array.copy()) if isinstance(v, Tensor) else v)
                        for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and per-parameter state saved by ``state_dict()``.

        Validated first (same number of groups and of parameters in each, matching shapes), so
        on error the optimizer is unchanged.  Buffers take each parameter's dtype and device."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the loaded state dict has {len(saved_groups)} parameter "
                f"groups, the optimizer has {len(self.param_groups)}"
            )
        by_index = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            saved_params = list(saved["params"])
            if len(saved_params) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} has {len(group['params'])} parameters, "
                    f"the loaded one has {len(saved_params)}"
                )
            for idx, p in zip(saved_params, group["params"]):
                by_index[int(idx)] = p
        new_state = {}
        for idx, entry in state_dict["state"].items():
            idx = int(idx)
            if idx not in by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter {idx}, which no group lists")
            p = by_index[idx]
            restored = {}
            for key, value in entry.items():
                if isinstance(value, Tensor) or isinstance(value, np.ndarray) or hasattr(value, "__cuda_array_interface__"):
                    array = value.array if isinstance(value, Tensor) else value
                    if array.ndim == 0 and key == "step":
                        restored[key] = int(array.item()) if array.dtype.kind in "iu" else float(array.item())
                        continue
                    if tuple(array.shape) != p.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: state {key!r} of parameter {idx} has shape "
                            f"{tuple(array.shape)}, the parameter has shape {p.shape}"
                        )
                    array = backend.to_device(array, p.device)
                    restored[key] = Tensor._wrap(array.astype(p.dtype, copy=True))
                else:
                    restored[key] = copy.deepcopy(value)
            new_state[p] = restored
        # everything checked: now write
        for group, saved in zip(self.param_groups, saved_groups):
            for key, value in saved.items():
                if key != "params":
                    group[key] = tuple(value) if key == "betas" else _plain(value)
        self.state = defaultdict(dict, new_state)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _plain(value):
    """Numbers that went through a file come back as 0-d arrays; make them Python numbers."""
    if isinstance(value, Tensor):
        value = value.numpy()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    return value
