"""The Transformer layers: nn.Embedding, nn.LayerNorm and nn.MultiheadAttention against
PyTorch (same state_dict names, the same numbers for outputs, attention weights and every
gradient, float64), their options and errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn


def _copy_to_torch(ours, theirs):
    torch = pytest.importorskip("torch")
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})


def test_embedding_layer():
    torch = pytest.importorskip("torch")
    mg.manual_seed(0)
    emb = nn.Embedding(10, 4, padding_idx=2)
    assert repr(emb).startswith("Embedding(10, 4, padding_idx=2)")
    assert emb.weight.shape == (10, 4) and np.all(emb.weight.numpy()[2] == 0)
    assert abs(float(emb.weight.numpy().std()) - 1) < 0.5  # N(0, 1) as in PyTorch
    temb = torch.nn.Embedding(10, 4, padding_idx=2)
    _copy_to_torch(emb, temb)
    idx = np.array([[1, 2, 2], [9, 1, 0]])
    out, tout = emb(mg.tensor(idx)), temb(torch.tensor(idx))
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    np.testing.assert_array_equal(emb.weight.grad.numpy(), temb.weight.grad.numpy())
    with pytest.raises(ValueError, match="num_embeddings must be a positive integer"):
        nn.Embedding(0, 3)
    with pytest.raises(ValueError, match=r"padding_idx must be an int in \[-10, 10\)"):
        nn.Embedding(10, 3, padding_idx=10)


@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 0.1}])
def test_layer_norm_layer(kwargs):
    torch = pytest.importorskip("torch")
    ln = nn.LayerNorm((3, 4), dtype=np.float64, **kwargs)
    tln = torch.nn.LayerNorm((3, 4), dtype=torch.float64, **kwargs)
    assert sorted(ln.state_dict()) == sorted(tln.state_dict())
    rng = np.random.default_rng(0)
    for p in ln.parameters():  # not the initial ones and zeros, to test them
        p.array[...] = rng.standard_normal(p.shape)
    _copy_to_torch(ln, tln)
    x = rng.standard_normal((2, 5, 3, 4))
    X, tx = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape)
    (ln(X) * mg.tensor(g)).sum().backward()
    (tln(tx) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ln(X).numpy(), tln(tx).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    theirs = dict(tln.named_parameters())
    for name, p in ln.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs[name].grad.numpy(), rtol=1e-9, atol=1e-11)
    assert "LayerNorm((3, 4)" in repr(ln)


MHA_CASES = {
    "batch-first": dict(batch_first=True),
    "seq-first": dict(),
    "kdim-vdim": dict(batch_first=True, kdim=6, vdim=5),
    "fused": dict(batch_first=True, need_weights=False),
    "per-head-weights": dict(average_attn_weights=False),
    "causal-fused": dict(batch_first=True, self_attention=True, is_causal=True, need_weights=False),
    "causal-weights": dict(batch_first=True, self_attention=True, is_causal=True),
    "bool-mask": dict(batch_first=True, attn_mask="bool"),
    "float-mask-per-head": dict(attn_mask="float3d"),
    "padding-fused": dict(batch_first=True, key_padding_mask=True, need_weights=False),
    "padding-and-mask": dict(batch_first=True, key_padding_mask=True, attn_mask="float"),
    "unbatched": dict(unbatched=True),
    "no-bias": dict(batch_first=True, bias=False, need_weights=False),
    "dropout-eval": dict(batch_first=True, dropout=0.5, eval=True),
}


@pytest.mark.parametrize("name", sorted(MHA_CASES))
def test_multihead_attention_matches_torch(name):
    torch = pytest.importorskip("torch")
    c = dict(MHA_CASES[name])
    e, h, n, lq, s = 8, 2, 3, 4, 5
    rng = np.random.default_rng(0)
    init = dict(batch_first=c.pop("batch_first", False), kdim=c.pop("kdim", None), vdim=c.pop("vdim", None),
                bias=c.pop("bias", True), dropout=c.pop("dropout", 0.0))
    ours = nn.MultiheadAttention(e, h, dtype=np.float64, **init)
    theirs = torch.nn.MultiheadAttention(e, h, dtype=torch.float64, **init)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    _copy_to_torch(ours, theirs)
    if c.pop("eval", False):
        ours.eval(), theirs.eval()
    self_attention, unbatched = c.pop("self_attention", False), c.pop("unbatched", False)
    if self_attention:
        s = lq

    def shape(length, width):
        if unbatched:
            return (length, width)
        return (n, length, width) if init["batch_first"] else (length, n, width)

    arrays = [rng.standard_normal(shape(lq, e))]
    arrays += [arrays[0]] * 2 if self_attention else [rng.standard_normal(shape(s, init["kdim"] or e)),
                                                       rng.standard_normal(shape(s, init["vdim"] or e))]
    ours_in = [mg.tensor(a, requires_grad=True) for a in arrays[:1 if self_attention else 3]]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays[:1 if self_attention else 3]]
    if self_attention:
        ours_in, theirs_in = ours_in * 3, theirs_in * 3
    kw, tkw = {}, {}
    mask = c.pop("attn_mask", None)
    if mask == "bool":
        m = rng.random((lq, s)) > 0.7
        m[:, 0] = False
        kw["attn_mask"], tkw["attn_mask"] = mg.tensor(m), torch.tensor(m)
    elif mask in ("float", "float3d"):
        m = rng.standard_normal((lq, s) if mask == "float" else (n * h, lq, s))
        kw["attn_mask"], tkw["attn_mask"] = mg.tensor(m), torch.tensor(m)
    if c.pop("key_padding_mask", False):
        m = rng.random((n, s)) > 0.6
        m[:, 0] = False
        kw["key_padding_mask"] = mg.tensor(m)
        # PyTorch warns about mixed mask kinds: give it the float form of the same mask
        tkw["key_padding_mask"] = torch.tensor(np.where(m, -np.inf, 0.0)) if "attn_mask" in kw else torch.tensor(m)
    if c.get("is_causal"):
        tkw["attn_mask"] = torch.ones(lq, s, dtype=torch.bool).triu(1)  # PyTorch needs the mask with the hint
        tkw["is_causal"] = True
        kw["is_causal"] = c.pop("is_causal")
    for flag in ("need_weights", "average_attn_weights"):
        if flag in c:
            kw[flag] = tkw[flag] = c.pop(flag)
    assert not c
    out, w = ours(*ours_in, **kw)
    tout, tw = theirs(*theirs_in, **tkw)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert (w is None) == (tw is None)
    if w is not None:
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    (out * mg.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    for a, b in zip(ours_in[:1 if self_attention else 3], theirs_in):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)
    tparams = dict(theirs.named_parameters())
    for pname, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[pname].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=pname)


def test_multihead_attention_dropout_in_training_only():
    mg.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = mg.randn(2, 5, 8)
    a, b = mha(x, x, x, need_weights=False)[0], mha(x, x, x, need_weights=False)[0]
    assert not np.allclose(a.numpy(), b.numpy())  # two different dropout masks
    mha.eval()
    a, b = mha(x, x, x)[0], mha(x, x, x)[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_multihead_attention_errors():
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = mg.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"embed_dim \(8\) must be divisible by num_heads \(3\)"):
        nn.MultiheadAttention(8, 3)
    with pytest.raises(ValueError, match=r"query, key and value of shapes \(2, 5, 7\)"):
        mha(mg.randn(2, 5, 7), x, x)
    with pytest.raises(ValueError, match="must all be 3-D"):
        mha(mg.randn(5, 8), x, x)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 4\) should have one of the shapes"):
        mha(x, x, x, attn_mask=mg.ones(5, 4))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(3, 5\)"):
        mha(x, x, x, key_padding_mask=mg.tensor(np.zeros((3, 5), dtype=bool)))
    with pytest.raises(TypeError, match="attn_mask must be a bool or floating Tensor"):
        mha(x, x, x, attn_mask=mg.tensor(np.zeros((5, 5), dtype=np.int64)))
