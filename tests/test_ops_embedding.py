"""embedding (minigrad/ops/embedding.py): a gather whose backward scatter-adds (repeated
indices accumulate), padding_idx, PyTorch parity, gradcheck and gradgradcheck of both ops,
errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.nn import functional as F
from tests.conftest import DEVICES
from tests.coverage import covers


@st.composite
def embedding_case(draw):
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    idx = draw(hnp.arrays(np.int64, draw(st.sampled_from([(), (5,), (2, 3), (0,)])), elements=st.integers(0, n - 1)))
    weight = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((n, d))
    padding = draw(st.one_of(st.none(), st.integers(-n, n - 1)))
    return idx, weight, padding


@given(embedding_case())
def test_embedding_matches_torch_with_repeats(case):
    torch = pytest.importorskip("torch")
    idx, w, padding = case
    W = mg.tensor(w, requires_grad=True)
    z = F.embedding(mg.tensor(idx), W, padding_idx=padding)
    tw = torch.tensor(w, requires_grad=True)
    tz = torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=padding)
    g = np.random.default_rng(0).standard_normal(z.shape)
    z.backward(mg.tensor(g))
    tz.backward(torch.tensor(g))
    np.testing.assert_array_equal(z.numpy(), tz.detach().numpy())
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_repeated_indices_accumulate():
    W = mg.tensor(np.zeros((3, 2)), requires_grad=True)
    F.embedding(mg.tensor([[2, 0, 2], [2, 1, 0]]), W).sum().backward()
    np.testing.assert_array_equal(W.grad.numpy(), [[2, 2], [1, 1], [3, 3]])


@covers("Embedding", "EmbeddingBackward", twice=True)
@given(embedding_case())
def test_embedding_gradcheck_and_gradgradcheck(case):
    idx, w, padding = case
    i = mg.tensor(idx)
    W = mg.tensor(w, requires_grad=True)
    # (padding_idx withholds a true derivative on purpose, so the first check goes without it)
    assert mg.gradcheck(lambda W: F.embedding(i, W), W)
    # the scatter-add on its own, as a function of the upstream gradient G
    G = mg.tensor(np.random.default_rng(1).standard_normal(idx.shape + w.shape[1:]), requires_grad=True)

    def scatter(G):  # dL/dW for L = sum(embedding(i, W) * G): EmbeddingBackward of G
        with mg.enable_grad():  # (gradcheck's finite differences run under no_grad)
            return mg.grad((F.embedding(i, W, padding_idx=padding) * G).sum(), W, create_graph=True)[0]

    assert mg.gradcheck(scatter, G)
    assert mg.gradgradcheck(scatter, G)
    # the gradient is linear in the upstream gradient: gradgradcheck differentiates
    # EmbeddingBackward (a scatter-add, padding row kept at 0) through its own backward, the gather
    assert mg.gradgradcheck(lambda W: F.embedding(i, W, padding_idx=padding) ** 2, W)


@pytest.mark.parametrize("device", DEVICES)
def test_embedding_float32_on_devices(device):
    W = mg.tensor(np.arange(12, dtype=np.float32).reshape(4, 3), requires_grad=True, device=device)
    z = F.embedding(mg.tensor([[3, 1]], device=device), W)
    assert z.shape == (1, 2, 3) and z.dtype == np.float32
    np.testing.assert_array_equal(z.numpy()[0], [[9, 10, 11], [3, 4, 5]])
    z.sum().backward()
    np.testing.assert_array_equal(W.grad.numpy().sum(1), [0, 3, 0, 3])


def test_embedding_errors():
    W = mg.randn(5, 2)
    with pytest.raises(IndexError, match=r"embedding: index 5 is out of range for a table of 5 rows"):
        F.embedding(mg.tensor([1, 5]), W)
    with pytest.raises(IndexError, match=r"embedding: index -1 is out of range"):
        F.embedding(mg.tensor([-1, 2]), W)
    with pytest.raises(TypeError, match="integer indices"):
        F.embedding(mg.tensor([1.0]), W)
    with pytest.raises(ValueError, match=r"weight must be 2-D"):
        F.embedding(mg.tensor([1]), mg.randn(5))
    with pytest.raises(ValueError, match=r"padding_idx must be an int in \[-5, 5\)"):
        F.embedding(mg.tensor([1]), W, padding_idx=5)
