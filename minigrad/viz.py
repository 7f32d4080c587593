"""Looking at the tape: print it, or draw it with Graphviz.

    >>> import minigrad as mg, minigrad.viz
    >>> x = mg.tensor([1.0, 2.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> mg.viz.print_tape(y, names={"x": x})
    #0   Mul  (2,) x, (2,) x -> (2,)
    #1   Sum  (2,) #0 -> ()

Each line is one record, in recording order (the order backward replays in reverse): its
sequence number, the op, where each input came from (a named or ``leaf`` tensor that requires
grad, a ``const``, or the record that produced it) and the output shape.

``to_dot`` returns the same graph as Graphviz dot source; ``render`` runs the ``dot`` program
on it (install Graphviz for that, or paste ``to_dot``'s text into any online dot viewer).

``explain(loss)`` runs ``loss.backward()`` and narrates it: the chain rule with real numbers,
one record at a time, ending at each leaf's ``.grad`` (docs/tutorial.md shows it).
"""
import os
import shutil
import subprocess
import sys

import numpy as np

from . import autograd, backend
from .autograd import Function, parents
from .tensor import Tensor

__all__ = ["print_tape", "tape", "to_dot", "render", "explain"]


def _collect(tensor):
    """Records reachable from ``tensor``, oldest first (recording order).

    Unlike the engine this does not raise on records freed by a backward: they are listed
    (marked freed) but their inputs are gone, so the walk stops there."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"viz: expected a Tensor, got {type(tensor).__name__}")
    seen, found = set(), []
    stack = [tensor._record] if tensor._record is not None else []
    while stack:
        rec = stack.pop()
        if id(rec) in seen:
            continue
        seen.add(id(rec))
        found.append(rec)
        if rec.inputs is not None:
            stack.extend(p for p in parents(rec) if id(p) not in seen)
    found.sort(key=lambda r: r.seq)
    return found


def _names_by_id(names):
    return {id(t): name for name, t in (names or {}).items()}


def _producer(rec, i):
    """The record that produced input ``i`` of ``rec`` when it ran, or None (a leaf/const)."""
    edge = rec.edges[i]
    return edge if isinstance(edge, Function) else None


def _describe_input(rec, i, names):
    t, producer = rec.inputs[i], _producer(rec, i)
    if id(t) in names:
        return names[id(t)]
    if producer is not None:
        return f"#{producer.seq}"
    return "leaf" if rec.edges[i] is not None else "const"


def _output_shape(rec):
    ref = getattr(rec, "_output_ref", None)
    out = ref() if ref is not None else None
    return out.shape if out is not None else None


def tape(tensor, names=None):
    """The lines ``print_tape`` prints, as a list of strings."""
    names = _names_by_id(names)
    records = _collect(tensor)
    if not records:
        what = names.get(id(tensor), "leaf" if tensor.requires_grad else "const")
        return [f"(no records: the tensor is a {what} of shape {tensor.shape})"]
    width = max(len(r.name) for r in records)
    lines = []
    for rec in records:
        if rec.inputs is None:
            lines.append(f"#{rec.seq:<3} {rec.name:<{width}}  (saved values freed by backward)")
            continue
        ins = ", ".join(f"{t.shape} {_describe_input(rec, i, names)}" for i, t in enumerate(rec.inputs))
        lines.append(f"#{rec.seq:<3} {rec.name:<{width}}  {ins} -> {_output_shape(rec)}")
    return lines


def print_tape(tensor, file=None, names=None):
    """Print every record reachable from ``tensor`` in recording order, one per line:
    ``#seq Op  input shapes (leaf / const / #producer) -> output shape``.

    ``names`` maps display names to tensors (``{"w1": w1}``) to label them in the listing."""
    file = sys.stdout if file is None else file
    for line in tape(tensor, names):
        print(line, file=file)


def _quote(text):
    text = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + text + '"'


def to_dot(tensor, names=None):
    """Graphviz dot source of the graph that computed ``tensor``: a box per op (labelled with
    its name, record number and output shape), an ellipse per leaf or constant input, and an
    edge along every path a value takes; the result is drawn double-bordered."""
    names = _names_by_id(names)
    lines = ["digraph tape {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    records = _collect(tensor)
    leaves = {}

    def leaf_node(t):
        if id(t) not in leaves:
            key = f"t{len(leaves)}"
            leaves[id(t)] = key
            kind = "leaf" if t.requires_grad else "const"
            label = f"{names.get(id(t), kind)}\n{t.shape}"
            style = "filled" if t.requires_grad else "dashed"
            lines.append(f"  {key} [shape=ellipse, style={style}, fillcolor=lightblue, label={_quote(label)}];")
        return leaves[id(t)]

    for rec in records:
        shape = _output_shape(rec)
        label = f"{rec.name} #{rec.seq}" + (f"\n-> {shape}" if shape is not None else "\n(freed)")
        lines.append(f"  r{rec.seq} [shape=box, label={_quote(label)}];")
    for rec in records:
        for i, t in enumerate(rec.inputs or ()):
            producer = _producer(rec, i)
            src = f"r{producer.seq}" if producer is not None else leaf_node(t)
            lines.append(f'  {src} -> r{rec.seq} [label="{i}"];')
    if not records:
        leaf_node(tensor)
    else:
        lines.append(f"  r{tensor._record.seq} [peripheries=2];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor, path, names=None):
    """Draw the graph into ``path`` with Graphviz's ``dot`` (format from the suffix: .png,
    .svg, .pdf; default png).  Raises RuntimeError if ``dot`` is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "render: the Graphviz `dot` program is not installed (not found on PATH). Install "
            "Graphviz (apt install graphviz, brew install graphviz, conda install graphviz), or "
            "save minigrad.viz.to_dot(tensor) to a .dot file and open it in any dot viewer."
        )
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    result = subprocess.run([dot, f"-T{fmt}", "-o", path], input=to_dot(tensor, names),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"render: dot failed (exit {result.returncode}) writing {path}: "
                           f"{result.stderr.strip()}")
    return path


# ----------------------------------------------------------------------------------------
# explain: the backward pass narrated with numbers


def _numbers(t):
    a = np.asarray(backend.to_device(t.array if isinstance(t, Tensor) else t, backend.CPU), dtype=np.float64)
    return a if a.ndim else float(a)


def _line(head, value, note="", file=None):
    """``head = value``, a multi-line array indented under its first line."""
    text = np.array2string(np.asarray(value), precision=4, suppress_small=True, separator=", ")
    text = text.replace("\n", "\n" + " " * (len(head) + 3))
    print(f"{head} = {text}" + (f"   {note}" if note else ""), file=file)


def _rule(rec):
    """The op's math, from the first line of its docstring (where every op writes it)."""
    doc = (type(rec).__doc__ or "").strip().splitlines()
    return doc[0].strip() if doc else ""


def _local_derivative(rec, out_shape):
    """d(output)/d(input i) for each input, as a (output elements, input elements) matrix:
    row k is what backward returns for a gradient that is 1 at output element k and 0
    elsewhere (a vector-Jacobian product with a one-hot vector is a row of the Jacobian)."""
    size = int(np.prod(out_shape, dtype=np.int64))
    rows = [[] for _ in rec.inputs]
    xp = backend.array_module(rec.inputs[0].array)
    with autograd.no_grad():
        for k in range(size):
            onehot = xp.zeros(size, dtype=rec.inputs[0].dtype if rec.inputs[0].dtype.kind == "f" else np.float64)
            onehot[k] = 1
            grads = autograd._call_backward(rec, Tensor._wrap(onehot.reshape(out_shape)), False)
            for i, (t, e, g) in enumerate(zip(rec.inputs, rec.edges, grads)):
                g = None if e is None else autograd._fit(g, t)
                rows[i].append(np.zeros(t.numel()) if g is None else np.ravel(_numbers(g)))
    return [np.array(r) for r in rows]


def explain(loss, names=None, file=None, retain_graph=False, max_records=40, max_elements=64):
    """Run ``loss.backward()`` and print every step of it with real numbers: for each record,
    newest first, the op and its rule, its inputs' values, the incoming gradient dL/dz, the
    local derivative dz/dx (the Jacobian, or its diagonal for an elementwise op), and the
    gradient it passes to each input, dL/dx = (dz/dx)^T dL/dz; then each leaf's ``.grad``.

    ``names`` maps display names to tensors (``{"W1": W1}``).  For small graphs only: more
    than ``max_records`` records, or a tensor of more than ``max_elements`` elements, raises
    ValueError (use ``print_tape`` for large graphs).  Returns the steps as a list of dicts
    (op, incoming, local, passes) for programs and tests.
    """
    file = sys.stdout if file is None else file
    if not isinstance(loss, Tensor):
        raise TypeError(f"explain: expected a Tensor, got {type(loss).__name__}")
    if loss.numel() != 1 or not loss.requires_grad:
        raise ValueError(f"explain: needs a scalar that requires grad (a loss), got shape {loss.shape}"
                         f"{'' if loss.requires_grad else ' that does not require grad'}")
    records = _collect(loss)
    if len(records) > max_records:
        raise ValueError(f"explain: the graph has {len(records)} records, more than max_records="
                         f"{max_records} can be printed readably; explain small graphs (like "
                         "examples/backprop_by_hand.py), or use print_tape(loss) to list a large one")
    for rec in records:
        for t in list(rec.inputs) + [rec._output_ref()]:
            if t is not None and t.numel() > max_elements:
                raise ValueError(f"explain: {rec.name} #{rec.seq} involves a tensor of shape {t.shape} "
                                 f"({t.numel()} elements), more than max_elements={max_elements}; "
                                 "explain a smaller example, or raise the limit")
    label = _names_by_id(names)

    def name(t, rec=None, i=None):
        if id(t) in label:
            return label[id(t)]
        producer = _producer(rec, i) if rec is not None else None
        if producer is not None:
            return f"#{producer.seq}"
        return "leaf" if t.requires_grad else "const"

    leaves = {id(t): t for rec in records for t, e in zip(rec.inputs, rec.edges) if isinstance(e, Tensor)}
    steps = []
    print(f"backward of {label.get(id(loss), 'L')}: {len(records)} records, replayed newest first; "
          "each passes dL/dx = (dz/dx)^T dL/dz to its inputs", file=file)

    def narrate(rec, grad, input_grads):
        out = rec._output_ref()
        z = label.get(id(out), f"#{rec.seq}")
        jacobians = _local_derivative(rec, grad.shape)
        print(f"\n#{rec.seq} {rec.name}:  {_rule(rec)}", file=file)
        for i, t in enumerate(rec.inputs):
            _line(f"    input {i}   {name(t, rec, i)}", _numbers(t), file=file)
        _line(f"    incoming  dL/d{z}", _numbers(grad), file=file)
        step = {"op": rec.name, "seq": rec.seq, "incoming": _numbers(grad), "local": [], "passes": []}
        for i, (t, e, g) in enumerate(zip(rec.inputs, rec.edges, input_grads)):
            if e is None:
                continue  # a constant: no gradient wanted
            x, jac = name(t, rec, i), jacobians[i]
            if jac.shape[0] == 1:
                shown, note = jac.reshape(t.shape), "(one output element: dz/dx has x's shape)"
            elif jac.shape[0] == jac.shape[1] and np.array_equal(jac, np.diag(np.diag(jac))):
                shown, note = np.diag(jac).reshape(t.shape), "(elementwise: the Jacobian's diagonal)"
            else:
                shown, note = jac, f"(the Jacobian: a row per element of {z}, a column per element of {x})"
            passed = _numbers(g) if g is not None else np.zeros(t.shape)
            _line(f"    local     d{z}/d{x}", shown, note, file=file)
            _line(f"    passes    dL/d{x}", passed, file=file)
            step["local"].append(jac)
            step["passes"].append(passed)
        steps.append(step)

    root = Tensor._wrap(backend.array_module(loss.array).ones(loss.shape, dtype=loss.dtype))
    autograd.run_backward([loss], [root], retain_graph=retain_graph, trace=narrate)
    print("\nleaves (each .grad is the sum over every use of the leaf):", file=file)
    for t in leaves.values():
        _line(f"    {label.get(id(t), 'leaf ' + str(t.shape))}.grad", _numbers(t.grad), file=file)
    return steps
