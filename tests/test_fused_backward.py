"""The one higher-derivative mechanism (docs/autograd.md, "Higher derivatives"): an op's
``backward`` is its gradient written with minigrad ops, and an op with a ``fused_backward``
computes the same gradient in one kernel, which the engine runs when nothing records the
gradient.  So the two must agree: for every registered op that has one, on every kernel
table, the gradients without create_graph (the kernel) equal those with it (the ops).

Both are float64 evaluations of the same formulas, differing only in the order of their
roundings: at most a few hundred roundings of 2^-53 relative to the magnitude of the terms
(inputs of order 1 here), so 1e-12 of that magnitude is a bound with a wide margin; a wrong
formula in either differs at order 1.
"""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import backend
from minigrad.autograd import REGISTRY
from minigrad.ops.rnn import GRUSequence, LSTMCell, LSTMSequence, RNNSequence
from tests.tables import TABLES


def _cell(fn, gates, hidden=3, inputs=4, batch=2, lstm=False):
    """A recurrent cell's call on (x, h[, c], w_ih, w_hh, b_ih, b_hh) of matching shapes."""
    shapes = [(batch, inputs), (batch, hidden)] + ([(batch, hidden)] if lstm else []) + [
        (gates * hidden, inputs), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,)]
    return shapes, fn


# name -> (input shapes, fn of those tensors)
CALLS = {
    "Linear": ([(3, 4), (5, 4), (5,)], F.linear),
    "ReLU": ([(3, 4)], mg.relu),
    "LeakyReLU": ([(3, 4)], lambda x: F.leaky_relu(x, 0.2)),
    "Sigmoid": ([(3, 4)], mg.sigmoid),
    "Tanh": ([(3, 4)], mg.tanh),
    "GELU": ([(3, 4)], mg.gelu),
    "SiLU": ([(3, 4)], mg.silu),
    "Softmax": ([(3, 4)], lambda x: F.softmax(x, 1)),
    "LogSoftmax": ([(3, 4)], lambda x: F.log_softmax(x, 0)),
    "BatchNorm": ([(5, 3, 2, 2), (3,), (3,)], lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)),
    "LayerNorm": ([(3, 4), (4,), (4,)], lambda x, w, b: F.layer_norm(x, (4,), w, b)),
    "ScaledDotProductAttention": ([(2, 3, 4), (2, 5, 4), (2, 5, 4)],
                                  lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=False)),
    "RNNCell": _cell(lambda x, h, *w: mg.ops.rnn_cell(x, h, *w), 1),
    "LSTMCell": _cell(LSTMCell.apply, 4, lstm=True),  # (the op itself: its output is [h', c'])
    "GRUCell": _cell(mg.ops.gru_cell, 3),
    # x (T=3, B=2, I=4), h_0, c_0, the weights and biases of an LSTM layer of H=3 units
    "LSTMSequence": ([(3, 2, 4), (2, 3), (2, 3), (12, 4), (12, 3), (12,), (12,)], LSTMSequence.apply),
    "GRUSequence": ([(3, 2, 4), (2, 3), (9, 4), (9, 3), (9,), (9,)], GRUSequence.apply),
    "RNNSequence": ([(3, 2, 4), (2, 3), (3, 4), (3, 3), (3,), (3,)],
                    lambda *ts: RNNSequence.apply(*ts, nonlinearity="tanh")),
}


def _both_directions(name):
    x, *own = CALLS[name][0]
    return [x] + own + own


MORE = {  # the other branches of the same ops
    "Linear": ([(2, 3, 4), (5, 4)], F.linear),  # leading axes folded into one product; no bias
    "GELU": ([(3, 4)], lambda x: mg.gelu(x, approximate="tanh")),
    "BatchNorm": ([(5, 3), (3,), (3,)], lambda x, w, b: F.batch_norm(
        x, mg.zeros(3, dtype=x.dtype), mg.ones(3, dtype=x.dtype), w, b, training=False)),
    "ScaledDotProductAttention": ([(1, 4, 3)] * 3, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    "RNNCell": _cell(lambda x, h, *w: mg.ops.rnn_cell(x, h, *w, nonlinearity="relu"), 1),
    # both directions of a layer in one op: x, then the forward direction's inputs, then the reverse one's
    "LSTMSequence": (_both_directions("LSTMSequence"), lambda *ts: LSTMSequence.apply(*ts, reverse=(False, True))),
    "GRUSequence": (_both_directions("GRUSequence"), lambda *ts: GRUSequence.apply(*ts, reverse=(False, True))),
    "RNNSequence": (_both_directions("RNNSequence"),
                    lambda *ts: RNNSequence.apply(*ts, nonlinearity="relu", reverse=(False, True))),
}


def test_every_op_with_a_fused_backward_is_compared():
    from tests.test_registry import import_package_modules

    import_package_modules()
    fused = {name for name, cls in REGISTRY.items() if cls.fused_backward is not None}
    assert fused == set(CALLS), sorted(fused ^ set(CALLS))


CASES = [pytest.param(name, CALLS[name], id=name) for name in sorted(CALLS)] + [
    pytest.param(name, MORE[name], id=f"{name}-2") for name in sorted(MORE)]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("name,call", CASES)
def test_fused_backward_equals_the_backward_written_with_ops(table, name, call):
    shapes, fn = call
    rng = np.random.default_rng(len(name))
    previous = backend.set_cpu_kernels(table)
    try:
        xs = [mg.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
        out = fn(*xs)
        g = mg.tensor(rng.standard_normal(out.shape))
        assert out._record.name == name  # (the op under test made the output)
        fused = mg.grad(out, xs, g, retain_graph=True, allow_unused=True)
        with_ops = mg.grad(out, xs, g, create_graph=True, allow_unused=True)
        for i, (a, b) in enumerate(zip(fused, with_ops)):
            assert (a is None) == (b is None), f"input {i}"
            if a is not None:
                scale = 1 + np.abs(b.numpy()).max()
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-12 * scale, err_msg=f"input {i}")
    finally:
        backend.set_cpu_kernels(previous)
