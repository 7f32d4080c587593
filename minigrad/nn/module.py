"""Module: the base class of every layer and model (PyTorch's ``nn.Module``).

A Module owns three kinds of named things, registered by plain attribute assignment:

* **parameters** (``self.weight = Parameter(...)``): trainable leaves, in ``parameters()``;
* **buffers** (``self.register_buffer("running_mean", t)``): state that is saved and moved
  with the model but not trained (BatchNorm's running statistics);
* **sub-modules** (``self.fc1 = Linear(...)``): children, so a model is a tree.

How it stays cheap: every registered object also lives in the instance ``__dict__``, so
``self.weight`` is an ordinary attribute lookup (no ``__getattr__`` on the hot path of a
forward step).  Only assignment goes through ``__setattr__``, which keeps the three
registries (``_parameters``, ``_buffers``, ``_modules``; insertion-ordered dicts) in step.
``__call__`` is a direct call of ``forward``.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from .._arguments import CheckedArguments
from ..autograd import no_grad
from ..tensor import Tensor, device_and_dtype
from ..tensor import clear_grads
from .parameter import Parameter


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict(..., strict=False)`` could not match."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _count(n):
    return f"{n:,}"


class Module(CheckedArguments):
    """Base class of layers and models: subclass it, assign parameters and sub-modules in
    ``__init__`` (after ``super().__init__()``) and write ``forward``."""

    training = True

    def __init__(self):
        d = self.__dict__
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent"] = set()
        d["_modules"] = {}
        d["training"] = True

    # -- registration ------------------------------------------------------------------
    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError(
                    f"cannot assign parameter {name!r} before Module.__init__() was called: "
                    f"call super().__init__() first in {type(self).__name__}.__init__"
                )
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError(
                    f"cannot assign module {name!r} before Module.__init__() was called: "
                    f"call super().__init__() first in {type(self).__name__}.__init__"
                )
            self._forget(name)
            d["_modules"][name] = value
        elif params is not None:
            if name in params:
                if value is not None:
                    raise TypeError(
                        f"cannot assign {type(value).__name__} as parameter {name!r} of "
                        f"{type(self).__name__} (nn.Parameter or None expected); wrap it in "
                        "nn.Parameter(...) or change the existing one in place under no_grad()"
                    )
                params[name] = None
            elif name in d["_modules"]:
                if value is not None:
                    raise TypeError(
                        f"cannot assign {type(value).__name__} as child module {name!r} of "
                        f"{type(self).__name__} (nn.Module or None expected)"
                    )
                d["_modules"][name] = None
            elif name in d["_buffers"]:
                if value is not None and not isinstance(value, Tensor):
                    raise TypeError(
                        f"cannot assign {type(value).__name__} as buffer {name!r} of "
                        f"{type(self).__name__} (Tensor or None expected)"
                    )
                d["_buffers"][name] = value
        d[name] = value

    def _forget(self, name):
        """Remove ``name`` from every registry (it is about to be registered anew)."""
        d = self.__dict__
        d["_parameters"].pop(name, None)
        d["_buffers"].pop(name, None)
        d["_non_persistent"].discard(name)
        d["_modules"].pop(name, None)

    def __delattr__(self, name):
        if "_parameters" in self.__dict__:
            self._forget(name)
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        self._check_name(name, "register_parameter")
        if param is None:
            self._forget(name)
            self._parameters[name] = None
            self.__dict__[name] = None
            return
        if not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter: {name!r} must be an nn.Parameter or None, "
                f"got {type(param).__name__}"
            )
        setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Register ``tensor`` (or None) as a buffer: moved by ``to()``, saved in
        ``state_dict()`` when ``persistent``, never trained."""
        self._check_name(name, "register_buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer: buffer {name!r} must be a Tensor or None, got {type(tensor).__name__}"
            )
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer: {name!r} is a Parameter; use register_parameter")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        self.__dict__[name] = tensor

    def add_module(self, name, module):
        """Register ``module`` (or None) as a child called ``name``."""
        self._check_name(name, "add_module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be an nn.Module or None, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def _check_name(self, name, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{what}: call Module.__init__() before registering {name!r}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{what}: the name must be a non-empty string without '.', got {name!r}")

    # -- walking the tree ----------------------------------------------------------------
    def named_modules(self, prefix="", memo=None):
        """(qualified name, module) for this module and every descendant, each once."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, kind, prefix, recurse):
        """(qualified name, tensor) pairs from each module's ``kind`` dict (_parameters or
        _buffers), each tensor once even if shared."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, t in getattr(mod, kind).items():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix="", recurse=True):
        """(qualified name, parameter) pairs, each parameter once even if shared."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        """(qualified name, buffer) pairs, each buffer once even if shared."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only=False):
        """The number of scalar parameters (shared ones counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def get_submodule(self, target):
        mod = self
        for part in target.split(".") if target else []:
            child = mod._modules.get(part)
            if child is None:
                raise AttributeError(f"get_submodule: {type(mod).__name__} has no submodule {part!r} (in {target!r})")
            mod = child
        return mod

    def apply(self, fn):
        """Call ``fn(m)`` on every sub-module (children first), then on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ---------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (Dropout active, BatchNorm uses batch statistics) recursively."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's ``.grad`` (to None, or to zeros in place)."""
        clear_grads(self.parameters(), set_to_none)

    # -- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, ...)")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- state dict ------------------------------------------------------------------------------
    def _state_items(self, prefix=""):
        """(qualified name, tensor) for every parameter and persistent buffer, in tree order."""
        for mod_prefix, mod in self.named_modules(prefix):
            dot = mod_prefix + "." if mod_prefix else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    yield dot + name, p
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    yield dot + name, b

    def state_dict(self, prefix="", keep_vars=False):
        """An ordered dict ``name -> Tensor`` of every parameter and persistent buffer.

        The tensors share memory with the model (detached, unless ``keep_vars``); save them
        with ``minigrad.save`` and restore with ``load_state_dict``."""
        out = OrderedDict()
        for name, t in self._state_items(prefix):
            out[name] = t if keep_vars else t.detach()  # shares memory and version counter
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` into this model's parameters and buffers, in place.

        Each value keeps the dtype and device of the model's tensor it is copied into.
        Everything is validated before anything is written, so on error the model is left
        untouched.  With ``strict`` (default) missing and unexpected keys are errors; without,
        they are returned as ``(missing_keys, unexpected_keys)``.  A shape mismatch is always
        an error."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(
                f"load_state_dict: expected a dict of name -> tensor, got {type(state_dict).__name__}"
            )
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        staged = []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            array = value.array if isinstance(value, Tensor) else value
            if not hasattr(array, "shape"):
                try:
                    array = np.asarray(array)
                except Exception:
                    problems.append(f"{name}: cannot convert a {type(value).__name__} to an array")
                    continue
            if tuple(array.shape) != target.shape:
                problems.append(
                    f"size mismatch for {name}: copying a param with shape {tuple(array.shape)} from "
                    f"checkpoint, the shape in the current model is {target.shape}"
                )
                continue
            if array.dtype.kind not in "biuf":
                problems.append(f"{name}: unsupported dtype {array.dtype}")
                continue
            staged.append((target, array))
        if strict:
            if unexpected:
                problems.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                problems.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(problems)
            )
        # convert every value first (may fail on a device problem), then write
        converted = []
        for target, array in staged:
            array = backend.to_device(array, target.device)
            converted.append((target, array.astype(target.dtype, copy=False)))
        for target, array in converted:
            target.array[...] = array
            target._version += 1
        return IncompatibleKeys(missing, unexpected)

    # -- devices and dtypes ----------------------------------------------------------------------
    def to(self, *args, device=None, dtype=None, non_blocking=False):
        """Move parameters and buffers to a device and/or cast floating ones to a dtype, in
        place (the Parameter objects stay the same, so an optimizer keeps working).

        ``m.to("cuda")``, ``m.to(np.float64)``, ``m.to("cpu", np.float32)``, ``m.to(dtype=...)``
        (``non_blocking`` is accepted, as in Tensor.to)."""
        device, dtype = device_and_dtype("Module.to", args, device, dtype)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to: only floating dtypes are allowed, got {dtype}")
        if device is not None:
            device.xp  # raises a clear error when the device is unavailable

        def convert(array):
            if device is not None:
                array = backend.to_device(array, device)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype, copy=False)
            return array

        with no_grad():
            for t in list(self.parameters()) + list(self.buffers()):
                t.array = convert(t.array)
                if t.grad is not None:
                    t.grad.array = convert(t.grad.array)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # -- printing ----------------------------------------------------------------------------------
    def extra_repr(self):
        """The text inside the parentheses of this module's line (override in layers)."""
        return ""

    def _repr_lines(self):
        own = sum(p.numel() for p in self.parameters())
        children = list(self._modules.items())
        head = type(self).__name__ + "(" + self.extra_repr()
        if not children:
            return [head + ")"], own
        lines = [head]
        for name, child in children:
            if child is None:
                lines.append(f"  ({name}): None")
                continue
            sub, n = child._repr_lines()
            sub[0] = f"({name}): " + sub[0]
            if n:
                # the count goes on the child's opening line (a leaf's only line)
                sub[0] += f"  # {_count(n)} params"
            lines.extend("  " + s for s in sub)
        lines.append(")")
        return lines, own

    def __repr__(self):
        lines, total = self._repr_lines()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        if total:
            note = f"  # total: {_count(total)} params"
            if trainable != total:
                note += f" ({_count(trainable)} trainable)"
            lines[-1] += note
        return "\n".join(lines)
