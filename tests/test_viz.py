"""minigrad.viz: print_tape, to_dot, render."""
import io
import os
import stat
import sys

import numpy as np
import pytest

import minigrad as mg
import minigrad.viz


def _graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    w = mg.tensor([3.0, 4.0], requires_grad=True)
    h = mg.exp(x * w)
    y = (h + 1.0).sum()
    return x, w, y


def test_import_minigrad_viz_is_the_module():
    import importlib

    assert importlib.import_module("minigrad.viz") is mg.viz
    assert callable(mg.viz.print_tape) and callable(mg.viz.to_dot) and callable(mg.viz.render)


def test_print_tape_lists_records_in_recording_order():
    x, w, y = _graph()
    buf = io.StringIO()
    mg.viz.print_tape(y, file=buf, names={"x": x})
    lines = buf.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["Mul", "Exp", "Add", "Sum"]
    seqs = [int(line.split()[0].lstrip("#")) for line in lines]
    assert seqs == sorted(seqs) and seqs[-1] == y.grad_fn.seq
    assert lines[0].endswith("(2,) x, (2,) leaf -> (2,)")  # named leaf, unnamed leaf
    assert lines[1].endswith(f"(2,) #{seqs[0]} -> (2,)")  # produced by the Mul record
    assert lines[2].endswith(f"(2,) #{seqs[1]}, () const -> (2,)")
    assert lines[3].endswith(f"(2,) #{seqs[2]} -> ()")


def test_print_tape_defaults_to_stdout_and_handles_leaves_and_freed_graphs(capsys):
    x, w, y = _graph()
    mg.viz.print_tape(x)
    assert "no records" in capsys.readouterr().out
    y.backward()
    mg.viz.print_tape(y)
    out = capsys.readouterr().out
    assert "Sum" in out and "freed by backward" in out


def test_to_dot_has_op_and_leaf_nodes_and_edges():
    x, w, y = _graph()
    dot = mg.viz.to_dot(y, names={"x": x, "w": w})
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    ops = [rec for rec in ("Mul", "Exp", "Add", "Sum") if f'label="{rec} #' in dot]
    assert ops == ["Mul", "Exp", "Add", "Sum"]
    assert dot.count("shape=box") == 4
    assert dot.count("shape=ellipse") == 3  # x, w and the constant 1.0
    assert 'label="x\\n(2,)"' in dot and 'label="w\\n(2,)"' in dot
    # x -> Mul, w -> Mul, Mul -> Exp, Exp -> Add, const -> Add, Add -> Sum
    assert dot.count(" -> ") == 6
    add = y.grad_fn.inputs[0].grad_fn
    exp = add.inputs[0].grad_fn
    assert f"r{exp.seq} -> r{add.seq}" in dot and f"r{add.seq} -> r{y.grad_fn.seq}" in dot
    assert f"r{y.grad_fn.seq} [peripheries=2]" in dot  # the result is marked


def test_render_without_dot_raises_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot` anywhere
    x, w, y = _graph()
    with pytest.raises(RuntimeError, match=r"render: the Graphviz `dot` program is not installed"):
        mg.viz.render(y, tmp_path / "g.png")


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell-script stand-in for dot")
def test_render_calls_dot_with_the_format_and_the_source(monkeypatch, tmp_path):
    # a stand-in `dot` that records its arguments and its stdin, then writes the output file
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n'
                    'cat > "$(dirname "$0")/stdin"\necho rendered > "$3"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake.parent) + os.pathsep + os.environ.get("PATH", ""))
    x, w, y = _graph()
    out = tmp_path / "graph.svg"
    assert mg.viz.render(y, out) == str(out)
    assert out.read_text() == "rendered\n"
    assert (fake.parent / "args").read_text().split() == ["-Tsvg", "-o", str(out)]
    assert (fake.parent / "stdin").read_text() == mg.viz.to_dot(y)


def test_render_with_real_graphviz(tmp_path):
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    x, w, y = _graph()
    out = mg.viz.render(y, tmp_path / "g.svg")
    assert "<svg" in open(out).read()


def test_viz_rejects_non_tensors():
    with pytest.raises(TypeError, match="viz: expected a Tensor, got ndarray"):
        mg.viz.print_tape(np.ones(2))
