"""nn.RNN, nn.LSTM, nn.GRU, the cells, and nn.utils.rnn (minigrad/nn/rnn.py,
minigrad/nn/utils/rnn.py): PyTorch parity of outputs, final states and every gradient (input,
initial states, each parameter) with PyTorch's weights loaded into minigrad, for every layer
type, 1 and 2 layers, one and two directions, batch_first or not, with and without initial
states, padded and packed batches (sorted, and sorted for us); an LSTM with proj_size; state
dicts both ways; the initialisation; dropout between layers; the errors; padding and packing
against PyTorch's; and the articles' text classifier (Embedding -> bidirectional LSTM over
packed sentences of different lengths -> Linear, BCEWithLogitsLoss) trained to near-perfect
accuracy."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn.utils.rnn import (PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence,
                                   pad_sequence)

KINDS = {"rnn-tanh": ("RNN", {}), "rnn-relu": ("RNN", {"nonlinearity": "relu"}), "lstm": ("LSTM", {}),
         "gru": ("GRU", {})}
CONFIGS = {"1-layer": {}, "2-layers-bidirectional": {"num_layers": 2, "bidirectional": True},
           "2-layers-bidirectional-batch-first": {"num_layers": 2, "bidirectional": True, "batch_first": True}}
T, B, I, H = 5, 3, 4, 6
LENGTHS = {"sorted": [5, 4, 2], "unsorted": [2, 5, 4]}


def _pair(cls, device="cpu", **kw):
    """(minigrad layer, torch layer) in float64 with the torch layer's weights loaded into ours."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = getattr(torch.nn, cls)(I, H, **kw).double()
    ours = getattr(nn, cls)(I, H, **kw).to(device=device, dtype="float64")
    ours.load_state_dict({k: mg.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def _states(cls, kw, batch, seed=2):
    d, layers = (2 if kw.get("bidirectional") else 1), kw.get("num_layers", 1)
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((d * layers, batch, kw.get("proj_size") or H))
    return [h, rng.standard_normal((d * layers, batch, H))] if cls == "LSTM" else [h]


def _compare(ours, theirs, rtol=1e-10, atol=1e-12):
    """Outputs, then a backward of a random weighting of them, then every gradient.  float64 and
    the same formulas: only the BLAS summation order differs (relative 1e-15 per step)."""
    torch = pytest.importorskip("torch")
    (outs, leaves, layer), (touts, tleaves, tlayer) = ours, theirs
    seeds = [np.random.default_rng(7 + k).standard_normal(tuple(t.shape)) for k, t in enumerate(touts)]
    device = outs[0].device
    mg.autograd.backward(sum((o * mg.tensor(s, device=device)).sum() for o, s in zip(outs, seeds)))
    sum((t * torch.tensor(s)).sum() for t, s in zip(touts, seeds)).backward()
    for o, t in zip(outs, touts):
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
    for a, b in zip(leaves, tleaves):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol)
    names = [n for n, _ in layer.named_parameters()]
    assert names == [n for n, _ in tlayer.named_parameters()]
    for (name, p), (_, q) in zip(layer.named_parameters(), tlayer.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


def _run_both(cls, kw, device, packed=None, given_states=True, input_layout="C"):
    torch = pytest.importorskip("torch")
    ours, theirs = _pair(cls, device, **kw)
    batch_first = kw.get("batch_first", False)
    x = np.random.default_rng(1).standard_normal((B, T, I) if batch_first else (T, B, I))
    xm, xt = mg.tensor(x, requires_grad=True, device=device), torch.tensor(x, requires_grad=True)
    states = _states(cls, kw, B) if given_states else []
    sm = [mg.tensor(s, requires_grad=True, device=device) for s in states]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    hx_m = None if not states else (tuple(sm) if cls == "LSTM" else sm[0])
    hx_t = None if not states else (tuple(st) if cls == "LSTM" else st[0])
    inp_m, inp_t = xm, xt
    if packed:
        sorted_ = packed == "sorted"
        inp_m = pack_padded_sequence(xm, LENGTHS[packed], batch_first=batch_first, enforce_sorted=sorted_)
        inp_t = torch.nn.utils.rnn.pack_padded_sequence(xt, LENGTHS[packed], batch_first=batch_first,
                                                        enforce_sorted=sorted_)
    out_m, hn_m = ours(inp_m, hx_m)
    out_t, hn_t = theirs(inp_t, hx_t)
    if packed:
        np.testing.assert_array_equal(out_m.batch_sizes.numpy(), out_t.batch_sizes.numpy())
        out_m, len_m = pad_packed_sequence(out_m, batch_first=batch_first)
        out_t, len_t = torch.nn.utils.rnn.pad_packed_sequence(out_t, batch_first=batch_first)
        assert len_m.tolist() == len_t.tolist() == LENGTHS[packed]
    outs_m = [out_m] + (list(hn_m) if cls == "LSTM" else [hn_m])
    outs_t = [out_t] + (list(hn_t) if cls == "LSTM" else [hn_t])
    _compare((outs_m, [xm] + sm, ours), (outs_t, [xt] + st, theirs))


@pytest.mark.parametrize("packed", [None, "sorted", "unsorted"])
@pytest.mark.parametrize("given_states", [True, False])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_layers_match_torch(device, kind, config, given_states, packed):
    cls, kw = KINDS[kind]
    _run_both(cls, {**kw, **CONFIGS[config]}, device, packed, given_states)


@pytest.mark.parametrize("packed", [None, "unsorted"])
@pytest.mark.parametrize("kw", [{"proj_size": 2}, {"proj_size": 3, "num_layers": 2, "bidirectional": True},
                                {"proj_size": 3, "num_layers": 2, "bias": False, "batch_first": True}])
def test_lstm_with_projection_matches_torch(device, kw, packed):
    _run_both("LSTM", kw, device, packed)


@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM"])
def test_without_bias_matches_torch(cls):
    _run_both(cls, {"bias": False, "num_layers": 2}, "cpu")


@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM"])
def test_unbatched_input_matches_torch(cls):
    """A 2-D input (L, H_in) is one sequence: states (num_layers * D, H), no batch axis."""
    torch = pytest.importorskip("torch")
    kw = {"num_layers": 2, "bidirectional": True}
    ours, theirs = _pair(cls, **kw)
    x = np.random.default_rng(3).standard_normal((T, I))
    states = [s[:, 0] for s in _states(cls, kw, 1)]
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    sm, st = [mg.tensor(s, requires_grad=True) for s in states], [torch.tensor(s, requires_grad=True) for s in states]
    out_m, hn_m = ours(xm, tuple(sm) if cls == "LSTM" else sm[0])
    out_t, hn_t = theirs(xt, tuple(st) if cls == "LSTM" else st[0])
    assert out_m.shape == (T, 2 * H)
    outs_m = [out_m] + (list(hn_m) if cls == "LSTM" else [hn_m])
    outs_t = [out_t] + (list(hn_t) if cls == "LSTM" else [hn_t])
    _compare((outs_m, [xm] + sm, ours), (outs_t, [xt] + st, theirs))


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("case", ["batched", "batched-no-state", "unbatched", "no-bias"])
def test_cells_match_torch(device, cls, case):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = {"bias": False} if case == "no-bias" else {}
    theirs = getattr(torch.nn, cls)(I, H, **kw).double()
    ours = getattr(nn, cls)(I, H, **kw).to(device=device, dtype="float64")
    ours.load_state_dict({k: mg.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(4)
    lead = () if case == "unbatched" else (B,)
    x = rng.standard_normal(lead + (I,))
    states = [] if case == "batched-no-state" else [rng.standard_normal(lead + (H,)) for _ in
                                                   range(2 if cls == "LSTMCell" else 1)]
    xm, xt = mg.tensor(x, requires_grad=True, device=device), torch.tensor(x, requires_grad=True)
    sm = [mg.tensor(s, requires_grad=True, device=device) for s in states]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    hx_m = (tuple(sm) if cls == "LSTMCell" else sm[0]) if states else None
    hx_t = (tuple(st) if cls == "LSTMCell" else st[0]) if states else None
    out_m, out_t = ours(xm, hx_m), theirs(xt, hx_t)
    outs_m, outs_t = (list(out_m), list(out_t)) if cls == "LSTMCell" else ([out_m], [out_t])
    _compare((outs_m, [xm] + sm, ours), (outs_t, [xt] + st, theirs))


# -- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kw", [("RNN", {"num_layers": 2, "bidirectional": True}), ("GRU", {"bias": False}),
                                     ("LSTM", {"num_layers": 3, "bidirectional": True, "proj_size": 2})])
def test_parameter_names_shapes_and_state_dicts_both_ways(cls, kw):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn, cls)(I, H, **kw)
    ours = getattr(nn, cls)(I, H, **kw)
    tsd, osd = theirs.state_dict(), ours.state_dict()
    assert list(osd) == list(tsd)  # same names in the same order
    for k in tsd:
        assert tuple(osd[k].shape) == tuple(tsd[k].shape), k
        assert osd[k].dtype == np.float32
    # a PyTorch state_dict loads as it is (its tensors converted to arrays), and ours into PyTorch
    result = ours.load_state_dict({k: v.numpy() for k, v in tsd.items()})
    assert not result.missing_keys and not result.unexpected_keys
    for k in tsd:
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), tsd[k].numpy())
    theirs.load_state_dict({k: torch.tensor(v.numpy() + 1) for k, v in osd.items()})
    assert [list(p.shape) for p in theirs.parameters()] == [list(p.shape) for p in ours.parameters()]
    assert [n for n, _ in ours.named_parameters()] == ours._flat_weights_names
    assert len(ours.all_weights) == kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)


@pytest.mark.parametrize("layer", [lambda: nn.LSTM(30, 64, num_layers=2), lambda: nn.GRUCell(30, 64),
                                   lambda: nn.RNN(30, 64, bidirectional=True)])
def test_initialisation_is_pytorchs_uniform(layer):
    """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)) (H = 64): within the bound, and the
    sample's std within 5 standard errors of bound/sqrt(3) (the uniform's)."""
    mg.manual_seed(0)
    values = np.concatenate([p.numpy().ravel() for p in layer().parameters()])
    bound = 1 / math.sqrt(64)
    assert np.abs(values).max() <= bound
    # the std of a sample std of n uniforms is about sigma * sqrt(0.8 / n) (kurtosis 1.8)
    sigma = bound / math.sqrt(3)
    assert abs(values.std() - sigma) < 5 * sigma * math.sqrt(0.8 / values.size)
    assert abs(values.mean()) < 5 * sigma / math.sqrt(values.size)


def test_repr_is_pytorchs():
    """PyTorch's text (minigrad's repr adds a parameter count after it)."""
    assert repr(nn.LSTM(28, 128, batch_first=True, bidirectional=True)).startswith(
        "LSTM(28, 128, batch_first=True, bidirectional=True)")
    assert nn.RNN(3, 4, num_layers=2, nonlinearity="relu", bias=False, dropout=0.5).extra_repr() == \
        "3, 4, num_layers=2, nonlinearity='relu', bias=False, dropout=0.5"
    assert nn.LSTM(3, 4, proj_size=2).extra_repr() == "3, 4, proj_size=2"
    assert nn.GRUCell(3, 4).extra_repr() == "3, 4"


@pytest.mark.parametrize("cls", ["GRU", "LSTM"])  # (the LSTM: one LSTMSequence op per layer)
def test_dropout_acts_between_layers_only(cls):
    """dropout=1 zeroes what layer 0 hands to layer 1 (while training): the output is then
    layer 1 run on zeros; in eval mode there is no dropout (the output of the full stack)."""
    mg.manual_seed(0)
    layer = getattr(nn, cls)
    stacked = layer(I, H, num_layers=2, dropout=1.0).double()
    second = layer(H, H).double()
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in stacked.state_dict().items() if "_l1" in k})
    x = mg.tensor(np.random.default_rng(5).standard_normal((T, B, I)))
    out, h_n = stacked(x)
    expected, h1 = second(mg.zeros((T, B, H), dtype="float64"))
    h_n, h1 = (h_n[0], h1[0]) if cls == "LSTM" else (h_n, h1)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n.numpy()[1], h1.numpy()[0], rtol=1e-12, atol=1e-14)
    stacked.eval()
    out_eval, _ = stacked(x)
    assert not np.allclose(out_eval.numpy(), expected.numpy())
    first = layer(I, H).double()
    first.load_state_dict({k: v for k, v in stacked.state_dict().items() if "_l0" in k})
    np.testing.assert_allclose(out_eval.numpy(), second(first(x)[0])[0].numpy(), rtol=1e-12, atol=1e-14)


def test_backprop_through_time_reaches_the_first_step():
    """The gradient of the last output reaches x_0 only through 4 steps of the recurrence."""
    mg.manual_seed(0)
    lstm = nn.LSTM(I, H).double()
    x = mg.tensor(np.random.default_rng(6).standard_normal((T, 1, I)), requires_grad=True)
    out, _ = lstm(x)
    out[-1].sum().backward()
    g = np.abs(x.grad.numpy()[:, 0]).sum(axis=1)
    assert np.all(g > 0)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, message", [
    (lambda: nn.LSTM(4, 6)(mg.zeros(5, 3, 4, 1)), ValueError,
     r"LSTM: input must be 3-D, \(L, N, H_in\), or 2-D .*got shape \(5, 3, 4, 1\)"),
    (lambda: nn.GRU(4, 6, batch_first=True)(mg.zeros(5)), ValueError,
     r"GRU: input must be 3-D, \(N, L, H_in\) with batch_first=True.*got shape \(5,\)"),
    (lambda: nn.RNN(4, 6)(mg.zeros(5, 3, 7)), ValueError,
     r"RNN: input has 7 features in its last dimension \(shape \(5, 3, 7\)\) but the layer was built with "
     r"input_size=4"),
    (lambda: nn.LSTM(4, 6, num_layers=2)(mg.zeros(5, 3, 4), (mg.zeros(1, 3, 6), mg.zeros(2, 3, 6))), ValueError,
     r"LSTM: h_0 must have shape \(num_layers \* num_directions, batch, hidden\) = \(2, 3, 6\), got \(1, 3, 6\)"),
    (lambda: nn.LSTM(4, 6)(mg.zeros(5, 3, 4), (mg.zeros(1, 3, 6), mg.zeros(1, 2, 6))), ValueError,
     r"LSTM: c_0 must have shape .* = \(1, 3, 6\), got \(1, 2, 6\)"),
    (lambda: nn.LSTM(4, 6, proj_size=2)(mg.zeros(5, 3, 4), (mg.zeros(1, 3, 6), mg.zeros(1, 3, 6))), ValueError,
     r"LSTM: h_0 must have shape \(num_layers \* num_directions, batch, proj_size\) = \(1, 3, 2\)"),
    (lambda: nn.LSTM(4, 6)(mg.zeros(5, 3, 4), mg.zeros(1, 3, 6)), TypeError, r"LSTM: hx must be a pair \(h_0, c_0\)"),
    (lambda: nn.GRU(4, 6, bidirectional=True)(mg.zeros(5, 3, 4), mg.zeros(1, 3, 6)), ValueError,
     r"GRU: h_0 must have shape .* = \(2, 3, 6\), got \(1, 3, 6\)"),
    (lambda: nn.GRU(4, 6)(mg.zeros(5, 3)), ValueError,
     r"GRU: input has 3 features in its last dimension \(shape \(5, 3\)\)"),
    (lambda: nn.RNN(4, 6)(mg.zeros(5, 3, 4, dtype="float64")), TypeError,
     "RNN: the input is float64 but the layer's parameters are float32"),
    (lambda: nn.RNN(4, 6)([[0.0] * 4]), TypeError, "RNN: input must be a Tensor or a PackedSequence, got list"),
    (lambda: nn.LSTM(4, 6)(mg.zeros(0, 3, 4)), ValueError, r"LSTM: the input has no time steps \(shape \(0, 3, 4\)\)"),
    (lambda: pack_padded_sequence(mg.zeros(5, 3, 4), [5, 6, 2]), ValueError,
     r"pack_padded_sequence: lengths\[1\] = 6 is longer than the sequence: the input of shape \(5, 3, 4\) has 5 "
     r"steps along dimension 0"),
    (lambda: pack_padded_sequence(mg.zeros(3, 5, 4), [5, 6, 2], batch_first=True), ValueError,
     r"lengths\[1\] = 6 is longer than the sequence: the input of shape \(3, 5, 4\) has 5 steps along dimension 1"),
    (lambda: pack_padded_sequence(mg.zeros(5, 3, 4), [2, 5, 4]), ValueError,
     r"lengths \[2, 5, 4\] must be sorted in decreasing order when enforce_sorted=True"),
    (lambda: pack_padded_sequence(mg.zeros(5, 3, 4), [5, 4]), ValueError,
     r"got 2 lengths for a batch of 3 sequences \(input of shape \(5, 3, 4\)"),
    (lambda: pack_padded_sequence(mg.zeros(5, 3, 4), [5, 0, 0]), ValueError, r"lengths\[1\] = 0"),
    (lambda: pack_padded_sequence(mg.zeros(5, 3, 4), [5.0, 2.0, 1.0]), TypeError,
     "lengths must be a 1-D sequence of integers"),
    (lambda: pad_packed_sequence(pack_sequence([mg.zeros(3, 2)]), total_length=2), ValueError,
     r"total_length must be an int of at least the longest sequence's length \(3\)"),
    (lambda: pad_sequence([mg.zeros(3, 2), mg.zeros(2, 3)]), ValueError,
     r"pad_sequence: .*same trailing dimensions, got shapes \(3, 2\), \(2, 3\)"),
    (lambda: nn.LSTM(4, 6)(pack_sequence([mg.zeros(3, 5)])), ValueError,
     r"LSTM: a PackedSequence's data must be \(N, input_size=4\), got shape \(3, 5\)"),
    (lambda: nn.LSTMCell(4, 6)(mg.zeros(3, 4), (mg.zeros(3, 6), mg.zeros(2, 6))), ValueError,
     r"LSTMCell: c must have shape \(3, 6\) for an input of batch 3, got \(2, 6\)"),
    (lambda: nn.GRUCell(4, 6)(mg.zeros(3, 5)), ValueError, r"GRUCell: input must be \(batch, input_size=4\)"),
    (lambda: nn.LSTM(4, 6, proj_size=6), ValueError, r"LSTM: proj_size \(6\) must be smaller than hidden_size \(6\)"),
    (lambda: nn.GRU(4, 6, proj_size=2), TypeError, "proj_size"),
    (lambda: nn.RNN(4, 6, nonlinearity="sigmoid"), ValueError, "RNN: nonlinearity must be 'tanh' or 'relu'"),
    (lambda: nn.LSTM(4, 0), ValueError, "LSTM: hidden_size must be an integer >= 1, got 0"),
    (lambda: nn.GRU(4, 6, dropout=1.5), ValueError, r"GRU: dropout: probability p must be a number in \[0, 1\]"),
])
def test_bad_input_raises_naming_the_layer_and_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_bad_call_leaves_the_layer_untouched():
    lstm = nn.LSTM(4, 6)
    before = {k: v.numpy().copy() for k, v in lstm.state_dict().items()}
    with pytest.raises(ValueError):
        lstm(mg.zeros(5, 3, 4), (mg.zeros(1, 3, 6), mg.zeros(1, 2, 6)))
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    assert all(p.grad is None for p in lstm.parameters())


# -- padding and packing -----------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch_and_is_differentiable(batch_first, padding_side):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    seqs = [rng.standard_normal((n, 2, 3)) for n in (3, 5, 1)]
    ours = [mg.tensor(s, requires_grad=True) for s in seqs]
    out = pad_sequence(ours, batch_first=batch_first, padding_value=-1.5, padding_side=padding_side)
    theirs = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=batch_first,
                                             padding_value=-1.5, padding_side=padding_side)
    np.testing.assert_array_equal(out.numpy(), theirs.numpy())
    assert mg.gradcheck(lambda *s: pad_sequence(list(s), batch_first=batch_first, padding_side=padding_side), *ours)


@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packing_matches_torch_and_round_trips(batch_first, enforce_sorted):
    torch = pytest.importorskip("torch")
    lengths = [6, 4, 4, 1] if enforce_sorted else [4, 1, 6, 4]
    x = np.random.default_rng(9).standard_normal((4, 7, 3) if batch_first else (7, 4, 3))
    ours = pack_padded_sequence(mg.tensor(x), mg.tensor(lengths), batch_first=batch_first,
                                enforce_sorted=enforce_sorted)
    theirs = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=batch_first,
                                                     enforce_sorted=enforce_sorted)
    assert isinstance(ours, PackedSequence) and isinstance(ours, tuple)
    np.testing.assert_array_equal(ours.data.numpy(), theirs.data.numpy())
    np.testing.assert_array_equal(ours.batch_sizes.numpy(), theirs.batch_sizes.numpy())
    assert ours.batch_sizes.dtype == np.int64
    for a, b in ((ours.sorted_indices, theirs.sorted_indices), (ours.unsorted_indices, theirs.unsorted_indices)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    padded, lens = pad_packed_sequence(ours, batch_first=batch_first, padding_value=9.0, total_length=8)
    tpadded, tlens = torch.nn.utils.rnn.pad_packed_sequence(theirs, batch_first=batch_first, padding_value=9.0,
                                                            total_length=8)
    np.testing.assert_array_equal(padded.numpy(), tpadded.numpy())
    assert lens.tolist() == tlens.tolist() == lengths


def test_packing_passes_gradients_back_to_the_real_steps_only():
    x = mg.tensor(np.random.default_rng(10).standard_normal((4, 3, 2)), requires_grad=True)
    packed = pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)
    padded, _ = pad_packed_sequence(packed)
    (padded * 2).sum().backward()
    mask = (np.arange(4)[:, None] < np.array([2, 4, 1])[None, :])[..., None]
    np.testing.assert_array_equal(x.grad.numpy(), np.where(mask, 2.0, 0.0) * np.ones((4, 3, 2)))
    assert mg.gradcheck(lambda x: pad_packed_sequence(pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False))[0], x)


def test_pack_sequence_and_packed_final_states_are_each_sequences_own():
    """With packing, h_n of each sequence is its state after its own last step: the same as
    running the layer on that sequence alone."""
    mg.manual_seed(0)
    lstm = nn.LSTM(I, H, bidirectional=True).double()
    rng = np.random.default_rng(11)
    seqs = [mg.tensor(rng.standard_normal((n, I))) for n in (2, 5, 3)]
    _, (h_n, c_n) = lstm(pack_sequence(seqs, enforce_sorted=False))
    for b, s in enumerate(seqs):
        _, (h_alone, c_alone) = lstm(s)
        np.testing.assert_allclose(h_n.numpy()[:, b], h_alone.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c_n.numpy()[:, b], c_alone.numpy(), rtol=1e-12, atol=1e-14)


def test_packed_sequence_moves_between_devices(device):
    packed = pack_sequence([mg.zeros(3, 2), mg.ones(1, 2)])
    moved = packed.to(device)
    assert str(moved.data.device) == device and str(moved.batch_sizes.device) == "cpu"
    np.testing.assert_array_equal(moved.data.numpy(), packed.data.numpy())


# -- the articles' text classifier ---------------------------------------------------------------


class TextClassifier(nn.Module):
    """Embedding -> bidirectional LSTM over the packed sentence -> Linear -> one logit."""

    def __init__(self, vocab, dim=8, hidden=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 1)

    def forward(self, tokens, lengths):
        packed = pack_padded_sequence(self.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.out(mg.cat([h_n[-2], h_n[-1]], dim=1))[:, 0]


def _sentences(rng, n, vocab=6, pattern=(1, 2)):
    """n sentences of 3..12 tokens from 1..vocab-1 (0 pads), label 1 iff the bigram ``pattern``
    occurs; half the sentences get the pattern planted, and planted-free ones have it removed."""
    lengths = rng.integers(3, 13, n)
    tokens = np.zeros((n, 12), dtype=np.int64)
    labels = np.zeros(n, dtype=np.float32)
    for k, m in enumerate(lengths):
        s = rng.integers(1, vocab, m)
        if k % 2:
            at = rng.integers(0, m - 1)
            s[at:at + 2] = pattern
        else:
            for j in range(m - 1):  # break every accidental occurrence
                if s[j] == pattern[0] and s[j + 1] == pattern[1]:
                    s[j + 1] = pattern[1] + 1
        tokens[k, :m] = s
        labels[k] = float(any(s[j] == pattern[0] and s[j + 1] == pattern[1] for j in range(m - 1)))
    return tokens, lengths, labels


def test_text_classifier_learns_whether_a_sentence_contains_a_pattern():
    """Binary classification of variable-length sentences the PyTorch way (packed, the final
    states of both directions, BCEWithLogitsLoss): near-perfect held-out accuracy."""
    mg.manual_seed(0)
    rng = np.random.default_rng(12)
    tokens, lengths, labels = _sentences(rng, 640)
    test_tokens, test_lengths, test_labels = _sentences(rng, 256)
    model = TextClassifier(vocab=6)
    loss_fn = nn.BCEWithLogitsLoss()
    opt = mg.optim.Adam(model.parameters(), lr=0.02)
    for epoch in range(12):
        order = rng.permutation(len(tokens))
        for i in range(0, len(tokens), 32):
            idx = order[i:i + 32]
            logits = model(mg.tensor(tokens[idx]), lengths[idx])
            loss = loss_fn(logits, mg.tensor(labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with mg.no_grad():
        predicted = model(mg.tensor(test_tokens), test_lengths).numpy() > 0
    accuracy = (predicted == (test_labels > 0.5)).mean()
    assert accuracy >= 0.98, accuracy
    assert model.embed.weight.grad is not None and model.lstm.weight_hh_l0_reverse.grad is not None
