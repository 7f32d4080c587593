"""Tensor: an n-dimensional array (NumPy on the CPU, CuPy on the GPU) that remembers how it
was computed, so gradients can flow back through it.

A tensor holds ``array`` (the NumPy or CuPy array), ``grad`` (a Tensor, filled by backward), ``requires_grad``
and, when an op produced it while recording, ``_record``: the op's record on the tape
(see autograd.py).  Operators and methods are thin: each is one op from ``minigrad.ops``, attached
at the end of this file (``x + y`` is ``ops.add(x, y)``).
"""
import numbers
import weakref

import numpy as np

from . import backend
from .backend import Device


class MemoryCounts:
    """Counters shared by every tensor on the same memory (a tensor, its views, ``detach()``):
    ``writes`` counts in-place writes (``Tensor._version``: a record compares it before its
    backward), ``rebinds`` the in-place writes that gave one of these tensors a new record."""

    __slots__ = ("writes", "rebinds")

    def __init__(self, writes=0):
        self.writes, self.rebinds = writes, 0


class Tensor:
    __slots__ = ("array", "_grad", "requires_grad", "_record", "_memory", "_rebinds_seen", "_hooks",
                 "_post_hooks", "_retains_grad", "__weakref__")

    # numpy must defer to Tensor in `ndarray * Tensor`, so Tensor.__rmul__ runs.
    __array_priority__ = 1000

    def __init__(self, *data, dtype=None, device=None, requires_grad=False):
        """``Tensor(data)``: a tensor of ``data`` (an array keeps its dtype and, unless ``device``
        says otherwise, its device; Python numbers and lists become the default float dtype, as
        PyTorch's ``torch.Tensor([1, 2])``).  ``Tensor(2, 3)``: PyTorch's legacy constructor, an
        uninitialised tensor of shape (2, 3) in the default float dtype.  Prefer
        ``minigrad.tensor(data)`` (which keeps integer lists integer) and ``minigrad.empty(2, 3)``."""
        if all(type(n) is int for n in data):  # Python ints (a NumPy integer is data)
            data = np.empty(data if data else (0,), dtype=dtype if dtype is not None else backend.get_default_dtype())
        elif len(data) == 1:
            data = data[0]
        else:
            raise TypeError(f"Tensor: expected one data argument (a number, list or array) or a shape "
                            f"of ints (Tensor(2, 3)), got {len(data)} arguments: {data!r}")
        if isinstance(data, Tensor):
            data = data.array
        if device is not None:
            device = Device(device)
        elif backend.device_of(data) != backend.CPU:
            device = backend.device_of(data)  # a CuPy array stays where it is
        else:
            device = backend.default_device()
        xp = device.xp
        if dtype is not None:
            dtype = np.dtype(dtype)
        elif not hasattr(data, "dtype"):
            dtype = backend.get_default_dtype()  # Python numbers and lists: float, as torch.Tensor
        data = backend.to_device(data, device) if hasattr(data, "dtype") else data
        self._init(xp.asarray(data, dtype=dtype))
        if requires_grad:
            self.requires_grad_(True)

    def _init(self, data):
        """The fast constructor used by ops: wrap an array that is already right."""
        self.array = data
        self._grad = None
        self.requires_grad = False
        self._record = None
        # the counters shared by every tensor on this memory (views, detach()), and the
        # memory's rebind count when this tensor's own record was made: apply refuses a tensor
        # whose history went stale (-1: never stale, for detach())
        self._memory = MemoryCounts()
        self._rebinds_seen = 0
        self._hooks = None
        self._post_hooks = None
        self._retains_grad = False

    # -- what it is -----------------------------------------------------------------------
    @property
    def shape(self):
        return self.array.shape

    @property
    def ndim(self):
        return self.array.ndim

    def size(self, dim=None):
        """The shape, PyTorch's way: ``x.size()`` is the shape tuple, ``x.size(0)`` one length.
        (The number of elements is ``x.numel()``; NumPy's ``.size`` attribute is not a Tensor's.)"""
        if dim is None:
            return self.array.shape
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"size: dim must be an int, got {dim!r}")
        if not -self.array.ndim <= dim < self.array.ndim:
            raise IndexError(f"size: dim {dim} is out of range for a tensor of shape {self.shape}")
        return self.array.shape[dim]

    def numel(self):
        """The number of elements."""
        return self.array.size

    def dim(self):
        return self.array.ndim

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self):
        return backend.device_of(self.array)

    @property
    def is_leaf(self):
        """True for tensors made by the user (not by a recorded op): their grads accumulate."""
        return self._record is None

    @property
    def grad_fn(self):
        """The record on the tape that produced this tensor (None for a leaf)."""
        return self._record

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4, prefix="tensor(")
        extras = []
        if self.dtype != backend.get_default_dtype() and self.dtype.kind == "f" or self.dtype.kind != "f":
            extras.append(f"dtype={self.dtype}")
        if self.device != backend.CPU:
            extras.append(f"device='{self.device}'")
        if self._record is not None:
            extras.append(f"grad_fn=<{self._record.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -- leaving minigrad -------------------------------------------------------------------
    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed; shares memory on the CPU)."""
        return backend.to_device(self.array, backend.CPU)

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    def __format__(self, spec):
        """``f"{loss:.4f}"``: a 0-d tensor formats as its number; other tensors only with an
        empty spec (their repr), as in PyTorch."""
        if not spec:
            return repr(self)
        if self.array.ndim == 0:
            return format(self.item(), spec)
        raise TypeError(f"Tensor.__format__: the format spec {spec!r} applies to 0-d tensors "
                        f"(numbers) only, this one has shape {self.shape}; format "
                        "x.item() or x.tolist() instead")

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    # -- autograd -------------------------------------------------------------------------
    @property
    def grad(self):
        """The gradient accumulated by backward (a Tensor of this shape, dtype and device), or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad: expected a Tensor or None for a tensor of shape {self.shape}, "
                                f"got {type(value).__name__}")
            if value.shape != self.shape or value.dtype != self.dtype or value.device != self.device:
                raise RuntimeError(
                    f"grad: a gradient of shape {value.shape} ({value.dtype}, {value.device}) cannot be "
                    f"assigned to a tensor of shape {self.shape} ({self.dtype}, {self.device}): shape, "
                    "dtype and device must match"
                )
        self._grad = value

    def requires_grad_(self, requires_grad=True):
        """Mark a leaf so backward fills its ``.grad``.  Only floating tensors can."""
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, "
                f"this one has dtype {self.dtype}; convert it with .float() first"
            )
        if not requires_grad and self._record is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """The same data, cut off from the tape (shares memory, and so the version counter:
        modifying the detached tensor in place is caught like modifying this one)."""
        t = Tensor._wrap(self.array)
        t._memory = self._memory
        t._rebinds_seen = -1  # a constant by request: an in-place op recorded through self does not make it stale
        return t

    @property
    def data(self):
        """PyTorch's ``.data``: the values as a new tensor, off the tape and sharing memory, so
        ``p.data.normal_(0, 0.02)`` or ``p.data.zero_()`` writes into ``p``.  Unlike PyTorch's, it
        shares the version counter too (it is ``detach()``): a write through it is still caught
        by a record that saved ``p``.  The raw NumPy/CuPy array is ``.array``."""
        return self.detach()

    @data.setter
    def data(self, value):
        """``x.data = y``: ``x`` now holds ``y``'s values (its array, shared; any shape, dtype or
        device), as in PyTorch.  Records that saved ``x`` see a new version and refuse to use it."""
        array = value.array if isinstance(value, Tensor) else value
        if not hasattr(array, "dtype") or not hasattr(array, "shape"):
            raise TypeError(f"data: expected a Tensor or an array for a tensor of shape {self.shape}, "
                            f"got {type(value).__name__}")
        self.array = array
        self._memory = MemoryCounts(self._version + 1)  # new memory: views of the old array no longer share it
        self._rebinds_seen = 0

    @property
    def _version(self):
        """How many times the data was modified in place (records compare it at backward)."""
        return self._memory.writes

    @_version.setter
    def _version(self, value):
        self._memory.writes = value

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Compute the gradient of this tensor with respect to every leaf that requires grad,
        accumulating it into ``leaf.grad`` (PyTorch's arguments).  ``gradient`` (d(something)/d(this
        tensor), of this shape) is required unless the tensor has one element; ``retain_graph``
        (default: ``create_graph``) keeps the saved values for another backward; ``inputs``
        accumulates into those tensors' ``.grad`` only."""
        autograd.backward(self, gradient, retain_graph, create_graph, inputs)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient.  Returns a handle whose ``remove()`` takes the hook off."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: the tensor does not require grad")
        if self._hooks is None:
            self._hooks = {}
        return _HookHandle(self._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` during backward, right after this leaf's ``.grad`` has received
        its whole gradient for the pass (all uses summed).  Returns a handle with ``remove()``.
        (PyTorch's name; DistributedDataParallel uses it to start averaging a gradient while
        the rest of backward runs.)"""
        if self._record is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate "
                               f"a .grad; this one (shape {self.shape}) was computed by {self._record.name}")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: the tensor does not require grad")
        if self._post_hooks is None:
            self._post_hooks = {}
        return _HookHandle(self._post_hooks, hook)

    def retain_grad(self):
        """Keep ``.grad`` for this intermediate (non-leaf) tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: the tensor does not require grad")
        if self._record is not None:
            self._retains_grad = True
        if self._hooks is None:
            self._hooks = {}
        return self

    @property
    def retains_grad(self):
        return self._retains_grad

    # -- dtype and device -------------------------------------------------------------------
    def astype(self, dtype):
        return ops.astype(self, dtype)

    def float(self):
        return ops.astype(self, np.float32)

    def double(self):
        return ops.astype(self, np.float64)

    def half(self):
        return ops.astype(self, np.float16)

    def long(self):
        return ops.astype(self, np.int64)

    def int(self):
        return ops.astype(self, np.int32)

    def bool(self):
        return ops.astype(self, np.bool_)

    def to(self, *args, device=None, dtype=None, non_blocking=False, copy=False):
        """Copy to another device and/or dtype (differentiable), with PyTorch's forms:
        ``x.to("cuda")``, ``x.to(minigrad.float64)``, ``x.to(device, dtype)``, ``x.to(other)``
        (other's device and dtype), ``x.to(device=..., dtype=...)``.  ``non_blocking`` is
        accepted (copies are ordered on the one stream anyway); ``copy=True`` always copies."""
        device, dtype = device_and_dtype("Tensor.to", args, device, dtype)
        out = self
        if device is not None and device != self.device:
            out = ops.to_device(out, device)
        if dtype is not None and dtype != out.dtype:
            out = ops.astype(out, dtype)
        return out.clone() if copy and out is self else out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    # -- in place ----------------------------------------------------------------------------
    # x.add_(y), x += y, x[i] = v, x.copy_(y), ... write into x's memory.  When gradients are
    # involved (grad mode on, and x or an operand requires grad) the write is recorded like any
    # op: the out-of-place op runs on x's old value and x becomes that op's output (a non-leaf),
    # so a value that carries a gradient never silently drops out of the graph.  Methods are
    # attached at the end of this file; they all come through _inplace.

    def _inplace(self, name, compute, operands=(), needs_old=False):
        """Write ``compute(x)`` (an out-of-place op applied to this tensor's current value) into
        this tensor.  ``needs_old``: the op's backward reads its input's values (mul, div, log),
        so while recording the old value is kept as a copy."""
        recording = autograd.is_grad_enabled() and (
            self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in operands))
        if not recording:
            with autograd.no_grad():
                result = compute(self)
            self._write(name, result.array)
            return self
        if self._record is None and self.requires_grad:
            raise RuntimeError(
                f"{name}: a leaf tensor that requires grad (shape {self.shape}) cannot be modified "
                "in place while gradients are recorded; do it under `with minigrad.no_grad():` "
                "(as for a weight update) or use the out-of-place op")
        # the value before the write: the op's input, and the output of this tensor's old record
        old = Tensor._wrap(self.array.copy() if needs_old else self.array)
        if needs_old:
            old._memory = MemoryCounts(self._version)
        else:  # shares memory: a backward that still needs these values will see the write
            old._memory, old._rebinds_seen = self._memory, self._rebinds_seen
        old.requires_grad, old._record = self.requires_grad, self._record
        if self._record is not None:
            self._record._output_ref = weakref.ref(old)
        result = compute(old)
        self._write(name, result.array)
        rec = result._record
        if rec is None:  # the new value does not depend on anything that requires grad
            self._record, self.requires_grad = None, False
        else:
            rec._output_ref, rec.out_version = weakref.ref(self), self._version
            self._record, self.requires_grad = rec, True
        self._memory.rebinds += 1  # tensors sharing this memory now have a stale history
        self._rebinds_seen = self._memory.rebinds
        return self

    def _write(self, name, array):
        """Copy ``array`` into this tensor's memory (same shape, a castable dtype, same device)."""
        if backend.device_of(array) != self.device:
            raise RuntimeError(f"{name}: the value is on {backend.device_of(array)}, the tensor on {self.device}")
        if array.shape != self.shape:
            raise ValueError(f"{name}: the result has shape {array.shape}, but an in-place operation "
                             f"must keep the tensor's shape {self.shape}")
        if not np.can_cast(array.dtype, self.dtype, "same_kind"):
            raise TypeError(f"{name}: the result has dtype {array.dtype}, which cannot be stored in "
                            f"place in a tensor of dtype {self.dtype}; use the out-of-place op")
        backend.array_module(self.array).copyto(self.array, array, casting="same_kind")
        self._version += 1

    def __setitem__(self, index, value):
        if not (autograd.is_grad_enabled() and (self.requires_grad or
                                                 (isinstance(value, Tensor) and value.requires_grad))):
            # the fast path: a raw write (filling a batch, masking under no_grad)
            from .ops.shape import _index_stages, _select

            stages, _ = _index_stages(self.shape, index, backend.array_module(self.array), "setitem")
            if isinstance(value, Tensor):
                if value.device != self.device:
                    raise RuntimeError(f"setitem: the value (shape {value.shape}) is on {value.device}, the "
                                       f"tensor (shape {self.shape}) on {self.device}; move it with .to(...)")
                value = value.array
            elif not isinstance(value, numbers.Number):  # a list or NumPy array: CuPy takes no host data
                value = backend.to_device(np.asarray(value), self.device)
            _select(self.array, stages[:-1])[stages[-1]] = value
            self._version += 1
            return
        self._inplace("__setitem__", lambda t: ops.index_put(t, index, value), (value,))

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        """Set every element to ``value`` (a number, or a 0-d tensor, which may carry a gradient)."""
        return self._inplace("fill_", lambda t: ops.broadcast_to(ops.lift(value, t).astype(t.dtype), t.shape),
                             (value,))

    def copy_(self, src):
        """Copy ``src`` (broadcast to this shape, cast to this dtype) into this tensor."""
        if not isinstance(src, Tensor):
            src = Tensor(src, device=self.device)
        if src.device != self.device:
            src = src.to(self.device)
        return self._inplace("copy_", lambda t: ops.broadcast_to(src.astype(t.dtype), t.shape), (src,))

    def uniform_(self, low=0.0, high=1.0):
        values = backend.generator(self.device).uniform(low, high, self.shape)
        return self._inplace("uniform_", lambda t: Tensor._wrap(values.astype(t.dtype)))

    def normal_(self, mean=0.0, std=1.0):
        # CuPy's Generator has no normal(): shift and scale its standard_normal (as init.normal_)
        values = mean + std * backend.generator(self.device).standard_normal(self.shape)
        return self._inplace("normal_", lambda t: Tensor._wrap(values.astype(t.dtype)))

    @classmethod
    def _wrap(cls, array):
        t = cls.__new__(cls)
        t._init(array)
        return t

    def __hash__(self):
        return id(self)

    def __iter__(self):
        if self.array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))


def clear_grads(params, set_to_none=True):
    """Forget the gradients of ``params`` (Module.zero_grad and Optimizer.zero_grad): set
    each ``.grad`` to None (the default: the next backward allocates afresh), or to zeros in
    place."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.array[...] = 0


class _HookHandle:
    _next = [0]

    def __init__(self, hooks, hook):
        self.hooks = hooks
        self.key = _HookHandle._next[0]
        _HookHandle._next[0] += 1
        hooks[self.key] = hook

    def remove(self):
        self.hooks.pop(self.key, None)


# ----------------------------------------------------------------------------------------
# Creation functions (PyTorch names).  Floats default to float32; float64 on request.


def _device(device):
    """``device``, or the default device (set_default_device, $MINIGRAD_DEVICE) when None."""
    return Device(device) if device is not None else backend.default_device()


def _float_dtype(dtype):
    return np.dtype(dtype) if dtype is not None else backend.get_default_dtype()


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def device_and_dtype(name, args, device=None, dtype=None):
    """PyTorch's ``.to(...)`` arguments, for Tensor.to and Module.to: devices ("cuda", a Device),
    dtypes and tensors (their device and dtype) as positional arguments in any order, besides
    the ``device=`` and ``dtype=`` keywords.  Returns ``(Device or None, numpy dtype or None)``."""
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, Device) or (isinstance(a, str) and a.split(":")[0] in Device._known):
            device = a
        elif a is not None:
            try:
                dtype = np.dtype(a)
            except TypeError:
                raise TypeError(f"{name}: expected a device or a dtype (or a tensor for both), such as "
                                f"\"cuda\" or minigrad.float64; got {a!r}") from None
    return (Device(device) if device is not None else None,
            np.dtype(dtype) if dtype is not None else None)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor from a number, a (nested) list, a NumPy/CuPy array or a Tensor (copied)."""
    if isinstance(data, Tensor):
        data = data.array.copy()
    elif hasattr(data, "dtype"):
        data = data.copy()
    else:  # Python numbers and lists: floats become the default float, ints int64
        data = np.asarray(data)
        if dtype is None and data.dtype.kind == "f":
            dtype = backend.get_default_dtype()
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array):
    """A tensor that shares memory with a NumPy array, keeping its dtype."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def _filled(fill, shape, dtype, device, requires_grad):
    xp = _device(device).xp
    return Tensor(xp.full(_shape(shape), fill, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return _filled(0, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return _filled(1, shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None and isinstance(fill_value, bool):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = np.int64
    return _filled(fill_value, (shape,) if isinstance(shape, int) else (tuple(shape),), dtype, device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False):
    xp = _device(device).xp
    return Tensor(xp.empty(_shape(shape), dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Like Python's range: integers give int64, any float argument gives the default float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if is_int else backend.get_default_dtype()
    xp = _device(device).xp
    return Tensor(xp.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    xp = _device(device).xp
    return Tensor(xp.eye(n, m, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1), from the seeded generator (see manual_seed)."""
    gen = backend.generator(_device(device))
    data = gen.random(_shape(shape), dtype=np.float64).astype(_float_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal, from the seeded generator (see manual_seed)."""
    gen = backend.generator(_device(device))
    data = gen.standard_normal(_shape(shape)).astype(_float_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def randint(*args, low=None, high=None, size=None, dtype=np.int64, device=None, requires_grad=False):
    """Integers uniform on [low, high), PyTorch's signature ``randint(low=0, high, size)``:
    ``randint(10, (3,))`` is 3 numbers in [0, 10), ``randint(5, 10, (2, 2))`` 4 in [5, 10).
    ``size`` is a tuple (or list) of ints.  From the seeded generator (see manual_seed)."""
    if size is None and args:  # the last positional argument is the size
        *args, size = args
    if len(args) == 2 and low is None and high is None:
        low, high = args
    elif len(args) == 1 and high is None:
        high = args[0]
    elif len(args) == 1 and low is None:
        low = args[0]
    elif args:
        raise TypeError(f"randint: too many arguments {args!r}; the signature is randint(low=0, high, size)")
    low = 0 if low is None else low
    if high is None or size is None:
        raise TypeError("randint: high and size are required, as randint(high, size) or "
                        f"randint(low, high, size) with size a tuple like (4,); got {args!r}")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"randint: {name} must be an int, got {v!r}")
    if not isinstance(size, (tuple, list)) or not all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in size):
        raise TypeError(f"randint: size must be a tuple of ints, like (4,) or (2, 3), got {size!r}")
    if high <= low:
        raise ValueError(f"randint: the range [low, high) = [{low}, {high}) is empty")
    gen = backend.generator(_device(device))
    out = Tensor(gen.integers(low, high, size=tuple(size), dtype=dtype))
    return out.requires_grad_(True) if requires_grad else out


# -- more creation functions (PyTorch's) ------------------------------------------------------------


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end``, both included (torch.linspace);
    computed in float64, then stored in ``dtype`` (the default float)."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    xp = _device(device).xp
    values = xp.linspace(float(start), float(end), int(steps), dtype=np.float64)
    return Tensor(values.astype(_float_dtype(dtype)), requires_grad=requires_grad)


def randperm(n, dtype=np.int64, device=None, requires_grad=False):
    """A random permutation of 0 .. n-1, from the seeded generator: the order that sorts n
    uniform random numbers (every order equally likely)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"randperm: n must be a non-negative int, got {n!r}")
    device = _device(device)
    order = device.xp.argsort(backend.generator(device).random(int(n)), kind="stable")
    return Tensor(order.astype(dtype), requires_grad=requires_grad)


def _like(op, fill, t, dtype, device, requires_grad):
    dtype = np.dtype(dtype) if dtype is not None else t.dtype
    if dtype.kind != "f":
        raise TypeError(f"{op}: random values need a floating dtype, got {dtype} (pass dtype=minigrad.float32)")
    return fill(t.shape, dtype=dtype, device=device if device is not None else t.device,
                requires_grad=requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1) with ``t``'s shape (and its dtype and device unless given)."""
    return _like("rand_like", rand, t, dtype, device, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    """Standard normal with ``t``'s shape (and its dtype and device unless given)."""
    return _like("randn_like", randn, t, dtype, device, requires_grad)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw ``num_samples`` category indices (int64) from each row of ``input``, a 1-D or 2-D
    tensor of non-negative weights (unnormalized probabilities), as ``torch.multinomial``.

    With replacement: inverse transform sampling, the first category whose cumulative weight
    exceeds u * total for u uniform on [0, 1).  Without replacement: every category draws an
    exponential waiting time E / w (E ~ Exp(1)); the k earliest are the same in distribution as
    k successive draws each proportional to the remaining weights (the "exponential race"),
    and a zero weight never wins."""
    op = "multinomial"
    if generator is not None:
        raise TypeError(f"{op}: generator objects are not supported; seed with minigrad.manual_seed")
    if not isinstance(input, Tensor) or input.dtype.kind != "f" or input.ndim not in (1, 2):
        raise TypeError(f"{op}: expected a 1-D or 2-D floating-point tensor of weights, got "
                        f"{getattr(input, 'dtype', type(input).__name__)} of shape {getattr(input, 'shape', ())}")
    n = input.shape[-1]
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 1:
        raise ValueError(f"{op}: num_samples must be a positive int, got {num_samples!r}")
    xp = backend.array_module(input.array)
    w = input.array.reshape(-1, n).astype(np.float64)
    if n == 0 or not bool(xp.isfinite(w).all()) or bool((w < 0).any()) or bool((w.sum(axis=1) <= 0).any()):
        raise ValueError(f"{op}: invalid distribution: every row of the weights (shape {input.shape}) must "
                         "be finite, non-negative and have a positive sum")
    k = int(num_samples)
    if not replacement and int((w > 0).sum(axis=1).min()) < k:
        raise ValueError(f"{op}: cannot draw {k} samples without replacement from a row with fewer "
                         f"non-zero weights (shape {input.shape})")
    gen = backend.generator(input.device)
    if replacement:
        u = gen.random((w.shape[0], k))
        cdf = xp.cumsum(w, axis=1)
        rows = xp.arange(w.shape[0])[:, None]
        # one flat search for all rows: row r's cumulative weights, scaled to (0, 1], live in
        # (r, r + 1], and so do its draws (u in [0, 1), shifted by r)
        hit = xp.searchsorted((cdf / cdf[:, -1:] + rows).reshape(-1), (u + rows).reshape(-1), side="right")
        last = n - 1 - xp.argmax(w[:, ::-1] > 0, axis=1)[:, None]  # rounding never picks past it
        picks = xp.minimum(hit.reshape(u.shape) - rows * n, last)
    else:
        waiting = -xp.log1p(-gen.random(w.shape))  # Exp(1): u in [0, 1), so log1p(-u) is finite
        with np.errstate(divide="ignore", invalid="ignore"):
            waiting = waiting / w  # a zero weight waits forever (inf, or NaN: sorted last too)
        picks = xp.argsort(waiting, axis=1, kind="stable")[:, :k]
    return Tensor._wrap(picks.reshape(input.shape[:-1] + (k,)).astype(np.int64))


from . import autograd, ops  # noqa: E402  (imported last: the ops need the Tensor class)


# -- operators and methods ------------------------------------------------------------------------

def _inplace_method(name, fn, needs_old):
    """``x.name(...)`` storing ``fn(x, ...)`` in x's memory (Tensor._inplace; while gradients
    are recorded the write goes on the tape).  needs_old: fn's backward reads its input's
    values, which the write overwrites."""
    def method(self, *args, **kwargs):
        return self._inplace(name, lambda t: fn(t, *args, **kwargs), args + tuple(kwargs.values()),
                             needs_old)

    method.__name__ = name
    method.__doc__ = f"In place: ``x.{name}(...)`` stores ``{fn.__name__}(x, ...)`` in x's memory."
    return method


def _add_scaled(x, other, alpha=1):
    return ops.add(x, other if alpha == 1 else other * alpha)


def _sub_scaled(x, other, alpha=1):
    return ops.sub(x, other if alpha == 1 else other * alpha)


def _attach_operators_and_methods():
    """Each operator and method of Tensor is one op of minigrad.ops, the same function as the
    functional form: ``x + y`` is ``ops.add(x, y)``, ``x.exp()`` is ``ops.exp(x)``, and
    ``x.mul_(y)`` stores ``ops.mul(x, y)`` in x's memory (``Tensor._inplace``).  Attached here,
    after the class, because the ops module needs Tensor to exist first."""
    Tensor.__add__, Tensor.__radd__ = ops.add, ops.radd
    Tensor.__sub__, Tensor.__rsub__ = ops.sub, ops.rsub
    Tensor.__mul__, Tensor.__rmul__ = ops.mul, ops.rmul
    Tensor.__truediv__, Tensor.__rtruediv__ = ops.div, ops.rdiv
    Tensor.__floordiv__, Tensor.__rfloordiv__ = ops.floor_divide, ops.rfloordiv
    Tensor.__pow__, Tensor.__rpow__ = ops.pow, ops.rpow
    Tensor.__matmul__, Tensor.__rmatmul__ = ops.matmul, ops.rmatmul
    Tensor.__neg__ = ops.neg
    Tensor.__abs__ = ops.abs
    Tensor.__and__ = Tensor.__rand__ = ops.bitwise_and
    Tensor.__or__ = Tensor.__ror__ = ops.bitwise_or
    Tensor.__xor__ = Tensor.__rxor__ = ops.bitwise_xor
    Tensor.__invert__ = ops.bitwise_not
    Tensor.__eq__, Tensor.__ne__ = ops.eq, ops.ne
    Tensor.__lt__, Tensor.__le__, Tensor.__gt__, Tensor.__ge__ = ops.lt, ops.le, ops.gt, ops.ge
    Tensor.__hash__ = lambda self: id(self)  # defining __eq__ removes the default hash
    Tensor.__getitem__ = ops.getitem
    Tensor.T = property(ops._T)

    for name in (
            # elementwise.py
            "add", "sub", "mul", "div", "floor_divide", "neg", "pow", "exp", "log", "log1p", "sqrt", "abs",
            "sign", "sin", "cos", "clip", "clamp", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
            "clone", "isclose", "allclose", "equal", "masked_fill", "floor", "ceil", "round", "trunc",
            "addcmul", "addcdiv",
            # reduce.py, matmul.py, activation.py, sort.py
            "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "logsumexp",
            "all", "any", "cumsum", "norm", "matmul", "mm", "bmm", "relu", "sigmoid", "tanh", "softmax",
            "log_softmax", "argsort", "sort", "topk", "multinomial",
            # shape.py
            "reshape", "view", "view_as", "expand", "expand_as", "broadcast_to", "sum_to", "flatten",
            "squeeze", "unsqueeze", "transpose", "permute", "split", "chunk", "tril", "triu", "gather",
            "index_select", "repeat", "contiguous"):
        setattr(Tensor, name, getattr(ops, name))
    Tensor.swapaxes = ops.transpose
    Tensor.where = lambda self, cond, other: ops.where(cond, self, other)
    Tensor.is_contiguous = lambda self: bool(self.array.flags.c_contiguous)
    Tensor.type_as = lambda self, other: self.to(device=other.device, dtype=other.dtype)
    Tensor.type_as.__doc__ = "This tensor converted to ``other``'s dtype and device."

    for name, fn, needs_old in (
            ("add_", _add_scaled, False), ("sub_", _sub_scaled, False), ("mul_", ops.mul, True),
            ("div_", ops.div, True), ("pow_", ops.pow, True), ("neg_", ops.neg, False),
            ("exp_", ops.exp, False), ("log_", ops.log, True), ("sqrt_", ops.sqrt, False),
            ("abs_", ops.abs, True), ("sin_", ops.sin, True), ("cos_", ops.cos, True),
            ("clamp_", ops.clip, False), ("clip_", ops.clip, False), ("relu_", ops.relu, False),
            ("sigmoid_", ops.sigmoid, False), ("tanh_", ops.tanh, False), ("leaky_relu_", ops.leaky_relu, True),
            ("silu_", ops.silu, True), ("masked_fill_", ops.masked_fill, False), ("floor_", ops.floor, False),
            ("ceil_", ops.ceil, False), ("round_", ops.round, False), ("trunc_", ops.trunc, False),
            ("addcmul_", ops.addcmul, False), ("addcdiv_", ops.addcdiv, False)):
        setattr(Tensor, name, _inplace_method(name, fn, needs_old))
    Tensor.__iadd__, Tensor.__isub__ = Tensor.add_, Tensor.sub_
    Tensor.__imul__, Tensor.__itruediv__ = Tensor.mul_, Tensor.div_


_attach_operators_and_methods()
