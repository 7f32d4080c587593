"""Tape-based reverse-mode automatic differentiation.

The whole mechanism in four sentences:

1. Every differentiable op is a ``Function`` subclass with ``forward`` (arrays in, array out)
   and ``backward`` (the gradient of the output in, one gradient per input out), side by side.
2. ``Function.apply`` runs ``forward`` on the input arrays and, while grad mode is on and some
   input requires grad, keeps the ``Function`` instance as a *record* on the tape: the op, its
   input tensors, whatever ``forward`` saved on it, and a sequence number.  The output tensor
   points at its record (``tensor._record``); a leaf tensor has none.
3. ``loss.backward()`` collects every record reachable from ``loss`` and replays them in
   reverse recording order (a valid topological order, since an op is always recorded after the
   ops that produced its inputs), each ``backward`` handing gradients to its inputs; gradients
   that arrive at a leaf are accumulated into ``leaf.grad``.
4. After a record's ``backward`` ran, what it saved is released (unless ``retain_graph=True``),
   so memory stays flat over thousands of training steps.

Backward formulas are written with minigrad's own ops on tensors, so running the replay with
grad mode on (``create_graph=True``) records the backward pass itself: that is how second
derivatives (Hessian-vector products, gradient penalties) come out of the same code.
"""
import copy
import functools
import inspect
import itertools
import math
import weakref

import numpy as np

from . import backend


# ----------------------------------------------------------------------------------------
# Grad mode


class _GradMode:
    enabled = True


def is_grad_enabled():
    """True while operations are being recorded on the tape."""
    return _GradMode.enabled


class _Switch:
    """Sets ``holder.enabled`` to ``mode`` inside a ``with`` block or a decorated function and
    restores the previous value afterwards (also when the body raises)."""

    holder = _GradMode

    def __new__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return cls()(args[0])  # the bare decorator, PyTorch's ``@no_grad`` without ()
        return super().__new__(cls)

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self.prev = self.holder.enabled
        self.holder.enabled = self.mode
        return self

    def __exit__(self, *exc):
        self.holder.enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            switch = copy.copy(self)  # a fresh switch per call: recursion and nesting stay right
            _Switch.__enter__(switch)
            try:
                return fn(*args, **kwargs)
            finally:
                _Switch.__exit__(switch)

        return wrapper


class set_grad_enabled(_Switch):
    """Turn recording on or off: as a call, a context manager, or a decorator."""

    def __init__(self, mode):
        super().__init__(mode)
        _Switch.__enter__(self)  # a plain call takes effect at once, as in PyTorch

    def __enter__(self):
        return self  # already switched by __init__

    def __call__(self, fn):
        self.holder.enabled = self.prev  # as a decorator it acts only while fn runs
        return super().__call__(fn)


class no_grad(_Switch):
    """Nothing computed inside is recorded: ``with no_grad(): ...`` or ``@no_grad()``."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_Switch):
    """Recording is on inside, even within ``no_grad``."""

    def __init__(self):
        super().__init__(True)


class inference_mode(_Switch):
    """PyTorch's ``inference_mode()``: here the same as ``no_grad()`` (nothing is recorded;
    minigrad has no separate inference tensors).  ``inference_mode(False)`` records."""

    def __init__(self, mode=True):
        super().__init__(not mode)


# ----------------------------------------------------------------------------------------
# Anomaly detection: the NaN policy
#
# NaN and inf produced inside backward are never hidden, masked or replaced: they flow into
# ``.grad`` exactly as the arithmetic produced them (log at 0 gives an infinite gradient).
# ``detect_anomaly()`` finds where they came from: under it, the engine checks the gradients
# each record's backward returns and raises at the first op that made a non-finite gradient
# out of a finite one.  Off by default, costing the engine one boolean test per record.


class _Anomaly:
    enabled = False


def is_anomaly_enabled():
    """True inside ``detect_anomaly()``."""
    return _Anomaly.enabled


class detect_anomaly(_Switch):
    """Check every backward for non-finite gradients: ``with detect_anomaly(): loss.backward()``
    (also a decorator, ``@detect_anomaly()``).  Raises RuntimeError naming the op (class, record
    number, input shapes) whose backward first turned a finite gradient into NaN or inf."""

    holder = _Anomaly

    def __init__(self, mode=True):
        super().__init__(mode)


def _all_finite(t):
    xp = backend.array_module(t.array)
    return t.array.dtype.kind not in "fc" or bool(xp.isfinite(t.array).all())


def _check_anomaly(rec, grad, input_grads):
    """Raise if ``rec.backward`` turned the finite gradient ``grad`` into a non-finite one."""
    if not _all_finite(grad):
        return  # not this op's doing: the NaN/inf arrived from further down the tape
    for i, (edge, g) in enumerate(zip(rec.edges, input_grads)):
        # gradients for inputs that do not require grad are dropped by the engine, so a
        # non-finite one there (the constant in log(x) * 2) harms nothing
        if g is not None and edge is not None and not _all_finite(g):
            shapes = ", ".join(str(t.shape) for t in rec.inputs)
            bad = "NaN" if bool(backend.array_module(g.array).isnan(g.array).any()) else "inf"
            raise RuntimeError(
                f"detect_anomaly: {rec.name}.backward (record #{rec.seq}, input shapes {shapes}) "
                f"returned a gradient with {bad} for input {i} from a finite incoming gradient. "
                f"Check the values {rec.name} was applied to (e.g. log or division at 0, "
                "sqrt at 0)."
            )


# ----------------------------------------------------------------------------------------
# Function: one op, forward and backward together; an instance is one record on the tape.

_sequence = itertools.count()

#: Every differentiable op, by class name; tests check that each has a gradient check.
REGISTRY = {}


def register(cls):
    """Class decorator: list a differentiable op so the test suite must gradient-check it."""
    REGISTRY[cls.__name__] = cls
    return cls


class Function:
    """Base class of every op.

    Subclasses write::

        class Mul(Function):
            '''z = x * y      dL/dx = g * y,  dL/dy = g * x'''
            def forward(self, x, y):         # arrays in (numpy or cupy), array out
                return x * y
            def backward(self, g):           # Tensor in, one Tensor (or None) per input out
                x, y = self.saved_tensors
                return g * y, g * x

    Each call makes one instance, ``self`` in both methods: it is the op's record on the tape
    (the node of the graph), and it carries what forward leaves for backward.  ``forward`` may
    stash arrays it computed on ``self`` (a mask, an argmax); ``self.saved_tensors`` gives the
    input tensors and ``self.saved_output`` the output tensor.  ``backward`` need not undo
    broadcasting: the engine sums each gradient back to its input's shape in one place.

    That is the ops' protocol.  A subclass whose ``forward`` is a ``@staticmethod`` follows
    PyTorch's instead (tensors in, ``ctx.save_for_backward``; see FunctionCtx below): its
    ``apply`` is then ``_apply_custom``, set when the class is made (``__init_subclass__``).

    Saved values are checked by the engine, not by each op: an op declares what its backward
    reads, and before that backward runs the engine compares the version of each of those
    tensors (the count of in-place writes to its memory, shared with its views) with the version
    recorded when the op ran, and raises if one changed.  Reading nothing is the exception that
    must be declared; the default is the strict one, so forgetting errs on the safe side.

    Class attributes:
      ``saves_inputs``                what backward reads of the inputs' values: True (all, the
                                      default), False (none: add, reshape, a stashed mask), a
                                      tuple of input positions (where reads its condition), or
                                      per gradient, ``{0: (1,), 1: (0,)}`` for x * y: the
                                      gradient of x reads y and is only computed when x wants one.
      ``saves_output = True``         backward reads the output's values (exp, sigmoid, softmax).
                                      Tensors passed as keyword parameters (an index, a target,
                                      a mask) reach forward as arrays and are always checked.
      ``differentiable = False``      the output never requires grad (comparisons, argmax).
      ``fused_backward(self, g)``     optional: the same gradients as backward from a fused
                                      kernel on raw arrays; the engine runs it instead of
                                      backward when the gradient is not recorded (no
                                      create_graph), so backward stays the math, in ops.
      ``once_differentiable = True``  the fallback where no backward in ops exists (conv's
                                      col2im, pooling's scatter): backward uses raw arrays, and
                                      a double backward through it raises instead of being wrong.
      ``returns_view = True``         forward may return a view of its first input; the output
                                      then shares the input's version counter.
    """

    saves_inputs = True
    saves_output = False
    constants = ()  # (name, tensor, version) of the tensors passed as parameters; all checked
    differentiable = True
    fused_backward = None  # (a method, where an op has one)
    once_differentiable = False
    returns_view = False  # forward may return a view of its first input (reshape, slicing)

    # set by apply() on recorded instances
    inputs = None
    seq = -1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if isinstance(inspect.getattr_static(cls, "forward"), staticmethod):
            cls.apply = classmethod(_apply_custom)  # PyTorch's protocol (below: FunctionCtx)

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the input arrays; record the op when some input requires grad."""
        data = [t.array for t in inputs]
        if len(data) > 1:
            _check_same_device(cls, inputs, data)
        # tensors among the parameters (indices, targets, masks): forward gets their arrays, and
        # the engine checks at backward that they were not modified in place meanwhile
        constants = [(k, v) for k, v in params.items() if isinstance(v, Tensor)] if params else None
        if constants:
            params = {k: v.array if isinstance(v, Tensor) else v for k, v in params.items()}
        record = cls()  # this call's record (kept when recording)
        out = record.forward(*data, **params)
        if type(out) is not np.ndarray and not isinstance(out, backend.array_module(out).ndarray):
            # a NumPy scalar from a reduction: a 0-d array on x's device
            out = (backend.array_module(data[0]) if data else np).asarray(out)
        result = Tensor.__new__(Tensor)
        result._init(out)
        if cls.returns_view and data and out.base is not None and _shares_memory(out, data[0]):
            # a view shares its base's memory, so it shares its version counter: an in-place
            # write through either is seen by records that saved the other
            result._memory = inputs[0]._memory
            result._rebinds_seen = result._memory.rebinds
        if (
            _GradMode.enabled
            and cls.differentiable
            and out.dtype.kind in "fc"
            and any(t.requires_grad for t in inputs)
        ):
            for t in inputs:
                if t._memory.rebinds != t._rebinds_seen and t._rebinds_seen >= 0:
                    raise _stale_view_error(cls, t)
            result.requires_grad = True
            record.inputs = inputs
            # the edges of the graph, fixed now: where each input's gradient goes (its producing
            # record, or the leaf itself, or nowhere).  Fixed at record time because an in-place
            # op may later give the same Tensor object a new record.
            record.edges = tuple((t._record or t) if t.requires_grad else None for t in inputs)
            record.versions = tuple(t._version for t in inputs)
            if constants:
                record.constants = tuple((k, t, t._version) for k, t in constants)
            record.seq = next(_sequence)
            record._output_ref = weakref.ref(result)
            record.out_version = result._version
            result._record = record
        return result

    # -- what backward can use --------------------------------------------------------------
    @property
    def saved_tensors(self):
        """The input tensors, unchanged since the op ran (the engine checked their versions)."""
        if not self.saves_inputs:
            raise TypeError(f"{self.name}.backward reads saved_tensors, so the class must declare "
                            "what it reads in saves_inputs for the engine to check it")
        return self.inputs

    @property
    def saved_output(self):
        """The output tensor, unchanged since the op ran (for backwards written with the result,
        like exp's; the engine checked its version)."""
        if not self.saves_output:
            raise TypeError(f"{self.name}.backward reads saved_output, so the class must declare "
                            "saves_output = True for the engine to check it")
        return self._output_ref()

    def check_saved(self):
        """Raise if a value this record's backward reads was modified in place since forward
        (called by the engine before every backward; an integer compare per saved tensor)."""
        saves, versions = self.saves_inputs, self.versions
        if saves:
            if saves is True:
                saves = range(len(versions))
            elif isinstance(saves, dict):  # per gradient: only those of inputs that want one
                saves = {j for i, reads in saves.items() if i < len(versions) and self.edges[i] is not None
                         for j in reads}
            for i in saves:
                if self.inputs[i]._version != versions[i]:
                    raise _modified_error(self, f"input {i}", self.inputs[i], versions[i])
        for name, t, version in self.constants:
            if t._version != version:
                raise _modified_error(self, f"its argument {name!r}", t, version)
        if self.saves_output:
            out = self._output_ref()
            if out is not None and out._version != self.out_version:
                raise _modified_error(self, "its output", out, self.out_version)

    @property
    def name(self):
        return type(self).__name__

    def forward(self, *arrays, **params):
        raise NotImplementedError(f"{self.name}.forward")

    def backward(self, grad):
        raise NotImplementedError(f"{self.name} is not differentiable")

    def _release(self):
        """Drop everything saved for backward; a second backward through here then raises."""
        seq = self.seq
        self.__dict__.clear()
        self.seq = seq
        self.freed = True

    def __repr__(self):
        return f"<{self.name} record #{self.seq}>"


# ----------------------------------------------------------------------------------------
# Custom Functions, PyTorch's protocol: tensors in, tensors out, and a ``ctx``
#
#     class Cube(minigrad.autograd.Function):
#         @staticmethod
#         def forward(ctx, x):              # Tensors in (nothing inside is recorded), Tensor out
#             ctx.save_for_backward(x)
#             return x ** 3
#         @staticmethod
#         def backward(ctx, g):             # one gradient per output in, one per argument out
#             (x,) = ctx.saved_tensors
#             return 3 * x ** 2 * g
#     y = Cube.apply(x)
#
# A Function subclass whose ``forward`` is a staticmethod follows this protocol (the ops above
# follow the array-level one).  Its ``apply`` is _apply_custom: the call is recorded as one
# _CustomRecord, an ordinary record for the engine whose backward calls the class's backward.


class FunctionCtx:
    """The ``ctx`` that a custom Function's ``forward`` and ``backward`` receive (PyTorch's).
    Other values for backward (a constant, a shape) can be set on it as attributes."""

    def __init__(self, needs_input_grad):
        #: one bool per argument of forward: does it need a gradient (a tensor that requires grad)
        self.needs_input_grad = needs_input_grad
        self._saved, self._versions, self._non_differentiable = (), (), ()

    def save_for_backward(self, *tensors):
        """Keep tensors (inputs, outputs or intermediates; None allowed) for backward, which
        reads them as ``ctx.saved_tensors``.  The engine checks before backward that none was
        modified in place since (the version each had here)."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward: argument {i} is a {type(t).__name__}; only tensors "
                                "(or None) are saved this way: set other values as attributes of ctx")
        self._saved = tensors
        self._versions = tuple(None if t is None else t._version for t in tensors)

    @property
    def saved_tensors(self):
        """What ``save_for_backward`` kept, unchanged since (the engine checked their versions)."""
        return self._saved

    def mark_non_differentiable(self, *outputs):
        """These outputs (integer indices, a mask) get no gradient: they do not require grad,
        and backward receives zeros for them."""
        self._non_differentiable = outputs

    def set_materialize_grads(self, value):
        """Accepted for PyTorch's code; minigrad always passes zeros (never None) to backward for
        outputs that received no gradient, which every backward written for either handles."""

    def mark_dirty(self, *tensors):
        raise NotImplementedError(
            "mark_dirty: custom Functions that modify their inputs in place are not supported; "
            "return a new tensor from forward (docs/differences.md)")


def once_differentiable(backward):
    """Decorator for a custom Function's backward computed on values alone (NumPy, a kernel):
    under ``create_graph=True`` differentiating its result again raises instead of being
    silently wrong (PyTorch's ``torch.autograd.function.once_differentiable``)."""
    backward.once_differentiable = True
    return backward


def _call_forward(fn, ctx, args, kwargs):
    """Run the class's forward without recording (PyTorch 2's split form too: forward without
    ctx, then ``setup_context(ctx, inputs, output)``)."""
    with no_grad():
        if getattr(fn, "setup_context", None) is not None:
            outputs = fn.forward(*args, **kwargs)
            fn.setup_context(ctx, args, outputs)
            return outputs
        return fn.forward(ctx, *args, **kwargs)


def _apply_custom(fn, *args, **kwargs):
    """``CustomFunction.apply(*args)``: forward on the arguments, recorded as one _CustomRecord
    when a tensor argument requires grad; each differentiable output is a fresh tensor that
    shares memory (and the version counter) with what forward returned."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    recording = _GradMode.enabled and any(t.requires_grad for t in tensors)
    ctx = FunctionCtx(tuple(recording and isinstance(a, Tensor) and a.requires_grad for a in args))
    if not recording:
        return _call_forward(fn, ctx, args, kwargs)
    packed = _CustomRecord.apply(*tensors, fn=fn, ctx=ctx, args=args, kwargs=kwargs)
    outputs, rec = ctx._outputs, packed._record
    del ctx._outputs
    if rec is None:  # no differentiable output
        return outputs
    outs = list(outputs) if isinstance(outputs, tuple) else [outputs]
    for k, start in zip(rec.diff, rec.offsets):
        out = packed if len(rec.diff) == 1 else _Unpack.apply(packed, value=outs[k].array, start=start,
                                                             label=f"{fn.__name__}[{k}]")
        out._memory, out._rebinds_seen = outs[k]._memory, outs[k]._rebinds_seen
        outs[k] = out
    return tuple(outs) if isinstance(outputs, tuple) else outs[0]


class _CustomRecord(Function):
    """One call of a custom Function on the tape.  Its inputs are the call's tensor arguments;
    its output is the differentiable output, or, when there are several, one flat buffer that
    stands for all of them (each is then an _Unpack of it, so the engine, which gives a record
    one output gradient, sums their gradients into the buffer at their own offsets).

    backward: dL/d(output k) = the gradient's piece at k's offsets (zeros for the other
    outputs), handed to the class's backward with ctx; it returns one gradient per argument."""

    saves_inputs = False  # backward reads what ctx.save_for_backward kept: check_saved checks it

    def forward(self, *arrays, fn, ctx, args, kwargs):
        self.fn, self.ctx = fn, ctx
        self.positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.once_differentiable = getattr(fn.backward, "once_differentiable", False)
        outputs = ctx._outputs = _call_forward(fn, ctx, args, kwargs)
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        self.like = [(o.shape, o.dtype) if isinstance(o, Tensor) else None for o in outs]
        self.diff = [k for k, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.kind in "fc"
                     and not any(o is m for m in ctx._non_differentiable)]
        xp = backend.array_module(arrays[0])
        if not self.diff:
            return xp.empty(0, dtype=np.int8)  # not floating: apply records nothing
        if len(self.diff) == 1:
            self.offsets = [0]
            return outs[self.diff[0]].array
        sizes = [outs[k].array.size for k in self.diff]
        self.offsets = [int(o) for o in np.cumsum([0] + sizes[:-1])]
        return xp.empty(sum(sizes), dtype=np.result_type(*[outs[k].dtype for k in self.diff]))

    def check_saved(self):
        for i, (t, version) in enumerate(zip(self.ctx._saved, self.ctx._versions)):
            if t is not None and t._version != version:
                raise _modified_error(self, f"saved tensor {i}", t, version)

    def backward(self, grad):
        xp = backend.array_module(grad.array)
        grads = [None if like is None else Tensor._wrap(xp.zeros(*like)) for like in self.like]
        if len(self.diff) == 1:
            grads[self.diff[0]] = grad
        else:
            for k, start in zip(self.diff, self.offsets):
                shape, dtype = self.like[k]
                grads[k] = grad[start:start + math.prod(shape)].reshape(shape).astype(dtype)
        result = self.fn.backward(self.ctx, *grads)
        result = result if isinstance(result, tuple) else (result,)
        n = len(self.ctx.needs_input_grad)
        if len(result) < n or any(g is not None for g in result[n:]):
            raise RuntimeError(f"{self.name}.backward returned {len(result)} gradients, but forward took "
                               f"{n} arguments: return one per argument (None for non-tensors)")
        for i, g in enumerate(result[:n]):
            if g is not None and not isinstance(g, Tensor):
                raise TypeError(f"{self.name}.backward returned a {type(g).__name__} as the gradient of "
                                f"argument {i}; return a Tensor (or None)")
        return tuple(result[i] for i in self.positions)

    @property
    def name(self):
        return self.__dict__.get("fn", _CustomRecord).__name__

    def _release(self):
        fn = self.fn
        super()._release()
        self.fn = fn  # its name, for the "backward a second time" error


class _Unpack(Function):
    """Output k of a custom Function with several differentiable outputs (see _CustomRecord):
    z = forward's output k; dL/dbuffer = g flattened at k's offsets, zeros elsewhere."""

    saves_inputs = False

    def forward(self, packed, value, start, label):
        self.start, self.size, self.label = start, packed.size, label
        return value

    def backward(self, g):
        flat = g.reshape(-1)
        return ops.pad(flat, [(self.start, self.size - self.start - flat.shape[0])])

    @property
    def name(self):
        return self.__dict__.get("label", "_Unpack")


def parents(rec):
    """The records that produced ``rec``'s inputs (the edges to follow backwards)."""
    return [e for e in rec.edges if isinstance(e, Function)]


def _modified_error(rec, which, t, saved_version):
    return RuntimeError(
        "one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: {which} of {rec.name} (record #{rec.seq}; shape {t.shape}, {t.dtype}, "
        f"{t.device}) is at version {t._version}, but {rec.name} saved it at version "
        f"{saved_version}, and its backward reads it, so the gradient would be wrong. Write "
        "into a copy instead (x = x + 1 rather than x += 1, or x.clone() before the op), and "
        "step an optimizer only after backward()."
    )


def _stale_view_error(fn, t):
    return RuntimeError(
        f"{fn.__name__}: an input of shape {t.shape} was changed by an in-place operation on "
        "a tensor it shares memory with (its base or a view of it) after it was computed, so "
        "its recorded history no longer describes its values. Compute it again after the "
        "in-place operation (or clone() it before)."
    )


def _shares_memory(out, x):
    """True when ``out`` (an array with a base) may share memory with ``x``; the identity
    checks answer the common case (a view of x, or of x's base) without the bounds test."""
    base = out.base
    return base is x or base is x.base or backend.array_module(x).may_share_memory(out, x)


def _check_same_device(fn, inputs, data):
    kind = type(data[0])
    for d in data[1:]:
        if type(d) is not kind:
            devices = ", ".join(f"{t.shape} on {t.device}" for t in inputs)
            raise RuntimeError(
                f"{fn.__name__}: inputs are on different devices ({devices}); "
                "move them with .to(device) first"
            )


class _OnceDifferentiableResult(Function):
    """Stands in for the gradient computed by a once-differentiable backward under
    ``create_graph=True``: it is the gradient, but differentiating it again raises."""

    saves_inputs = False

    def forward(self, grad, *inputs, op):
        self.op = op
        return grad

    def backward(self, grad):
        raise RuntimeError(
            f"{self.op} is once-differentiable: its backward uses a fused kernel, so a second "
            "derivative through it is not available (it would be silently wrong). "
            "Use ops without fused kernels, or differentiate only once."
        )


# ----------------------------------------------------------------------------------------
# The backward engine


def _freed_error(rec):
    return RuntimeError(
        f"Trying to backward through the graph a second time: the values saved by {rec.name} "
        f"(record #{rec.seq}) were freed by the first backward. Pass retain_graph=True to the "
        "first backward() (or minigrad.grad) if you need to backward through it again."
    )


def _records_in_order(roots):
    """All records reachable from ``roots``, newest first (reverse recording order).

    Iterative, so a chain of 100,000 ops needs no recursion."""
    seen = set()
    found = []
    stack = [r for r in roots if r is not None]
    while stack:
        rec = stack.pop()
        if id(rec) in seen:
            continue
        seen.add(id(rec))
        if rec.inputs is None:
            raise _freed_error(rec)
        found.append(rec)
        for parent in rec.edges:
            if isinstance(parent, Function) and id(parent) not in seen:
                stack.append(parent)
    found.sort(key=lambda r: r.seq, reverse=True)
    return found


def _run_hooks(tensor, grad):
    """Apply ``tensor``'s gradient hooks in registration order; a hook may return a
    replacement, which must be a Tensor of the same shape, dtype and device."""
    for hook in list(tensor._hooks.values()):
        new = hook(grad)
        if new is None:
            continue
        if not isinstance(new, Tensor):
            raise TypeError(
                f"a gradient hook on a tensor of shape {tensor.shape} returned a "
                f"{type(new).__name__}; a hook must return None or a Tensor"
            )
        if new.shape != grad.shape or new.dtype != grad.dtype or new.device != grad.device:
            raise RuntimeError(
                f"a gradient hook on a tensor of shape {tensor.shape} returned a gradient of "
                f"shape {new.shape} ({new.dtype}, {new.device}) in place of one of shape "
                f"{grad.shape} ({grad.dtype}, {grad.device}); it must keep shape, dtype and device"
            )
        grad = new
    return grad


class _LeafGradients:
    """Gradients on their way to leaves.  A leaf used by k recorded ops receives k
    contributions; they are summed, and only when the last one has arrived is the leaf
    *finished*: its hooks run once on the sum, the sum goes into ``.grad`` (or to ``grad()``'s
    capture), and its post-accumulate hooks run (DistributedDataParallel starts communicating
    a parameter's gradient there, while the rest of backward is still running)."""

    def __init__(self, records, create_graph, capture):
        self.create_graph, self.capture = create_graph, capture
        self.uses = {}  # id(leaf) -> contributions still to come
        for rec in records:
            for e in rec.edges:
                if isinstance(e, Tensor):
                    self.uses[id(e)] = self.uses.get(id(e), 0) + 1
        self.sums = {}  # id(leaf) -> (leaf, summed gradient, number of terms)

    def seed(self, leaf, g):
        """A leaf that is itself a root of backward (``x.backward()`` on a leaf)."""
        self.uses[id(leaf)] = self.uses.get(id(leaf), 0) + 1
        self.add(leaf, g)

    def skip(self, rec):
        """``rec`` received no gradient: its leaves get no contribution from it."""
        for e in rec.edges:
            if isinstance(e, Tensor):
                self.add(e, None)

    def add(self, leaf, g):
        """One contribution (None when the consumer passed no gradient to this input)."""
        key = id(leaf)
        if g is not None:
            entry = self.sums.get(key)
            self.sums[key] = (leaf, g, 1) if entry is None else (leaf, entry[1] + g, entry[2] + 1)
        left = self.uses.get(key, 1) - 1
        self.uses[key] = left
        if left <= 0 and key in self.sums:
            self.finish(*self.sums.pop(key))

    def finish_all(self):
        """Leaves some of whose consumers passed no gradient at all."""
        for leaf, g, terms in list(self.sums.values()):
            self.finish(leaf, g, terms)
        self.sums.clear()

    def finish(self, t, g, terms):
        if t._hooks:
            g = _run_hooks(t, g)
        capture = self.capture
        if capture is not None:
            if id(t) in capture:
                prev = capture[id(t)]
                capture[id(t)] = g if prev is None else prev + g
            return
        if self.create_graph:
            t.grad = g if t._grad is None else t._grad + g
        elif t._grad is None:
            # a private array: a single incoming one may be shared (add passes g to both inputs)
            t._grad = Tensor._wrap(g.array.copy() if terms == 1 else g.array)
        else:
            xp = backend.array_module(t._grad.array)
            xp.add(t._grad.array, g.array, out=t._grad.array)
        if t._post_hooks:
            for hook in list(t._post_hooks.values()):
                hook(t)


class _Pending:
    """Gradients on their way to records: for each record, the gradient of its output summed
    over all its uses so far, and the output tensor itself.  (Once the consumers of an output
    have run and released their inputs, this is the only strong reference left to it, and the
    record's backward may still read it, as exp's does; it is dropped when the record runs.)"""

    def __init__(self):
        self.grads, self.outputs = {}, {}

    def add(self, rec, g, out=None):
        key = id(rec)
        self.grads[key] = self.grads[key] + g if key in self.grads else g
        if key not in self.outputs:
            self.outputs[key] = out if out is not None else rec._output_ref()

    def take(self, rec):
        """(summed gradient or None, output tensor or None) of ``rec``, forgetting both."""
        out = self.outputs.pop(id(rec), None)
        return self.grads.pop(id(rec), None), out if out is not None else rec._output_ref()


def _fit(g, t):
    """``g`` as a gradient for ``t``: broadcasting undone (the one place it is), t's dtype.
    (Runs for every gradient of every record: the common case, nothing to do, is two compares.)"""
    if g is not None:
        a, like = g.array, t.array
        if a.shape != like.shape:
            from .ops.shape import sum_to

            g = sum_to(g, like.shape)
        if a.dtype is not like.dtype and a.dtype != like.dtype:
            g = g.astype(like.dtype)
    return g


def _output_gradient(out, grad, create_graph, capture):
    """What happens at an output before its record runs: its hooks may replace the gradient,
    ``retain_grad()`` keeps a copy in ``.grad``, and ``grad()`` may want it (capture)."""
    if out is None:
        return grad
    if out._hooks:
        grad = _run_hooks(out, grad)
    if capture is not None and id(out) in capture:
        capture[id(out)] = grad
    if out._retains_grad:
        kept = grad if create_graph else Tensor._wrap(grad.array.copy())
        out._grad = kept if out._grad is None else out._grad + kept
    return grad


def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None, trace=None):
    """Replay the tape from ``roots`` (tensors) seeded with ``root_grads`` (tensors).

    Without ``capture``, gradients reaching leaves accumulate into ``leaf.grad``.  With
    ``capture`` (a dict ``id(tensor) -> None`` of tensors to differentiate with respect to),
    nothing is accumulated and the captured gradients are filled in instead.  ``trace``, if
    given, is called as ``trace(record, grad, input_grads)`` after each record's backward
    (``minigrad.viz.explain`` narrates a backward pass with it).
    """
    pending, leaf_roots = _Pending(), []
    for t, g in zip(roots, root_grads):
        if t._record is None:
            leaf_roots.append((t, g))
        else:
            pending.add(t._record, g, t)
    records = _records_in_order([t._record for t in roots])  # newest first
    leaves = _LeafGradients(records, create_graph, capture)
    with set_grad_enabled(create_graph):  # on: the backward pass is itself recorded
        for t, g in leaf_roots:
            leaves.seed(t, g)
        for rec in records:
            grad, out = pending.take(rec)
            if grad is None:  # nothing flowed here: its leaves get no contribution from it
                leaves.skip(rec)
                continue
            grad = _output_gradient(out, grad, create_graph, capture)
            rec.check_saved()  # nothing its backward reads was modified in place since forward
            input_grads = _call_backward(rec, grad, create_graph)
            if _Anomaly.enabled:
                _check_anomaly(rec, grad, input_grads)
            input_grads = [None if e is None else _fit(g, t) for t, e, g in zip(rec.inputs, rec.edges, input_grads)]
            for edge, g in zip(rec.edges, input_grads):
                if isinstance(edge, Tensor):
                    leaves.add(edge, g)  # a leaf: summed over its uses, then into .grad
                elif edge is not None and g is not None:
                    pending.add(edge, g)  # another record: it runs later (it is older)
            if trace is not None:
                trace(rec, grad, input_grads)
            if not retain_graph:
                rec._release()
        leaves.finish_all()


def _call_backward(rec, grad, create_graph):
    """One record's gradients.  ``backward`` is written with ops, so under create_graph the
    gradient is recorded too and can be differentiated again; when nothing records it, an
    op's ``fused_backward`` (the same gradient from one kernel) runs instead, where it has
    one.  The fallback: a once_differentiable op has only a backward on raw arrays, whose
    results then refuse a second differentiation."""
    fused = None if create_graph else rec.fused_backward
    if fused is not None:
        grads = fused(grad)
    elif create_graph and rec.once_differentiable:
        with no_grad():
            grads = rec.backward(grad)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return tuple(
            None if g is None else _OnceDifferentiableResult.apply(g, grad, *rec.inputs, op=rec.name)
            for g in grads
        )
    else:
        grads = rec.backward(grad)
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(rec.inputs):
        raise RuntimeError(
            f"{rec.name}.backward returned {len(grads)} gradients for {len(rec.inputs)} inputs"
        )
    return grads


def _as_grad(t, g, what):
    if g is None:
        if t.numel() != 1:
            raise RuntimeError(
                f"{what}: grad can be implicitly created only for a scalar output, but the output "
                f"has shape {t.shape}; pass a gradient of that shape (e.g. ones_like(out)) "
                "or reduce it first (out.sum())"
            )
        return Tensor(backend.array_module(t.array).ones(t.shape, dtype=t.dtype))
    if not isinstance(g, Tensor):
        g = Tensor(g, dtype=t.dtype, device=t.device)
    if g.shape != t.shape or g.device != t.device or g.dtype.kind not in "fc":
        # caught here, not deep inside the first op's backward (or, on a GPU, as a TypeError of CuPy's)
        raise RuntimeError(
            f"{what}: the gradient given for the output must match it: got shape {g.shape}, dtype "
            f"{g.dtype}, device {g.device} for an output of shape {t.shape}, dtype {t.dtype}, device "
            f"{t.device} (made by {t._record.name if t._record is not None else 'no op: a leaf'}); "
            "convert it with .to(device, dtype) / reshape it first")
    if g.dtype != t.dtype:  # another floating dtype: cast, as PyTorch does (float64 seeds, float32 output)
        g = g.astype(t.dtype)
    return g


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaf) into ``leaf.grad`` for every leaf that requires grad
    (PyTorch's ``torch.autograd.backward``; ``t.backward(g)`` is ``backward(t, g)``).

    ``tensors``: one tensor or several (their gradients add up), each seeded by its entry of
    ``grad_tensors`` (needed unless it has one element).  ``retain_graph`` keeps the saved
    values for another backward (always so with ``create_graph``).  ``inputs``: accumulate into the ``.grad`` of these tensors only."""
    single = isinstance(tensors, Tensor)
    tensors = [tensors] if single else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor) or single:
        grad_tensors = [grad_tensors] + [None] * (len(tensors) - 1)
    for t in tensors:
        if not t.requires_grad:
            raise RuntimeError(
                f"backward: the tensor (shape {t.shape}) does not require grad and has no "
                "record on the tape. Create inputs with requires_grad=True, and do not compute the "
                "loss inside no_grad()."
            )
    retain_graph = bool(retain_graph) or create_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        grads = grad(tensors, inputs, grad_tensors, retain_graph, create_graph, allow_unused=True)
        for t, g in zip(inputs, grads):
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        return
    seeds = [_as_grad(t, g, "backward") for t, g in zip(tensors, grad_tensors)]
    run_backward(tensors, seeds, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False,
         materialize_grads=False):
    """Return d(outputs)/d(inputs) as a tuple, without touching any ``.grad``.

    Like ``torch.autograd.grad``.  With ``create_graph=True`` the returned gradients are
    themselves on the tape, so they can be differentiated again (second derivatives).
    ``materialize_grads=True``: zeros (not None) for inputs the outputs do not depend on.
    """
    allow_unused = allow_unused or materialize_grads
    single = isinstance(outputs, Tensor)
    outputs = [outputs] if single else list(outputs)
    inputs_list = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs_list):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    for t in outputs:
        if not t.requires_grad:
            raise RuntimeError(f"grad: an output (shape {t.shape}) does not require grad")
    seeds = [_as_grad(t, g, "grad") for t, g in zip(outputs, grad_outputs)]
    if retain_graph is None:
        retain_graph = create_graph
    capture = {id(t): None for t in inputs_list}
    run_backward(outputs, seeds, retain_graph, create_graph, capture)
    result = []
    for i, t in enumerate(inputs_list):
        g = capture[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is None and materialize_grads:
            g = Tensor._wrap(backend.array_module(t.array).zeros_like(t.array))
        result.append(g if g is None or create_graph else g.detach())
    return tuple(result)


from .tensor import Tensor  # noqa: E402  (Tensor uses Function; Function makes Tensors)
from . import ops  # noqa: E402
from .gradcheck import gradcheck, gradgradcheck  # noqa: E402,F401  (torch.autograd.gradcheck)
