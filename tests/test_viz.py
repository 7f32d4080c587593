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


# -- explain: the backward pass narrated with numbers -------------------------------------------


def _two_three_one():
    """examples/backprop_by_hand.py's network: unit 2 is dead, so ReLU blocks its gradient."""
    x, t = mg.tensor([[1.0, 2.0]], dtype=mg.float64), mg.tensor([[1.0]], dtype=mg.float64)
    params = {name: mg.tensor(v, dtype=mg.float64, requires_grad=True) for name, v in (
        ("W1", [[0.5, -0.3, 0.4], [-0.2, 0.1, 0.3]]), ("b1", [0.1, -0.2, 0.0]),
        ("W2", [[0.6], [-0.4], [0.3]]), ("b2", [0.05]))}
    h = (x @ params["W1"] + params["b1"]).relu()
    loss = ((h @ params["W2"] + params["b2"] - t) ** 2).sum()
    return loss, params, {"x": x, "t": t, **params}


def test_explain_prints_the_chain_rule_with_autograds_numbers():
    loss, params, names = _two_three_one()
    loss2, params2, _ = _two_three_one()
    reference = mg.grad(loss2, list(params2.values()))  # the same network, a separate graph
    out = io.StringIO()
    steps = mg.viz.explain(loss, names={**names, "L": loss}, file=out)
    text = out.getvalue()
    # one step per record, newest first, and each step is the chain rule: passes = J^T incoming
    assert [s["op"] for s in steps] == ["Sum", "PowScalar", "Sub", "Add", "MatMul", "ReLU", "Add", "MatMul"]
    for step in steps:
        for jac, passed in zip(step["local"], step["passes"]):
            np.testing.assert_allclose(jac.T @ np.ravel(step["incoming"]), np.ravel(passed), rtol=1e-12, atol=1e-15)
    relu = steps[5]
    np.testing.assert_array_equal(np.diag(relu["local"][0]), [1.0, 0.0, 1.0])  # the dead unit's gate
    # explain ran the backward: the leaves' .grad are autograd's gradients
    for p, want in zip(params.values(), reference):
        np.testing.assert_allclose(p.grad.numpy(), want.numpy(), rtol=1e-12, atol=0)
    assert "ReLU:  z = max(x, 0)" in text  # each step names its op and the op's math
    assert "(elementwise: the Jacobian's diagonal)" in text
    assert "W1.grad = [[-0.636,  0.   , -0.318]," in text
    assert "dL/dW2" in text and "incoming  dL/dL = 1." in text


def test_explain_refuses_graphs_too_large_to_print_and_non_scalars():
    x = mg.randn(100, requires_grad=True)
    with pytest.raises(ValueError, match=r"explain: .*shape \(100,\) \(100 elements\), more than max_elements=64"):
        mg.viz.explain((x * 2).sum(), file=io.StringIO())
    y = mg.tensor([1.0], requires_grad=True)
    for _ in range(50):
        y = y * 1.0
    with pytest.raises(ValueError, match="explain: the graph has 51 records, more than max_records=40"):
        mg.viz.explain(y.sum(), file=io.StringIO())
    with pytest.raises(ValueError, match=r"explain: needs a scalar that requires grad \(a loss\), got shape \(2,\)"):
        mg.viz.explain(mg.ones(2, requires_grad=True) * 2)
