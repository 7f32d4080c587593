"""layer_norm on random shapes and memory layouts against PyTorch (float64, tight tolerances:
issue 10's parity target), and the numba row kernels of cpu_kernels (serial and parallel)
against reference.py.  (The op's gradcheck, gradgradcheck and errors: tests/test_ops_norm.py.)"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.backend import cpu_kernels as C
from minigrad.backend import reference as R
from minigrad.nn import functional as F
from tests.conftest import DEVICES
from tests.strategies import relayout


@st.composite
def ln_case(draw):
    """(x, normalized_shape, weight or None, bias or None, eps) in a random layout."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lead = draw(st.sampled_from([(), (3,), (2, 3)]))
    norm = draw(st.sampled_from([(4,), (1,), (2, 3), (5,)]))
    x = relayout(rng.standard_normal(lead + norm) * 2 + 1, draw(st.sampled_from(["C", "F", "strided"])))
    affine = draw(st.sampled_from(["both", "weight", "none"]))
    w = rng.standard_normal(norm) if affine != "none" else None
    b = rng.standard_normal(norm) if affine == "both" else None
    return x, norm, w, b, draw(st.sampled_from([1e-5, 0.1]))


def _t(a, grad=True):
    return None if a is None else mg.tensor(a, requires_grad=grad)


@given(ln_case())
def test_layer_norm_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, norm, w, b, eps = case
    ours = [_t(a) for a in (x, w, b)]
    theirs = [None if a is None else torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, w, b)]
    y = F.layer_norm(ours[0], norm, ours[1], ours[2], eps)
    ty = torch.nn.functional.layer_norm(theirs[0], norm, theirs[1], theirs[2], eps)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(mg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, t in zip(ours, theirs):
        if a is not None:
            np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_float32_rows_are_normalized(device):
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 6, 32)).astype(np.float32) * 5 + 3, device=device)
    y = F.layer_norm(x, 32).numpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-3)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_numba_layer_norm_kernels_match_reference(monkeypatch, parallel, dtype, affine):
    if not C.use_numba():
        pytest.skip("numba is disabled")
    monkeypatch.setattr(C, "_PARALLEL_WORK", 0 if parallel else 1 << 62)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((150, 37)) * 3 + 2).astype(dtype)  # 150 rows: three partial-sum chunks
    w, b = (rng.standard_normal(37).astype(dtype) for _ in range(2)) if affine else (None, None)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    got, ref = C.layer_norm_forward(x, w, b, 1e-5), R.layer_norm_forward(x, w, b, 1e-5)
    for a, r in zip(got, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, r, **tol)
    g = rng.standard_normal(x.shape).astype(dtype)
    for a, r in zip(C.layer_norm_backward(g, x, w, *ref[1:]), R.layer_norm_backward(g, x, w, *ref[1:])):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, r, **tol)
