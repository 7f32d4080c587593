"""Numerical gradient checking (in the spirit of Chainer's ``check_backward``).

``gradcheck(fn, *inputs)`` compares the gradient that autograd computes for
``L = sum_k <v_k, fn(*inputs)_k>`` with central finite differences

    dL/dx_i  ~  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

in float64, for a *random* upstream gradient ``v``.  Never all ones: sum(softmax(x)) is
constant, so with ones a broken softmax backward would pass unnoticed.

``gradgradcheck`` does the same for the gradient itself (second derivatives), by checking
the function ``(inputs, v) -> grad(fn(inputs), inputs, v, create_graph=True)``.

For large inputs, ``directional=True`` checks one random directional derivative per input
(two evaluations of fn instead of two per element).

Inputs may live on any device: the upstream gradients are made on each output's device, and
the sums and differences are taken on the host (float64 NumPy copies), so the same check runs
on the CPU, on a GPU and on the emulated device.

``gradcheck`` also checks that the ops declare what their backward reads (``check_inplace``):
for every op in the graph and every tensor it was given, it runs fn again, edits that tensor in
place after the forward, and requires backward either to raise the engine's "modified by an
inplace operation" error or to give exactly the unedited gradient.  An op whose backward reads
a value it did not declare (``Function.saves_inputs`` / ``saves_output``) fails here.
"""
import functools

import numpy as np

from . import autograd, backend
from .autograd import no_grad
from .tensor import Tensor

#: Callables told which ops each check saw: ``observer(kind, op_names)``, kind "gradcheck",
#: "gradgradcheck" or "inplace" (the in-place edits of check_inplace).  The test suite adds one
#: to prove that every registered op was really checked (tests/coverage.py).
observers = []


def _report(kind, names):
    for observe in observers:
        observe(kind, names)


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def _as_tuple(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def _ops_in_graph(outputs):
    names = set()
    records = [o._record for o in outputs if isinstance(o, Tensor) and o._record is not None]
    try:
        for rec in autograd._records_in_order(records):
            names.add(rec.name)
    except RuntimeError:
        pass
    return names


def _prepare(inputs):
    """float64 copies of the inputs (views keep their strides), and which ones to check."""
    prepared, wrt = [], []
    any_requires = any(isinstance(t, Tensor) and t.requires_grad for t in inputs)
    for t in inputs:
        if not isinstance(t, Tensor):
            prepared.append(t)
            continue
        data = t.array
        if data.dtype.kind == "f" and data.dtype != np.float64:
            data = data.astype(np.float64)
        check = data.dtype.kind == "f" and (t.requires_grad or not any_requires)
        p = Tensor._wrap(data)
        if check:
            p.requires_grad = True
            wrt.append(p)
        prepared.append(p)
    return prepared, wrt


def _host(array):
    """A float64 NumPy copy of an array on any device (a download from the GPU; on the CPU a
    copy too, so it keeps its values while the input is perturbed)."""
    return np.array(backend.to_device(array, backend.CPU), dtype=np.float64, copy=True)


def _random_like(rng, t):
    """Standard normal values of ``t``'s shape and dtype, on its device (an upstream gradient)."""
    return Tensor._wrap(backend.to_device(rng.standard_normal(t.shape).astype(t.dtype), t.device))


def _not_writable(array):
    """True for memory nobody can edit in place: NumPy's read-only arrays (broadcast views), and
    a view with a zero stride over more than one element on any device (CuPy has no read-only
    flag; a write there would write one element many times)."""
    return (not getattr(array.flags, "writeable", True)
            or any(s == 0 and n > 1 for s, n in zip(array.strides, array.shape)))


def _label(fn, names):
    base = getattr(fn, "__name__", type(fn).__name__)
    return f"{base} (ops: {', '.join(sorted(names))})" if names else base


def _pytorch_arguments(check):
    """PyTorch's ways of calling gradcheck / gradgradcheck, besides minigrad's: the inputs as one
    tuple, ``gradcheck(fn, (x, y))``; ``raise_exception=False`` returns False instead of raising;
    ``fast_mode=True`` checks random directional derivatives (``directional=True``)."""

    @functools.wraps(check)
    def wrapper(fn, *inputs, raise_exception=True, fast_mode=False, **kwargs):
        if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
            inputs = tuple(inputs[0])
        if fast_mode:
            kwargs["directional"] = True
        try:
            return check(fn, *inputs, **kwargs)
        except GradcheckError:
            if raise_exception:
                raise
            return False

    return wrapper


@_pytorch_arguments
def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, directional=False, seed=0,
              check_inplace=True, _track=True):
    """Raise GradcheckError unless autograd's gradient of ``fn`` matches finite differences.

    ``inputs`` are tensors (copied to float64; those with requires_grad are checked, or all
    floating ones when none has it) or other arguments passed through unchanged, given one by
    one or as one tuple (PyTorch's ``gradcheck(fn, (x,))``, see _pytorch_arguments).
    ``check_inplace``: also check that no op's backward reads a value edited in place since
    its forward without the engine noticing (see the module docstring).
    Returns True on success so it can sit in an ``assert``.
    """
    rng = np.random.default_rng(seed)
    xs, wrt = _prepare(inputs)
    if not wrt:
        raise ValueError("gradcheck: no floating-point input to check")

    outputs = _as_tuple(fn(*xs))
    names = _ops_in_graph(outputs)
    if _track:
        _report("gradcheck", names)
    upstream = [None if not isinstance(o, Tensor) or not o.requires_grad else _random_like(rng, o)
                for o in outputs]
    upstream_host = [None if v is None else _host(v.array) for v in upstream]

    pairs = [(o, v) for o, v in zip(outputs, upstream) if v is not None]
    if pairs:
        analytic = autograd.grad([o for o, _ in pairs], wrt, [v for _, v in pairs], allow_unused=True)
    else:
        analytic = [None] * len(wrt)
    analytic = [np.zeros(x.shape) if g is None else _host(g.array) for x, g in zip(wrt, analytic)]
    if check_inplace and pairs:
        _check_inplace_edits(fn, xs, wrt, upstream, analytic, names)
        if _track:
            _report("inplace", names)

    def objective():
        with no_grad():
            outs = _as_tuple(fn(*xs))
        total = 0.0
        for o, v in zip(outs, upstream_host):
            if v is not None:
                total += float(np.sum(_host(o.array) * v))
        return total

    for k, (x, a) in enumerate(zip(wrt, analytic)):
        position = next(i for i, p in enumerate(xs) if p is x)
        original = _host(x.array)  # x.array is set from host values below, on any device

        def evaluate_at(values):
            backend.array_module(x.array).copyto(x.array, backend.to_device(values.astype(x.dtype), x.device))
            return objective()

        if directional:
            d = rng.standard_normal(x.shape)
            plus, minus = evaluate_at(original + eps * d), evaluate_at(original - eps * d)
            evaluate_at(original)
            numeric = (plus - minus) / (2 * eps)
            projected = float(np.sum(a * d))
            if not abs(projected - numeric) <= atol + rtol * abs(numeric):
                raise GradcheckError(
                    f"gradcheck failed for {_label(fn, names)}: input {position} (shape {x.shape}), "
                    f"directional derivative: analytic {float(projected)!r} vs numerical {float(numeric)!r}"
                )
            continue
        numeric = np.zeros(x.shape)
        for idx in np.ndindex(*x.shape):
            old = original[idx]
            x.array[idx] = old + eps  # a scalar from the host: allowed on every device
            plus = objective()
            x.array[idx] = old - eps
            minus = objective()
            x.array[idx] = old
            numeric[idx] = (plus - minus) / (2 * eps)
        error = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and (error.max() > 0 or not np.all(np.isfinite(a))):
            worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(a), error, np.inf)), x.shape)
            raise GradcheckError(
                f"gradcheck failed for {_label(fn, names)}: input {position} (shape {x.shape}), "
                f"worst element {tuple(int(i) for i in worst)} at x={float(original[worst])!r}: "
                f"analytic {float(a[worst])!r} vs numerical {float(numeric[worst])!r} "
                f"(atol={atol}, rtol={rtol}); max |difference| {float(np.max(np.abs(a - numeric)))!r}"
            )
    return True


def _edited(array):
    """Different values of the same dtype and shape (every element changes, where it can)."""
    xp = backend.array_module(array)
    if array.dtype.kind == "b":
        return ~array
    if array.dtype.kind in "iu":  # the same values, moved round: indices stay in range
        return xp.roll(array.reshape(-1), 1).reshape(array.shape)
    return array + (0.5 + abs(array)) * 0.75


def _check_inplace_edits(fn, xs, wrt, upstream, expected, names):
    """For each op in fn's graph and each tensor it was given (its inputs and tensor
    arguments): run fn on fresh copies, edit that tensor in place after the forward, and
    require backward to raise the engine's in-place error or to give the unedited gradient."""

    def run():
        copies = [Tensor._wrap(x.array.copy()) if isinstance(x, Tensor) else x for x in xs]
        for c, x in zip(copies, xs):
            if isinstance(x, Tensor):
                c.requires_grad = x.requires_grad
        outs = [(o, v) for o, v in zip(_as_tuple(fn(*copies)), upstream) if v is not None]
        roots = [o._record for o, _ in outs if o._record is not None]
        records = sorted(autograd._records_in_order(roots), key=lambda r: r.seq)
        return [c for c, x in zip(copies, xs) if any(x is w for w in wrt)], outs, records

    for r, rec in enumerate(run()[2]):
        given = [f"input {i}" for i in range(len(rec.inputs))] + [f"argument {n!r}" for n, _, _ in rec.constants]
        for k, what in enumerate(given):
            targets, outs, records = run()
            rec = records[r]
            edited = (list(rec.inputs) + [t for _, t, _ in rec.constants])[k]
            if _not_writable(edited.array):
                continue  # nobody can write into it
            original = edited.array.copy()  # fn may hold it (a closure's tensor): put it back after
            edited._write("gradcheck", _edited(edited.array))
            try:
                grads = autograd.grad([o for o, _ in outs], targets, [v for _, v in outs], allow_unused=True)
            except RuntimeError as e:
                if "modified by an inplace operation" not in str(e):
                    raise
                continue  # the engine noticed: right
            finally:
                backend.array_module(original).copyto(edited.array, original)
            for j, (g, want) in enumerate(zip(grads, expected)):
                got = np.zeros(want.shape) if g is None else _host(g.array)
                if not np.allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True):
                    raise GradcheckError(
                        f"gradcheck failed for {_label(fn, names)}: after {what} of {rec.name} (shape "
                        f"{edited.shape}) was edited in place following the forward, backward neither "
                        f"raised nor gave the unedited gradient (input {j}'s differs): "
                        f"{rec.name}.backward reads a value its class does not declare "
                        "(saves_inputs / saves_output)")


@_pytorch_arguments
def gradgradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, directional=False, seed=0):
    """Check second derivatives: gradcheck of ``(inputs, v) -> d<v, fn(inputs)>/d inputs``."""
    rng = np.random.default_rng(seed + 1)
    xs, wrt = _prepare(inputs)
    if not wrt:
        raise ValueError("gradgradcheck: no floating-point input to check")
    outs = _as_tuple(fn(*xs))
    _report("gradgradcheck", _ops_in_graph(outs))
    vs = [_random_like(rng, o) for o in outs]
    positions = [i for i, x in enumerate(xs) if any(x is w for w in wrt)]

    def first_derivative(*args):
        args = list(args)
        call_args, v = args[:len(xs)], args[len(xs):]
        with autograd.enable_grad():  # also inside gradcheck's no_grad evaluations
            outs = _as_tuple(fn(*call_args))
            targets = [call_args[i] for i in positions]
            grads = autograd.grad(list(outs), targets, v, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None and g.requires_grad)

    for v in vs:
        v.requires_grad = True
    first_derivative.__name__ = f"grad of {getattr(fn, '__name__', 'fn')}"
    return gradcheck(first_derivative, *xs, *vs, eps=eps, atol=atol, rtol=rtol,
                     directional=directional, seed=seed + 2, check_inplace=False, _track=False)
