"""scaled_dot_product_attention (minigrad/ops/attention.py): the fused op against PyTorch
(float64, tight tolerances) on random shapes, causal or not, with bool / float / no masks and
broadcast batch dimensions; gradcheck and gradgradcheck; dropout; fully masked rows; errors;
the op through each CPU kernel table; the kernels' shape checks.  (The CUDA C kernels:
tests/test_cuda_attention.py; every table against reference.py: tests/test_kernels_contract.py.)"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.backend import cpu_kernels as C
from minigrad.backend import reference as R
from minigrad.nn import functional as F
from tests.conftest import DEVICES
from tests.coverage import covers
from tests.strategies import relayout


@st.composite
def attention_case(draw, masks=("none", "bool", "float", "causal")):
    """(q, k, v, mask array or None, is_causal): leading dims that broadcast against each
    other (q's heads may be 1, k/v's batch may be missing), random layouts."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    tq, tk = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    d, dv = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    lead = draw(st.sampled_from([((n, h), (n, h), (n, h)), ((n, 1), (h,), (n, h)), ((), (), ()), ((h,), (1, h), (h,))]))
    kind = draw(st.sampled_from(masks))
    if kind == "causal":
        tk = max(tk, tq)  # every row keeps at least one key (no fully masked rows here)
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    q, k, v = (relayout(rng.standard_normal(lead_ + (t, w)), layout)
               for lead_, t, w in zip(lead, (tq, tk, tk), (d, d, dv)))
    mask = None
    mshapes = [(tq, tk), (1, tk)] + ([(n, 1, tq, tk)] if len(lead[0]) == 2 else [])  # (no more dims than q)
    mshape = draw(st.sampled_from(mshapes)) if kind in ("bool", "float") else None
    if kind == "bool":
        mask = rng.random(mshape) > 0.3
        mask[..., 0] = True  # no fully masked row (tested on its own)
    elif kind == "float":
        mask = rng.standard_normal(mshape)
    return q, k, v, mask, kind == "causal"


def _ours(q, k, v, mask, causal, device="cpu", **kw):
    ts = [mg.tensor(a, requires_grad=True, device=device) for a in (q, k, v)]
    m = None if mask is None else mg.tensor(mask, device=device)
    return ts, F.scaled_dot_product_attention(*ts, attn_mask=m, is_causal=causal, **kw)


@given(attention_case(), st.sampled_from([None, 0.3]))
def test_attention_matches_torch(case, scale):
    torch = pytest.importorskip("torch")
    q, k, v, mask, causal = case
    ts, out = _ours(q, k, v, mask, causal, scale=scale)
    tts = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (q, k, v)]
    tmask = None if mask is None else torch.tensor(mask)
    tout = torch.nn.functional.scaled_dot_product_attention(*tts, attn_mask=tmask, is_causal=causal, scale=scale)
    g = np.random.default_rng(1).standard_normal(tuple(tout.shape))
    out.backward(mg.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(ts, tts):
        assert ours.grad.shape == ours.shape
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@covers("ScaledDotProductAttention", twice=True)
@given(attention_case())
def test_attention_gradcheck_and_gradgradcheck(case):
    q, k, v, mask, causal = case
    m = None if mask is None else mg.tensor(mask)
    inputs = [mg.tensor(a, requires_grad=True) for a in (q, k, v)]

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal)

    assert mg.gradcheck(f, *inputs)
    assert mg.gradgradcheck(f, *inputs)


@covers("ScaledDotProductAttention", twice=True)
def test_attention_with_dropout_gradcheck():
    """A seeded dropout draws the same mask on every call, so finite differences see one
    function; gradients (first and second) then agree with the analytic ones."""
    rng = np.random.default_rng(3)
    inputs = [mg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3))]

    def f(q, k, v):
        mg.manual_seed(11)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)

    assert mg.gradcheck(f, *inputs)
    assert mg.gradgradcheck(f, *inputs)


def test_attention_dropout_is_dropout_on_the_weights():
    """out = (P * M) V with M the backend's Philox mask for (B, Tq, Tk) and the seed/offset the
    backend hands out; about p of the weights are dropped."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 3, 40, 8)), rng.standard_normal((2, 3, 50, 8)), rng.standard_normal((2, 3, 50, 5))
    mg.manual_seed(5)
    out = F.scaled_dot_product_attention(mg.tensor(q), mg.tensor(k), mg.tensor(v), dropout_p=0.25)
    mg.manual_seed(5)
    seed, offset = mg.backend.philox_seed_offset(6 * 40 * 50)
    keep = R.dropout_mask((6, 40, 50), 0.25, seed, offset, np.float64).reshape(2, 3, 40, 50)
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(8)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(out.numpy(), (p * keep) @ v, rtol=1e-12, atol=1e-12)
    assert abs((keep == 0).mean() - 0.25) < 0.02
    assert set(np.unique(keep)) == {0.0, 1 / 0.75}


def test_fully_masked_rows_attend_to_nothing_as_in_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    mask = rng.random((3, 5)) > 0.4
    mask[1] = False
    for m in (mask, np.where(mask, 0.0, -np.inf)):
        ts, out = _ours(q, k, v, m, False)
        out.backward(mg.ones(out.shape, dtype=np.float64))
        tts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
        tout = torch.nn.functional.scaled_dot_product_attention(*tts, attn_mask=torch.tensor(m))
        tout.backward(torch.ones(tout.shape, dtype=torch.float64))
        assert np.all(out.numpy()[:, 1] == 0) and np.all(ts[0].grad.numpy()[:, 1] == 0)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
        for ours, theirs in zip(ts, tts):
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_nan_is_never_masked():
    q = np.zeros((1, 2, 2))
    q[0, 0, 0] = np.nan
    out = F.scaled_dot_product_attention(mg.tensor(q), mg.tensor(np.ones((1, 3, 2))), mg.tensor(np.ones((1, 3, 2))))
    assert np.isnan(out.numpy()[0, 0]).all() and np.isfinite(out.numpy()[0, 1]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_attention_float32_and_devices(device):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4, 7, 8)).astype(np.float32) for _ in range(3))
    ts, out = _ours(q, k, v, None, True, device=device)
    assert out.dtype == np.float32 and out.device == mg.Device(device)
    out.sum().backward()
    assert all(t.grad.dtype == np.float32 for t in ts)
    ref, _ = R.attention_forward(q.reshape(8, 7, 8), k.reshape(8, 7, 8), v.reshape(8, 7, 8), None, True,
                                 1 / np.sqrt(8), 0.0, 0, 0)
    np.testing.assert_allclose(out.numpy().reshape(8, 7, 8), ref, rtol=2e-5, atol=2e-6)


def test_attention_weights_match_softmax():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    q, k = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    w = mg.ops.attention_weights(mg.tensor(q), mg.tensor(k), is_causal=True, scale=0.5)
    s = torch.tensor(q) @ torch.tensor(k).transpose(-1, -2) * 0.5
    s = s.masked_fill(~torch.ones(3, 5, dtype=torch.bool).tril(), float("-inf"))
    np.testing.assert_allclose(w.numpy(), torch.softmax(s, -1).numpy(), rtol=1e-12, atol=1e-14)


def test_attention_errors():
    q, k, v = mg.randn(2, 3, 4), mg.randn(2, 5, 4), mg.randn(2, 5, 3)
    sdpa = F.scaled_dot_product_attention
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: query and key must have the same last "
                                         r"dimension \(D\): query \(2, 3, 4\), key \(2, 5, 3\)"):
        sdpa(q, mg.randn(2, 5, 3), v)
    with pytest.raises(ValueError, match=r"key and value must have the same length"):
        sdpa(q, k, mg.randn(2, 6, 3))
    with pytest.raises(ValueError, match=r"batch dimensions .* do not broadcast"):
        sdpa(q, mg.randn(3, 5, 4), v)
    with pytest.raises(TypeError, match="share one floating dtype"):
        sdpa(q, k.double(), v)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 5\) does not broadcast .* \(2, 3, 5\)"):
        sdpa(q, k, v, attn_mask=mg.ones(4, 5))
    with pytest.raises(ValueError, match="attn_mask and is_causal=True cannot be used together"):
        sdpa(q, k, v, attn_mask=mg.ones(3, 5), is_causal=True)
    with pytest.raises(ValueError, match="attn_mask requires grad"):
        sdpa(q, k, v, attn_mask=mg.ones(3, 5, requires_grad=True))
    with pytest.raises(TypeError, match="attn_mask must be bool or floating"):
        sdpa(q, k, v, attn_mask=mg.tensor(np.ones((3, 5), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"dropout_p must be a number in \[0, 1\]"):
        sdpa(q, k, v, dropout_p=1.5)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        sdpa(mg.randn(4), k, v)


# -- the kernels ------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["reference", "cpu"])
def test_attention_op_through_each_cpu_table(monkeypatch, table):
    """The op gives the same numbers through the pure-NumPy table and the numba one."""
    monkeypatch.setenv("MINIGRAD_CPU_KERNELS", table)
    if hasattr(mg.backend, "set_cpu_kernels"):
        monkeypatch.setattr(mg.backend, "_cpu_choice", {"name": table, "table": None})
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((3, 2, 6, 4)) for _ in range(3))
    ts, out = _ours(q, k, v, None, True)
    out.backward(mg.tensor(rng.standard_normal(out.shape)))
    ref = R.attention_forward(q.reshape(6, 6, 4), k.reshape(6, 6, 4), v.reshape(6, 6, 4), None, True, 0.5, 0.0, 0, 0)
    np.testing.assert_allclose(out.numpy().reshape(6, 6, 4), ref[0], rtol=1e-12, atol=1e-13)


def test_attention_kernels_raise_on_inconsistent_shapes():
    q, k, v = np.ones((2, 3, 4)), np.ones((2, 5, 4)), np.ones((2, 5, 2))
    for kernels in (R, C):
        with pytest.raises(ValueError, match=r"attention_forward: arrays of inconsistent shapes: q \(2, 3, 4\), "
                                             r"k \(2, 5, 3\)"):
            kernels.attention_forward(q, np.ones((2, 5, 3)), v, None, False, 1.0, 0.0, 0, 0)
        with pytest.raises(ValueError, match=r"attention_forward: .* mask \(2, 2, 5\)"):
            kernels.attention_forward(q, k, v, np.zeros((2, 2, 5)), False, 1.0, 0.0, 0, 0)
        with pytest.raises(ValueError, match=r"attention_backward: .* g \(2, 3, 3\)"):
            kernels.attention_backward(np.ones((2, 3, 3)), q, k, v, np.ones((2, 3, 2)), np.ones((2, 3)), None,
                                       False, 1.0, 0.0, 0, 0)
