"""einsum, mm, bmm: einsum against NumPy on many equations (implicit and explicit
outputs, "...", traces and diagonals, letters only one operand has, size-1 broadcasting), first
and second derivatives against finite differences, errors, and PyTorch parity."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.ops.matmul import _parse_einsum
from tests.helpers import assert_matches_torch

from .coverage import covers

# (equation, operand shapes)
EQUATIONS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),          # matrix product
    ("ij,jk", [(2, 3), (3, 4)]),              # implicit output: "ik"
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),  # batched
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),  # attention scores
    ("ii", [(3, 3)]),                          # trace
    ("ii->i", [(3, 3)]),                       # diagonal
    ("iij->j", [(2, 2, 3)]),                   # a repeated letter with another one
    ("ij->", [(2, 3)]),                        # sum of everything
    ("ij->ji", [(2, 3)]),                      # transpose
    ("i,j->ij", [(3,), (4,)]),                 # outer product
    ("i,i->", [(5,), (5,)]),                   # dot product
    ("ij,kl->il", [(2, 3), (4, 5)]),           # letters only one operand has (j, k): summed
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),  # broadcast batch axes
    ("i...,j...->ij...", [(3, 2), (4, 2)]),
    ("...i,...i", [(2, 3), (3,)]),             # implicit output with "...": "..." first
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),  # three operands
    ("ab,ab,ab->a", [(2, 3), (2, 3), (1, 3)]),  # a size-1 axis broadcast against its letter
    ("Ab,bC->AC", [(2, 3), (3, 2)]),           # upper-case letters
]


def _operands(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def _numpy_einsum(eq, arrays):
    """NumPy's einsum, with size-1 axes broadcast to their letter's size first."""
    terms, out, sizes = _parse_einsum(eq, [a.shape for a in arrays])
    full = [np.broadcast_to(a, tuple(sizes[c] for c in t)) for t, a in zip(terms, arrays)]
    return np.einsum(",".join(terms) + "->" + out, *full)


@covers("Einsum", twice=True)
@pytest.mark.parametrize("eq, shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum_matches_numpy_and_finite_differences(eq, shapes, device):
    arrays = _operands(shapes)
    xs = [mg.tensor(a, device=device, requires_grad=True) for a in arrays]
    out = mg.einsum(eq, *xs)
    np.testing.assert_allclose(out.numpy(), _numpy_einsum(eq, arrays), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mg.einsum(eq, xs).numpy(), out.numpy())  # the operands as one list
    assert mg.gradcheck(lambda *ts: mg.einsum(eq, *ts), *xs)
    assert mg.gradgradcheck(lambda *ts: mg.einsum(eq, *ts), *xs)


def test_einsum_gradients_by_hand():
    a = mg.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    mg.einsum("ii", a).backward()  # d trace / dA = I
    np.testing.assert_array_equal(a.grad.numpy(), np.eye(3))
    b = mg.tensor(np.ones((2, 3)), requires_grad=True)
    mg.einsum("ij->", b).backward()  # every element once
    np.testing.assert_array_equal(b.grad.numpy(), np.ones((2, 3)))
    x = mg.tensor(np.ones(3), requires_grad=True)
    w = mg.tensor([1.0, 2.0, 3.0], dtype=np.float64)
    mg.einsum("i,j->", x, w).backward()  # sum_ij x_i w_j: dx_i = sum_j w_j
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0, 6.0])
    assert x.grad.dtype == np.float64


def test_einsum_dtypes_and_errors():
    a, b = mg.randn(2, 3), mg.randn(3, 4, dtype=np.float64)
    assert mg.einsum("ij,jk", a, a.T).dtype == np.float32
    assert mg.einsum("ij,jk", a, b).dtype == np.float64  # promoted, as every binary op
    with pytest.raises(ValueError, match="einsum: the equation 'ij,jk' has 2 operand"):
        mg.einsum("ij,jk", a)
    with pytest.raises(ValueError, match=r"einsum: subscripts 'ijk' do not fit an operand of shape \(2, 3\)"):
        mg.einsum("ijk->i", a)
    with pytest.raises(ValueError, match="einsum: letter 'j' of 'ij,jk' has sizes 3 and 4"):
        mg.einsum("ij,jk", a, mg.randn(4, 4))
    with pytest.raises(ValueError, match="einsum: invalid subscripts 'i1'"):
        mg.einsum("i1->i", a)
    with pytest.raises(ValueError, match="output subscripts .* must be distinct and appear in an operand"):
        mg.einsum("ij->ik", a)
    with pytest.raises(TypeError, match="einsum: the first argument must be the equation"):
        mg.einsum(a, "ij")


def test_mm_and_bmm(device):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x, y = mg.tensor(a, device=device), mg.tensor(b, device=device)
    np.testing.assert_allclose(mg.mm(x, y).numpy(), a @ b, rtol=1e-12)
    np.testing.assert_allclose(x.mm(y).numpy(), a @ b, rtol=1e-12)
    c, d = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    np.testing.assert_allclose(mg.bmm(mg.tensor(c), mg.tensor(d)).numpy(), c @ d, rtol=1e-12)
    with pytest.raises(ValueError, match=r"mm: expects two matrices \(2-D\), got shapes \(3, 4\) and \(4,\)"):
        mg.mm(x, mg.ones(4))
    with pytest.raises(ValueError, match=r"bmm: expects two 3-D tensors with the same batch size"):
        mg.bmm(mg.tensor(c), mg.tensor(d[:1]))  # (matmul would broadcast the batch of 1)


@pytest.mark.torch
@pytest.mark.parametrize("eq, shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum_matches_torch(eq, shapes):
    torch = pytest.importorskip("torch")
    assert_matches_torch(lambda *xs: mg.einsum(eq, *xs), lambda *ts: torch.einsum(eq, *ts), _operands(shapes, seed=2),
                         rtol=1e-12, atol=1e-12, seed=3)


def test_einsum_output_owns_its_memory():
    """NumPy's einsum returns views for transposes and diagonals; writing into the result must
    not change the input (an op output is new memory unless the op is a declared view)."""
    a = np.arange(9.0).reshape(3, 3)
    x = mg.tensor(a.copy())
    for eq in ("ii->i", "ij->ji", "ij->ij"):
        y = mg.einsum(eq, x)
        assert not np.shares_memory(y.array, x.array)
        y.mul_(0.0)
        np.testing.assert_array_equal(x.numpy(), a)
