"""Matrix products: ``matmul`` (NumPy's ``@``, batched and broadcast) and ``linear``
(x @ W^T + b in one op, the hot path of MLP training).

The backward of z = a @ b is two more products, ga = g @ b^T and gb = a^T @ g: written with
minigrad's own matmul/transpose, so they can be differentiated again.
Derivations: docs/derivations/matmul.md.
"""
import math

from .. import backend
from ..autograd import Function, register
from .reduce import sum
from .shape import reshape


def _mT(x):
    """Swap the last two axes (the matrix transpose of every matrix in a batch)."""
    from .shape import transpose  # lazily: shape.py is written alongside this file

    return transpose(x, -2, -1)


def _matmul_error(a_shape, b_shape):
    head = f"matmul: shapes {tuple(a_shape)} and {tuple(b_shape)} cannot be multiplied: "
    if len(a_shape) == 0 or len(b_shape) == 0:
        return ValueError(head + "both operands need at least one dimension (use * to scale by a scalar)")
    k_a = a_shape[-1]
    k_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k_a != k_b:
        where = "the only" if len(b_shape) == 1 else "the second-to-last"
        return ValueError(head + f"the last dimension of the first ({k_a}) must equal {where} "
                                 f"dimension of the second ({k_b})")
    return ValueError(head + f"the batch dimensions {tuple(a_shape[:-2])} and {tuple(b_shape[:-2])} "
                             "cannot be broadcast together")


@register
class MatMul(Function):
    """z = a @ b with NumPy's rules: (..., m, n) @ (..., n, p) -> (..., m, p), batch dimensions
    broadcast; a 1-D ``a`` is a row (1, n) and a 1-D ``b`` a column (n, 1), and that
    size-1 dimension is dropped from z.

    dL/da = g @ b^T,   dL/db = a^T @ g      (transposes of the last two axes; 1-D operands are
    promoted the same way first, and the promotion undone on their gradients; gradients over
    broadcast batch dimensions are summed by the engine)"""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise _matmul_error(a.shape, b.shape)
        # the kernel multiplies matrices: promote vectors, then drop the promoted axes again
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
        try:
            z = backend.kernels(a).matmul(a2, b2)
        except ValueError:
            raise _matmul_error(a.shape, b.shape) from None
        if b.ndim == 1:
            z = z[..., 0]
        if a.ndim == 1:
            z = z[..., 0, :] if z.ndim >= 2 and b.ndim != 1 else z[..., 0]
        return z

    def backward(self, g):
        a, b = self.saved_tensors
        if a.ndim == 1 or b.ndim == 1:
            return self._backward_vector(g, a, b)
        ga = matmul(g, _mT(b)) if a.requires_grad else None
        gb = matmul(_mT(a), g) if b.requires_grad else None
        return ga, gb

    def _backward_vector(self, g, a, b):
        """As above, with the vector(s) promoted to matrices and the promotion undone."""
        a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
        b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
        if b.ndim == 1:
            g = reshape(g, g.shape + (1,))
        if a.ndim == 1:
            g = reshape(g, g.shape[:-1] + (1,) + g.shape[-1:])
        ga = gb = None
        if a.requires_grad:
            ga = matmul(g, _mT(b2))
            if a.ndim == 1:  # (..., 1, n) -> (..., n); the engine sums the batch axes
                ga = reshape(ga, ga.shape[:-2] + ga.shape[-1:])
        if b.requires_grad:
            gb = matmul(_mT(a2), g)
            if b.ndim == 1:  # (..., n, 1) -> (..., n)
                gb = reshape(gb, gb.shape[:-1])
        return ga, gb


@register
class Linear(Function):
    """z = x @ W^T + b      x: (..., in),  W: (out, in),  b: (out,) or absent,  z: (..., out)

    dL/dx = g @ W,   dL/dW = g^T @ x  (summed over all leading axes of x),
    dL/db = sum of g over all leading axes

    One op instead of matmul + transpose + add: a single BLAS call forward (on W's transposed
    view, no copy) with the bias added in place, and no gradient work for inputs that do not
    require grad (usually x, the data)."""

    def forward(self, x, w, b=None):
        try:
            if w.ndim != 2 or x.ndim == 0:
                raise ValueError
            if x.ndim == 2:
                return backend.kernels(x).linear(x, w, b)
            lead = x.shape[:-1]  # one big GEMM over all leading axes, not a loop of small ones
            out = backend.kernels(x).linear(x.reshape(math.prod(lead), x.shape[-1]), w, b)
            out = out.reshape(lead + (w.shape[0],))
        except ValueError:
            bias = "" if b is None else f" and bias of shape {b.shape}"
            raise ValueError(
                f"linear: input of shape {x.shape}, weight of shape {w.shape}{bias} do not fit: "
                "the weight must be (out_features, in_features) with in_features equal to the "
                "input's last dimension, and the bias (out_features,)"
            ) from None
        return out

    def backward(self, g):
        x, w = self.saved_tensors[:2]
        # leading axes folded into one: one big GEMM each, not a batched loop of small ones
        g2 = g if g.ndim == 2 else reshape(g, (-1, g.shape[-1]))
        gx = gw = gb = None
        if x.requires_grad:
            gx = matmul(g2, w) if x.ndim == 2 else reshape(matmul(g2, w), x.shape)
        if w.requires_grad:
            x2 = x if x.ndim == 2 else reshape(x, (-1, x.shape[-1]))
            gw = matmul(_mT(g2), x2)
        if len(self.inputs) == 3 and self.inputs[2].requires_grad:
            gb = g if g.ndim == 1 else sum(g, axis=tuple(range(g.ndim - 1)))
            return gx, gw, gb
        return (gx, gw) if len(self.inputs) == 2 else (gx, gw, None)


def matmul(a, b):
    """Matrix product with NumPy's rules (1-D, 2-D, batched, broadcast batch dimensions);
    the operands are promoted to their result type first (int @ float32 is float32)."""
    from .elementwise import promote  # lazily: elementwise.py is written alongside this file

    return MatMul.apply(*promote(a, b)) if a.dtype != b.dtype else MatMul.apply(a, b)


def rmatmul(b, a):
    """``a @ b`` for ``a`` not a Tensor (Tensor.__rmatmul__)."""
    from .elementwise import lift

    return matmul(lift(a, b), b)


def linear(x, weight, bias=None):
    """x @ weight^T + bias, with weight of shape (out_features, in_features) (torch.nn.functional.linear).
    An input of another dtype than the weight is promoted first (int inputs: the weight's)."""
    if x.dtype != weight.dtype:
        from .elementwise import astype, promote

        x, weight = promote(x, weight)
        if bias is not None and bias.dtype != x.dtype:
            bias = astype(bias, x.dtype)
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)
