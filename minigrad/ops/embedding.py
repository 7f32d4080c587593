"""Embedding: a lookup table, z = W[indices].  Derivation: docs/derivations/embedding.md.

The forward is a gather of rows; its adjoint, the backward, scatter-adds rows of the gradient
back into a zero matrix of W's shape (the table's ``embedding_backward``: a row picked k
times receives the sum of its k gradients).  That scatter-add is an op too, whose own
backward is the gather again, so an embedding differentiates any number of times.
"""
import numbers

from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor


@register
class Embedding(Function):
    """z[..., :] = W[i[...], :]     W (num_embeddings, D), i integer of any shape, z i.shape + (D,)

    dL/dW = sum over positions p with i_p = r of g_p    (row r of the scatter-add of g);
    the row ``padding_idx`` (if given) gets no gradient, as in PyTorch.  No gradient reaches
    the integer indices."""

    saves_inputs = False  # only the weight's shape

    def forward(self, weight, indices, padding_idx):
        self.indices, self.padding_idx = indices.reshape(-1), padding_idx
        return backend.array_module(weight).take(weight, indices, axis=0)

    def backward(self, g):
        rows = g.reshape((-1, g.shape[-1]))
        return EmbeddingBackward.apply(rows, indices=self.indices, num_embeddings=self.inputs[0].shape[0],
                                       padding_idx=self.padding_idx)


@register
class EmbeddingBackward(Function):
    """z = the (num_embeddings, D) matrix with row m of g (M, D) added onto row i_m (repeats
    accumulate; row ``padding_idx`` stays 0): Embedding's backward.

    It is linear in g, and its adjoint is the gather:   dL/dg = gz[i]   (Embedding again)."""

    saves_inputs = False

    def forward(self, g, indices, num_embeddings, padding_idx):
        self.indices, self.padding_idx = indices, padding_idx
        dw = backend.kernels(g).embedding_backward(g, indices, num_embeddings)
        if padding_idx is not None:
            dw[padding_idx] = 0
        return dw

    def backward(self, gz):
        if self.padding_idx is not None:
            gz = Tensor._wrap(gz.array.copy())
            gz.array[self.padding_idx] = 0
        return Embedding.apply(gz, indices=self.indices, padding_idx=self.padding_idx)


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, D) picked by the integer tensor ``input`` (any shape):
    the result has shape input.shape + (D,).  ``padding_idx``: that row receives no gradient
    (PyTorch's F.embedding; max_norm is not supported)."""
    op = "embedding"
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if input.dtype.kind not in "iu":
        raise TypeError(f"{op}: input must hold integer indices (e.g. int64), got dtype {input.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    if input.device != weight.device:
        raise RuntimeError(f"{op}: input is on {input.device} but weight is on {weight.device}")
    n = weight.shape[0]
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) or not -n <= padding_idx < n:
            raise ValueError(f"{op}: padding_idx must be an int in [-{n}, {n}), got {padding_idx!r}")
        padding_idx = int(padding_idx) % n
    indices = input.array
    # The range check reads the indices: free on the CPU (and on the GPU under MINIGRAD_DEBUG=1,
    # for an error right here).  Otherwise a GPU checks them itself: a bad index stops the kernel
    # and the error, naming embedding, comes out of the next synchronisation (never a silent
    # row of another index, which is what CuPy's wrapping take would give).
    if indices.size and (backend.device_of(indices) == backend.CPU or backend.debug_checks()):
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= n:
            raise IndexError(f"{op}: index {low if low < 0 else high} is out of range for a table of "
                             f"{n} rows (weight of shape {weight.shape}; valid indices are 0..{n - 1})")
    elif indices.size:
        backend.check_indices_on_device(indices, 0, n, op)
    if input.dtype != "int64":
        input = Tensor._wrap(indices.astype("int64"))
    # the index tensor goes in as a Tensor: the engine then checks it was not edited before backward
    return Embedding.apply(weight, indices=input, padding_idx=padding_idx)
