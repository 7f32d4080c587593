"""The fused attention kernels of attention.cu (cuda_kernels.attention_forward/backward) against
reference.py, on the CPU emulator and on a GPU when there is one: several query and key tiles,
causal and not, every mask broadcast pattern, dropout regenerated from the Philox stream,
fully masked rows, head sizes at the limit and past it (the reference then runs), empty
batches; that no (Tq, Tk) array reaches the kernels; and the op through the emulated table."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.backend import cuda as ck
from minigrad.backend import reference as ref
from tests.test_cuda_kernels import DTYPES, close, dev, rng  # noqa: F401  (fixtures)

# (B, Tq, Tk, D, Dv): one tile; several query blocks and key tiles (8 rows per block, 32 keys
# per tile); more blocks than the emulator's grid (grid-stride loops); the largest head size
CASES = {"small": (3, 5, 7, 4, 3), "tiles": (2, 19, 45, 5, 6), "grid-stride": (5, 17, 9, 3, 2),
         "head-64": (1, 9, 33, 64, 64), "one": (1, 1, 1, 1, 1)}
MASKS = {"none": None, "shared": (1, 1, 1), "per-batch-key": (1, 0, 1), "full": (1, 1, 1, "full")}


def _mask(rng, kind, b, tq, tk, dtype):
    if kind == "none":
        return None
    if kind == "shared":  # (1, Tq, Tk) bool-style: -inf where closed, one row closed everywhere
        m = np.where(rng.random((1, tq, tk)) > 0.3, 0.0, -np.inf)
        m[0, tq // 2] = -np.inf
        return m.astype(dtype)
    if kind == "per-batch-key":  # (B, 1, Tk): a padding mask
        return rng.standard_normal((b, 1, tk)).astype(dtype)
    return rng.standard_normal((b, tq, tk)).astype(dtype)


def _run(dev, q, k, v, mask, causal, scale, p):
    args = (mask, causal, scale, p, 2**35 + 9, 11)
    put = [None if a is None else dev.put(a) for a in (q, k, v, mask)]
    with np.errstate(invalid="ignore"):
        want = ref.attention_forward(q, k, v, *args)
        got = ck.attention_forward(*put[:3], put[3], *args[1:])
    g = np.random.default_rng(5).standard_normal(want[0].shape).astype(q.dtype)
    want_grads = ref.attention_backward(g, q, k, v, *want, *args)
    got_grads = ck.attention_backward(dev.put(g), *put[:3], *(dev.put(a) for a in want), put[3], *args[1:])
    return [dev.get(a) for a in (*got, *got_grads)], [*want, *want_grads]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_kind", sorted(MASKS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_attention_kernels_match_reference(dev, rng, case, mask_kind, dtype):  # noqa: F811
    b, tq, tk, d, dv = CASES[case]
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((b, tq, d), (b, tk, d), (b, tk, dv)))
    got, want = _run(dev, q, k, v, _mask(rng, mask_kind, b, tq, tk, dtype), False, 0.4, 0.0)
    # float32: sums of up to 64 products taken in another order than NumPy's BLAS; absolute
    # differences of a few 1e-6 on values near 1 are float32's rounding, not a bug
    atol = 4e-6 if dtype == np.float32 else None
    for name, g, w in zip(("out", "lse", "dq", "dk", "dv"), got, want):
        assert g.dtype == dtype, name
        close(g, w, dtype, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("case", ["tiles", "small", "grid-stride"])
def test_causal_and_dropout(dev, rng, case, p, dtype):  # noqa: F811
    b, tq, tk, d, dv = CASES[case]
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((b, tq, d), (b, tk, d), (b, tk, dv)))
    got, want = _run(dev, q, k, v, None, True, 0.7, p)
    for g, w in zip(got, want):
        close(g, w, dtype)
    if p:  # the kernels drew the same mask as reference.dropout_mask: the outputs differ from p = 0
        no_drop, _ = _run(dev, q, k, v, None, True, 0.7, 0.0)
        assert not np.allclose(got[0], no_drop[0])


def test_fully_masked_rows_and_nan(dev, rng):  # noqa: F811
    q, k, v = (rng.standard_normal(s) for s in ((2, 4, 3), (2, 6, 3), (2, 6, 2)))
    mask = np.zeros((1, 4, 6))
    mask[0, 1] = -np.inf
    q[1, 3, 0] = np.nan
    got, want = _run(dev, q, k, v, mask, False, 1.0, 0.0)
    assert np.all(got[0][:, 1] == 0) and np.all(got[1][:, 1] == -np.inf) and np.all(got[2][:, 1] == 0)
    assert np.isnan(got[0][1, 3]).all() and np.isfinite(got[0][0]).all()
    for g, w in zip(got, want):
        close(g, w)


def test_head_sizes_past_the_limit_and_empty_batches_use_the_reference(dev, rng):  # noqa: F811
    q, k, v = rng.standard_normal((1, 3, 65)), rng.standard_normal((1, 4, 65)), rng.standard_normal((1, 4, 2))
    got, want = _run(dev, q, k, v, None, False, 0.1, 0.0)
    for g, w in zip(got, want):
        close(g, w)
    got, want = _run(dev, *(np.zeros((0, 3, 2)),) * 3, None, True, 1.0, 0.0)
    assert [g.shape for g in got] == [(0, 3, 2), (0, 3), (0, 3, 2), (0, 3, 2), (0, 3, 2)]


def test_no_score_matrix_reaches_global_memory(monkeypatch):
    """Every array the three kernels get is O(T) per problem: none has Tq * Tk elements."""
    sizes = []
    launch = ck._launch

    def spy(xp, family, kernel, dtype, grid, block, args):
        sizes.extend(a.size for a in args if hasattr(a, "size") and hasattr(a, "dtype") and a.ndim)
        return launch(xp, family, kernel, dtype, grid, block, args)

    monkeypatch.setattr(ck, "_launch", spy)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 48, 2)) for _ in range(3))
    out, lse = ck.attention_forward(q, k, v, None, True, 1.0, 0.2, 1, 0)
    ck.attention_backward(np.ones_like(out), q, k, v, out, lse, None, True, 1.0, 0.2, 1, 0)
    assert sizes and max(sizes) < 48 * 48


def test_the_op_through_the_emulated_table(monkeypatch):
    """F.scaled_dot_product_attention with MINIGRAD_CPU_KERNELS=cuda: the CUDA C kernels run
    (emulated) in forward and backward, and the gradients pass gradcheck."""
    monkeypatch.setenv("MINIGRAD_CPU_KERNELS", "cuda")
    if hasattr(mg.backend, "_cpu_choice"):
        monkeypatch.setattr(mg.backend, "_cpu_choice", {"name": "cuda", "table": None})
    launched = []
    launch = ck._launch
    monkeypatch.setattr(ck, "_launch", lambda xp, family, kernel, *rest: (launched.append(kernel),
                                                                          launch(xp, family, kernel, *rest))[1])
    rng = np.random.default_rng(3)
    q, k, v = (mg.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True) for _ in range(3))
    mask = mg.tensor(rng.random((3, 3)) > 0.2)

    def f(q, k, v):
        return mg.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    assert mg.gradcheck(f, q, k, v)
    assert {"attention_forward", "attention_backward_dq", "attention_backward_dkdv"} <= set(launched)
