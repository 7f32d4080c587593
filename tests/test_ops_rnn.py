"""The recurrent ops of minigrad/ops/rnn.py (RNNCell, LSTMCell, GRUCell, and LSTMSequence,
GRUSequence, RNNSequence: a whole layer, in one direction or both): gradcheck and
gradgradcheck of each op in float64 (with and without biases, an LSTM whose state h is
narrower than c, non-contiguous inputs); the two backward paths (fused kernel, and the ops
used under create_graph) giving the same gradients; a layer's two directions run at once
giving the same bits; one step against PyTorch's cell functions on every device; the op
through each kernel table; the functional forms' errors.
(The layers: tests/test_nn_rnn.py; the kernels against reference.py:
tests/test_kernels_contract.py and tests/test_cuda_rnn.py.)"""
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend
from minigrad.backend import cpu_threads
from minigrad.ops.rnn import GRUSequence, LSTMSequence, RNNSequence, gru_cell, lstm_cell, rnn_cell
from tests.coverage import covers
from tests.strategies import relayout

GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}


def _arrays(kind, b=2, i=3, h=2, p=None, bias=True, seed=0, layout="C"):
    """x, h, (c), w_ih, w_hh, (b_ih, b_hh) as float64 arrays, in ``layout``; p: an LSTM's state width."""
    rng = np.random.default_rng(seed)
    g, p = GATES[kind], p or h
    shapes = [(b, i), (b, p)] + ([(b, h)] if kind == "lstm" else []) + [(g * h, i), (g * h, p)]
    shapes += [(g * h,), (g * h,)] if bias else []
    return [relayout(rng.standard_normal(s), layout) for s in shapes]


def _cell(kind):
    """The functional form as a function of the flat list of tensors _arrays makes."""
    if kind in ("tanh", "relu"):
        return lambda x, h, *w: rnn_cell(x, h, *w, nonlinearity=kind)
    if kind == "lstm":
        return lambda x, h, c, *w: lstm_cell(x, (h, c), *w)
    return gru_cell


@covers("RNNCell", twice=True)
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["tanh", "relu"])
def test_rnn_cell_gradcheck_and_gradgradcheck(kind, bias, layout):
    # (relu: random pre-activations lie within eps = 1e-6 of the kink at 0 with probability ~1e-6)
    inputs = [mg.tensor(a, requires_grad=True) for a in _arrays(kind, bias=bias, layout=layout)]
    assert mg.gradcheck(_cell(kind), *inputs)
    assert mg.gradgradcheck(_cell(kind), *inputs)


@covers("LSTMCell", twice=True)
@pytest.mark.parametrize("layout", ["C", "strided"])
@pytest.mark.parametrize("bias, proj", [(True, None), (False, None), (True, 1)])
def test_lstm_cell_gradcheck_and_gradgradcheck(bias, proj, layout):
    inputs = [mg.tensor(a, requires_grad=True) for a in _arrays("lstm", p=proj, bias=bias, layout=layout)]
    assert mg.gradcheck(_cell("lstm"), *inputs)
    assert mg.gradgradcheck(_cell("lstm"), *inputs)


@covers("GRUCell", twice=True)
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_cell_gradcheck_and_gradgradcheck(bias, layout):
    inputs = [mg.tensor(a, requires_grad=True) for a in _arrays("gru", bias=bias, layout=layout)]
    assert mg.gradcheck(_cell("gru"), *inputs)
    assert mg.gradgradcheck(_cell("gru"), *inputs)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_fused_backward_and_backward_as_ops_agree(kind):
    """The kernel backward (plain backward) and the formulas as ops (create_graph=True) are
    two codings of one derivative: gradgradcheck only proves the second self-consistent, so
    compare them.  float64, the same formulas: agreement to rounding (1e-12)."""
    inputs = [mg.tensor(a, requires_grad=True) for a in _arrays(kind, b=3, i=4, h=5, p=3 if kind == "lstm" else None)]
    out = _cell(kind)(*inputs)
    outs = list(out) if isinstance(out, tuple) else [out]
    seeds = [mg.tensor(np.random.default_rng(9).standard_normal(o.shape)) for o in outs]
    fused = mg.grad(outs, inputs, seeds, retain_graph=True)
    as_ops = mg.grad(outs, inputs, seeds, create_graph=True)
    for a, b in zip(fused, as_ops):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


SEQUENCES = {"lstm": LSTMSequence, "gru": GRUSequence, "tanh": RNNSequence, "relu": RNNSequence}


def _directions(reverse):
    return len(reverse) if isinstance(reverse, tuple) else 1


def _sequence_arrays(kind, t=3, b=2, i=3, h=2, bias=True, seed=0, layout="C", directions=1):
    """x (T, B, I), then per direction h_0 (B, H) (and c_0 for an LSTM), w_ih (G*H, I),
    w_hh (G*H, H), (b_ih, b_hh)."""
    rng = np.random.default_rng(seed)
    g = GATES[kind]
    own = [(b, h)] + ([(b, h)] if kind == "lstm" else []) + [(g * h, i), (g * h, h)]
    own += [(g * h,), (g * h,)] if bias else []
    return [relayout(rng.standard_normal(s), layout) for s in [(t, b, i)] + own * directions]


def _sequence(kind, reverse):
    """The sequence op of ``kind`` as a function of the tensors _sequence_arrays makes."""
    params = {"nonlinearity": kind} if kind in ("tanh", "relu") else {}
    return lambda *ts: SEQUENCES[kind].apply(*ts, reverse=reverse, **params)


def _by_cells(kind, reverse):
    """The definition: the cell op applied step by step; every step's state stacked as the
    sequence op stacks it ((2, T, B, H) for an LSTM, (T, B, H) otherwise); with a tuple of
    directions, each direction so from its own inputs, stacked on a new first axis."""
    def one_direction(reverse, x, h, *rest):
        c, w = (rest[0], rest[1:]) if kind == "lstm" else (None, rest)
        states = [None] * x.shape[0]
        for t in (range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])):
            if kind == "lstm":
                h, c = lstm_cell(x[t], (h, c), *w)
                states[t] = mg.stack([h, c])
            else:
                h = _cell(kind)(x[t], h, *w)
                states[t] = h
        return mg.stack(states, 1 if kind == "lstm" else 0)

    def run(x, *own):
        if not isinstance(reverse, tuple):
            return one_direction(reverse, x, *own)
        n = len(own) // len(reverse)
        return mg.stack([one_direction(r, x, *own[d * n:(d + 1) * n]) for d, r in enumerate(reverse)])
    return run


def _gradcheck_twice(kind, reverse, bias=True, layout="C", seed=0):
    arrays = _sequence_arrays(kind, bias=bias, layout=layout, seed=seed, directions=_directions(reverse))
    inputs = [mg.tensor(a, requires_grad=True) for a in arrays]
    assert mg.gradcheck(_sequence(kind, reverse), *inputs)
    assert mg.gradgradcheck(_sequence(kind, reverse), *inputs)


SEQUENCE_CASES = pytest.mark.parametrize("reverse, bias, layout", [
    (False, True, "C"), (True, True, "C"), (False, False, "strided"), (True, False, "C"), (True, True, "strided"),
    ((False, True), True, "C"), ((False, True), False, "strided")])  # both directions of a layer in one op


@covers("LSTMSequence", twice=True)
@SEQUENCE_CASES
def test_lstm_sequence_gradcheck_and_gradgradcheck(reverse, bias, layout):
    _gradcheck_twice("lstm", reverse, bias, layout)


@covers("GRUSequence", twice=True)
@SEQUENCE_CASES
def test_gru_sequence_gradcheck_and_gradgradcheck(reverse, bias, layout):
    _gradcheck_twice("gru", reverse, bias, layout)


@covers("RNNSequence", twice=True)
@SEQUENCE_CASES
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_sequence_gradcheck_and_gradgradcheck(nonlinearity, reverse, bias, layout):
    # (relu: random pre-activations lie within eps = 1e-6 of the kink at 0 with probability ~1e-6)
    _gradcheck_twice(nonlinearity, reverse, bias, layout)


@pytest.mark.parametrize("reverse", [False, True, (False, True)])
@pytest.mark.parametrize("kind", sorted(SEQUENCES))
def test_sequence_op_is_the_cell_loop(device, kind, reverse):
    """The sequence op against its cell op applied step by step (the definition), outputs and
    every gradient, with the fused kernel loop and with the ops of ``backward`` (create_graph):
    float64, the same formulas summed in another order (one product over all steps instead
    of one per step), so they agree to a few hundred roundings of 2^-53: 1e-12 is loose."""
    arrays = _sequence_arrays(kind, t=4, b=3, i=2, h=3, seed=4, directions=_directions(reverse))

    def grads(fn, **kwargs):
        ts = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
        out = fn(*ts)
        seed = mg.tensor(np.random.default_rng(5).standard_normal(out.shape), device=device)
        return [out] + list(mg.grad(out, ts, seed, **kwargs))

    want = grads(_by_cells(kind, reverse))
    for kwargs in ({}, {"create_graph": True}):
        got = grads(_sequence(kind, reverse), **kwargs)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(cpu_threads.openblas() is None, reason="NumPy's BLAS is not OpenBLAS: its thread count cannot be set")
@pytest.mark.parametrize("kind", sorted(SEQUENCES))
def test_both_directions_at_once_give_the_same_bits(kind, monkeypatch):
    """A bidirectional sequence op runs its two directions on two threads, forward and
    backward, when the BLAS has two to give (backend/cpu_threads.py), and one after the other
    when it has one.  Each direction computes the same thing either way (its products on one
    BLAS thread, the same kernels), so the output and every gradient agree bit for bit."""
    threads = {"_run": set(), "_fused_bptt": set()}
    for name in threads:
        def traced(self, *args, _name=name, _method=getattr(SEQUENCES[kind], name), **kwargs):
            threads[_name].add(threading.get_ident())
            return _method(self, *args, **kwargs)
        monkeypatch.setattr(SEQUENCES[kind], name, traced)
    arrays = [a.astype(np.float32) for a in _sequence_arrays(kind, t=5, b=4, i=3, h=6, seed=8, directions=2)]
    seed = None

    def run(blas):
        nonlocal seed
        before = cpu_threads.blas_threads()
        cpu_threads.blas_threads(blas)
        try:
            ts = [mg.tensor(a, requires_grad=True) for a in arrays]
            out = _sequence(kind, (False, True))(*ts)
            seed = np.random.default_rng(6).standard_normal(out.shape).astype(np.float32) if seed is None else seed
            return [out.numpy()] + [g.numpy() for g in mg.grad(out, ts, mg.tensor(seed))]
        finally:
            cpu_threads.blas_threads(before)

    one_after_another = run(1)
    assert all(len(ids) == 1 for ids in threads.values())
    threads["_run"].clear(), threads["_fused_bptt"].clear()
    at_once = run(2)
    assert all(len(ids) == 2 for ids in threads.values()), threads
    for a, b in zip(at_once, one_after_another):
        np.testing.assert_array_equal(a, b)


_TORCH_CELLS = {"tanh": "rnn_tanh_cell", "relu": "rnn_relu_cell", "lstm": "lstm_cell", "gru": "gru_cell"}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", sorted(GATES))
def test_one_step_matches_torch(device, kind, bias):
    """Outputs and every input's gradient against torch's cell functions, float64: the same
    formulas, summed in another order (BLAS), so they agree to ~1e-15 relative; 1e-10 is loose."""
    torch = pytest.importorskip("torch")
    arrays = _arrays(kind, b=4, i=3, h=5, bias=bias, seed=1)
    ours = [mg.tensor(a, requires_grad=True, device=device) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = _cell(kind)(*ours)
    n_state = 2 if kind == "lstm" else 1
    biases = theirs[n_state + 3:] or [None, None]
    state = tuple(theirs[1:3]) if kind == "lstm" else theirs[1]
    tout = getattr(torch, _TORCH_CELLS[kind])(theirs[0], state, theirs[n_state + 1], theirs[n_state + 2], *biases)
    outs, touts = (list(out), list(tout)) if kind == "lstm" else ([out], [tout])
    seeds = [np.random.default_rng(2 + k).standard_normal(tuple(t.shape)) for k, t in enumerate(touts)]
    mg.autograd.backward(sum((o * mg.tensor(s, device=device)).sum() for o, s in zip(outs, seeds)))
    sum((t * torch.tensor(s)).sum() for t, s in zip(touts, seeds)).backward()
    for o, t in zip(outs, touts):
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def _emulator_or_skip():
    from minigrad.backend.cuda import emulator

    ready = emulator.available()
    if ready is not True:
        pytest.skip(f"the CUDA emulator cannot run here: {ready}")


@pytest.mark.parametrize("table", ["reference", "cpu", "cuda"])
@pytest.mark.parametrize("kind", sorted(GATES))
def test_the_op_through_every_kernel_table(kind, table):
    """One step forward and backward with the table named by MINIGRAD_CPU_KERNELS ("cuda":
    the CUDA C of rnn.cu run by the emulator) against the reference table, in float64: the
    same formulas summed in other orders, 1e-12 relative.  (float32: each table against
    float64 within bounds that follow from the math, tests/test_extremes.py's cell samples.)"""
    if table == "cuda":
        _emulator_or_skip()
    dtype = "float64"
    arrays = [a.astype(dtype) for a in _arrays(kind, b=3, i=4, h=6, p=4 if kind == "lstm" else None, seed=3)]

    def run(name):
        previous = backend.set_cpu_kernels(name)
        try:
            ts = [mg.tensor(a, requires_grad=True) for a in arrays]
            out = _cell(kind)(*ts)
            outs = list(out) if isinstance(out, tuple) else [out]
            mg.autograd.backward(sum((o * (k + 1.5)).sum() for k, o in enumerate(outs)))
            return [o.numpy() for o in outs] + [t.grad.numpy() for t in ts]
        finally:
            backend.set_cpu_kernels(previous)

    for got, want in zip(run(table), run("reference")):
        assert got.dtype == want.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


# -- errors ----------------------------------------------------------------------------------


def _zeros(*shape, dtype="float64"):
    return mg.zeros(shape, dtype=dtype)


@pytest.mark.parametrize("call, error, message", [
    (lambda: rnn_cell(_zeros(2, 3, 1), _zeros(2, 4), _zeros(4, 3), _zeros(4, 4)), ValueError,
     r"rnn_cell: shapes do not fit .* input \(2, 3, 1\)"),
    (lambda: rnn_cell(_zeros(2, 3), _zeros(2, 4), _zeros(4, 5), _zeros(4, 4)), ValueError, r"rnn_cell: .*w_ih \(4, 5\)"),
    (lambda: rnn_cell(_zeros(2, 3), _zeros(3, 4), _zeros(4, 3), _zeros(4, 4)), ValueError, r"rnn_cell: .*hx \(3, 4\)"),
    (lambda: rnn_cell(_zeros(2, 3), _zeros(2, 4), _zeros(4, 3), _zeros(4, 4), _zeros(4)), ValueError, "both biases"),
    (lambda: rnn_cell(_zeros(2, 3), _zeros(2, 4), _zeros(4, 3), _zeros(4, 4), nonlinearity="sigmoid"), ValueError,
     "nonlinearity must be 'tanh' or 'relu'"),
    (lambda: lstm_cell(_zeros(2, 3), _zeros(2, 4), _zeros(16, 3), _zeros(16, 4)), TypeError, r"lstm_cell: hx must be a pair"),
    (lambda: lstm_cell(_zeros(2, 3), (_zeros(2, 4), _zeros(2, 5)), _zeros(16, 3), _zeros(16, 4)), ValueError,
     r"lstm_cell: .*cx \(2, 5\)"),
    (lambda: lstm_cell(_zeros(2, 3), (_zeros(2, 4), _zeros(2, 4)), _zeros(15, 3), _zeros(15, 4)), ValueError,
     r"lstm_cell: .*4 gate\(s\).*w_ih \(15, 3\)"),
    (lambda: gru_cell(_zeros(2, 3), _zeros(2, 4), _zeros(12, 3), _zeros(12, 4, dtype="float32")), TypeError,
     "gru_cell: .*one floating dtype.*w_hh float32"),
    (lambda: gru_cell(_zeros(2, 3), np.zeros((2, 4)), _zeros(12, 3), _zeros(12, 4)), TypeError,
     "gru_cell: hx must be a Tensor, got ndarray"),
    (lambda: gru_cell(_zeros(2, 3), _zeros(2, 4), _zeros(12, 3), _zeros(12, 4), _zeros(12), _zeros(11), ), ValueError,
     r"gru_cell: .*b_hh \(11,\)"),
])
def test_bad_arguments_raise_naming_the_op_and_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("table", ["reference", "cpu", "cuda"])
def test_backward_kernels_skip_the_input_gradient_when_not_needed(table):
    """need_dx=False (the op passes x.requires_grad): dx is None, everything else unchanged;
    and a layer over data that needs no gradient runs that way."""
    if table == "cuda":
        _emulator_or_skip()
    import importlib

    k = importlib.import_module({"reference": "minigrad.backend.reference", "cpu": "minigrad.backend.cpu_kernels",
                                 "cuda": "minigrad.backend.cuda"}[table])
    x, h, c, w_ih, w_hh, b_ih, b_hh = _arrays("lstm", b=3, i=4, h=5)
    hc, saved = k.lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
    g = np.ones_like(hc)
    full, skipped = (k.lstm_cell_backward(g, x, h, c, saved, w_ih, w_hh, need) for need in (True, False))
    assert full[0] is not None and full[0].shape == x.shape and skipped[0] is None
    for a, b in zip(full[1:], skipped[1:]):
        np.testing.assert_array_equal(a, b)
    x, h, w_ih, w_hh, b_ih, b_hh = _arrays("gru", b=3, i=4, h=5)
    _, saved = k.gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh)
    assert k.gru_cell_backward(np.ones((3, 5)), x, h, saved, w_ih, w_hh, False)[0] is None
    h_new = k.rnn_cell_forward(x, h, w_ih[:5], w_hh[:5], None, None, "tanh")
    assert k.rnn_cell_backward(np.ones((3, 5)), x, h, h_new, w_ih[:5], w_hh[:5], "tanh", False)[0] is None
