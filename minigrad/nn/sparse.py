"""Embedding: a learned lookup table of vectors, one row per token (PyTorch's nn.Embedding)."""
import numbers

from ..autograd import no_grad
from ..ops import embedding
from . import init
from .layers import _empty
from .module import Module
from .parameter import Parameter


class Embedding(Module):
    """``embedding(i)`` = row i of ``weight`` (num_embeddings, embedding_dim), for an integer
    tensor of indices of any shape (the result gets a trailing embedding_dim axis).

    Initialised from N(0, 1), as in PyTorch; the row ``padding_idx`` (if given) starts at 0
    and never receives a gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, device=None, dtype=None):
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Embedding: {name} must be a positive integer, got {value!r}")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) \
                    or not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be an int in [-{num_embeddings}, {num_embeddings}), "
                                 f"got {padding_idx!r}")
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = padding_idx
        self.weight = Parameter(_empty((self.num_embeddings, self.embedding_dim), device, dtype))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
