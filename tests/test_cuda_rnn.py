"""The recurrent-cell kernels of rnn.cu (cuda_kernels.rnn_cell_* / lstm_cell_* / gru_cell_*)
against reference.py, on the CPU emulator and on a GPU when there is one: float32 and float64,
more units than the emulated grid has threads (grid-stride loops), one unit, odd widths, an
LSTM with a projected state, saturating and NaN pre-activations, no biases; every output the
wrappers allocate starts as garbage (the ``dev`` fixture), so an element a kernel forgets to
write fails; and the rnn.cu kernels really run (no silent fall-back to the reference)."""
import numpy as np
import pytest

from minigrad.backend import cuda as ck
from minigrad.backend import reference as ref
from tests.test_cuda_kernels import DTYPES, close, dev, rng  # noqa: F401  (fixtures)

# (B, I, H, P): the emulated grid is 4 blocks of 256 threads, so 9 x 130 units take two rounds
SIZES = {"small": (3, 5, 4, 4), "grid-stride": (9, 7, 130, 130), "one": (1, 1, 1, 1), "odd": (5, 3, 33, 33),
         "proj": (4, 6, 9, 5)}
GATES = {"rnn-tanh": 1, "rnn-relu": 1, "lstm": 4, "gru": 3}


def _inputs(rng, kind, size, dtype, bias=True, extreme=False):
    b, i, h, p = SIZES[size]
    if kind != "lstm":
        p = h
    g = GATES[kind]
    x = rng.standard_normal((b, i))
    if extreme and x.size > 2:
        x[0, 0], x[-1, -1] = 40.0, np.nan  # saturating gates in row 0, NaN in the last row
    arrays = [x, rng.standard_normal((b, p))] + ([rng.standard_normal((b, h))] if kind == "lstm" else [])
    arrays += [rng.standard_normal((g * h, i)), rng.standard_normal((g * h, p))]
    arrays += [rng.standard_normal(g * h), rng.standard_normal(g * h)] if bias else [None, None]
    return [None if a is None else a.astype(dtype) for a in arrays]


def _both(dev, kind, arrays, seed=5):
    """(got, want): forward then backward results of the cuda table (on dev) and the reference."""
    nl = {"rnn-tanh": "tanh", "rnn-relu": "relu"}.get(kind)
    name = "rnn" if nl else kind
    fwd, bwd = getattr(ck, f"{name}_cell_forward"), getattr(ck, f"{name}_cell_backward")
    rfwd, rbwd = getattr(ref, f"{name}_cell_forward"), getattr(ref, f"{name}_cell_backward")
    put = [None if a is None else dev.put(a) for a in arrays]
    extra = (nl,) if nl else ()
    with np.errstate(invalid="ignore", over="ignore"):
        want = rfwd(*arrays, *extra)
        got = fwd(*put, *extra)
    want_out = want if nl else want[0]
    g = np.random.default_rng(seed).standard_normal(want_out.shape).astype(want_out.dtype)
    n_state = 2 if kind == "lstm" else 1
    state, weights = arrays[:1 + n_state], arrays[1 + n_state:3 + n_state]
    dstate, dweights = put[:1 + n_state], put[1 + n_state:3 + n_state]
    with np.errstate(invalid="ignore", over="ignore"):
        if nl:
            want_grads = rbwd(g, *state, want, *weights, nl)
            got_grads = bwd(dev.put(g), *dstate, dev.put(want), *dweights, nl)
        else:
            saved = want[1]  # an LSTM's is a pair, (gates, tanh(c'))
            put_saved = tuple(map(dev.put, saved)) if isinstance(saved, tuple) else dev.put(saved)
            want_grads = rbwd(g, *state, saved, *weights)
            got_grads = bwd(dev.put(g), *dstate, put_saved, *dweights)
    got, want = _flat([got] if nl else got), _flat([want] if nl else want)
    return [dev.get(a) for a in got + list(got_grads)], want + list(want_grads)


def _flat(values):
    """The arrays of a forward's results, an LSTM's saved pair unpacked."""
    return [a for v in values for a in (v if isinstance(v, tuple) else (v,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, size", [(k, s) for k in sorted(GATES) for s in sorted(SIZES)
                                        if s != "proj" or k == "lstm"])  # (a projected state is an LSTM's)
def test_cell_kernels_match_reference(dev, rng, kind, size, dtype):  # noqa: F811
    got, want = _both(dev, kind, _inputs(rng, kind, size, dtype))
    for g, w in zip(got, want):
        assert g.dtype == dtype
        # float32: the products and the bias sums are added in another order than NumPy's, and
        # the gradients of the weights sum up to 9 rows: a few ulps of values of order 10
        close(g, w, dtype, atol=2e-5 if dtype == np.float32 else None)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_no_bias_saturation_and_nan(dev, rng, kind):  # noqa: F811
    """No biases; a pre-activation of +-40 saturates the gates to exactly 0 or 1 (not NaN); a
    NaN in an input row makes that row's outputs NaN (and every weight gradient, which sums
    over the rows), as the reference does."""
    for bias in (False, True):
        got, want = _both(dev, kind, _inputs(rng, kind, "small", np.float64, bias=bias, extreme=True))
        for g, w in zip(got, want):
            close(g, w, np.float64)
        h_new = got[0][0] if kind == "lstm" else got[0]  # an LSTM's output is hc = [h', c']
        assert np.isnan(h_new[-1]).all() and np.isfinite(h_new[0]).all()


def test_the_rnn_cu_kernels_run(dev, rng, monkeypatch):  # noqa: F811
    """Each table function launches its rnn.cu kernel (a wrong dtype check would fall back to
    the reference silently)."""
    launched = []
    real = ck._launch
    monkeypatch.setattr(ck, "_launch", lambda xp, family, kernel, *a: (launched.append((family, kernel)),
                                                                       real(xp, family, kernel, *a)))
    for kind in sorted(GATES):
        _both(dev, kind, _inputs(rng, kind, "small", np.float32))
    assert sorted(set(launched)) == [("rnn", k) for k in ("gru_backward", "gru_forward", "lstm_backward",
                                                          "lstm_forward", "rnn_backward", "rnn_forward")]
