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
"""
import os
import shutil
import subprocess
import sys

from .autograd import Function, parents
from .tensor import Tensor

__all__ = ["print_tape", "tape", "to_dot", "render"]


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
