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
from .shape import broadcast_to, reshape
from ..tensor import Tensor


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

    saves_inputs = {0: (1,), 1: (0,)}  # dL/da reads b, dL/db reads a

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

    saves_inputs = {0: (1,), 1: (0,), 2: ()}  # dL/dx reads W, dL/dW reads x

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

    def fused_backward(self, g):
        """The same products on arrays, where the gradient is not recorded: the backward above
        makes up to seven records (products, transposes, reshapes, a sum) that nobody reads,
        ~5 us each, a tenth of the MNIST MLP's step at batch 32."""
        x, w = self.inputs[0].array, self.inputs[1].array
        kernels, g = backend.kernels(g.array), g.array
        g2 = g.reshape(-1, g.shape[-1])
        gx = gw = gb = None
        if self.inputs[0].requires_grad:
            gx = kernels.matmul(g2, w).reshape(x.shape)
        if self.inputs[1].requires_grad:
            gw = kernels.matmul(g2.T, x.reshape(-1, x.shape[-1]))
        if len(self.inputs) == 3 and self.inputs[2].requires_grad:
            gb = g2.sum(axis=0)
        return tuple(None if a is None else Tensor._wrap(a) for a in (gx, gw, gb)[:len(self.inputs)])


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


def mm(a, b):
    """The product of two matrices (2-D only, as ``torch.mm``; ``matmul`` broadcasts)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expects two matrices (2-D), got shapes {a.shape} and {b.shape}; "
                         "use matmul (or @) for vectors and batches")
    return matmul(a, b)


def bmm(a, b):
    """Batched matrix product (b, n, m) @ (b, m, p) -> (b, n, p), as ``torch.bmm`` (no
    broadcasting of the batch: ``matmul`` does that)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: expects two 3-D tensors with the same batch size, got shapes "
                         f"{a.shape} and {b.shape}; use matmul (or @) to broadcast")
    return matmul(a, b)


# -- einsum -----------------------------------------------------------------------------------


@register
class Einsum(Function):
    """z = einsum(equation, x_1, ..., x_n): every letter is an axis; z sums the product of the
    operands over the letters missing from the output (the equation is in explicit form,
    letters only, as ``_parse_einsum`` writes it).

    dL/dx_k = einsum(out, s_1, .. (all but s_k) .., s_n -> s_k; g, x_1, .., x_n without x_k):
    the gradient of a sum of products with respect to one factor is the sum of the products of
    everything else with g.  A letter that only x_k has is summed in z, so its gradient is
    constant along it (broadcast back); a letter repeated within s_k (a diagonal, "ii->i")
    gets its gradient on the diagonal only (a product with the identity).
    docs/derivations/einsum.md."""

    def forward(self, *xs, equation):
        self.equation = equation
        xp = backend.array_module(xs[0])
        # optimize: NumPy then contracts pairwise with BLAS (tensordot) instead of one loop
        z = xp.einsum(equation, *xs, optimize=len(xs) > 1)
        if any(xp.may_share_memory(z, x) for x in xs):
            z = z.copy()  # a transpose or diagonal comes back as a view: the output owns its memory
        return z

    def backward(self, g):
        terms, out = self.equation.split("->")
        terms = terms.split(",")
        xs = self.saved_tensors
        grads = []
        for k, (sub, x) in enumerate(zip(terms, xs)):
            if not x.requires_grad:
                grads.append(None)
                continue
            others = [(s, t) for j, (s, t) in enumerate(zip(terms, xs)) if j != k]
            available = set(out).union(*(s for s, _ in others))
            unique = "".join(dict.fromkeys(sub))               # s_k without repeats, in order
            kept = "".join(c for c in unique if c in available)
            gk = Einsum.apply(g, *(t for _, t in others),
                              equation=",".join([out] + [s for s, _ in others]) + "->" + kept)
            if kept != unique:  # letters only x_k has: the gradient is constant along them
                size = dict(zip(sub, x.shape))
                gk = reshape(gk, tuple(size[c] if c in kept else 1 for c in unique))
                gk = broadcast_to(gk, tuple(size[c] for c in unique))
            if unique != sub:
                gk = _onto_diagonals(gk, unique, sub, x.shape)
            grads.append(gk)
        return tuple(grads)


def _onto_diagonals(gk, unique, sub, shape):
    """gk (axes ``unique``) placed on the diagonals of an array with axes ``sub``, where a
    letter repeats: each repeat gets a fresh letter and a factor identity(letter, fresh)."""
    xp = backend.array_module(gk.array)
    free = (c for c in _LETTERS if c not in sub)
    seen, full, eyes, eye_subs = set(), "", [], []
    for c, n in zip(sub, shape):
        if c in seen:
            f = next(free)
            full += f
            eyes.append(Tensor._wrap(xp.eye(n, dtype=gk.dtype)))
            eye_subs.append(c + f)
        else:
            seen.add(c)
            full += c
    return Einsum.apply(gk, *eyes, equation=",".join([unique] + eye_subs) + "->" + full)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _parse_einsum(equation, shapes):
    """The equation in explicit form with letters only: "..." expanded (right-aligned, as
    broadcasting does), the implicit output ("ij,jk": the letters that appear once, sorted,
    after the "..." axes) written out.  Returns (terms, out, sizes of the letters)."""
    op = "einsum"
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"{op}: the equation {equation!r} has {len(terms)} operand(s), got {len(shapes)} tensors")
    for part in terms + ([out] if arrow else []):
        if part.replace("...", "").strip(_LETTERS) or part.count("...") > 1:
            raise ValueError(f"{op}: invalid subscripts {part!r} in {equation!r} (letters a-z, A-Z and at "
                             "most one '...' per operand)")
    free = [c for c in _LETTERS if c not in eq]
    ell_ndim = 0
    for t, shape in zip(terms, shapes):
        explicit = len(t.replace("...", ""))
        if ("..." in t and explicit > len(shape)) or ("..." not in t and explicit != len(shape)):
            raise ValueError(f"{op}: subscripts {t!r} do not fit an operand of shape {tuple(shape)}")
        if "..." in t:
            ell_ndim = max(ell_ndim, len(shape) - explicit)
    ell = "".join(free[:ell_ndim])
    # "..." stands for the operand's last unnamed axes, aligned on the right as in broadcasting
    terms = [t.replace("...", ell[ell_ndim - (len(s) - len(t) + 3):]) for t, s in zip(terms, shapes)]
    if arrow:
        out = out.replace("...", ell)
        if len(set(out)) != len(out) or set(out) - set("".join(terms)):
            raise ValueError(f"{op}: the output subscripts of {equation!r} must be distinct and appear in "
                             "an operand")
    else:
        letters = "".join(terms)
        once = sorted((c for c in set(letters) if letters.count(c) == 1 and c not in ell), key=_LETTERS.index)
        out = ell + "".join(once)
    sizes = {}
    for t, shape in zip(terms, shapes):
        for c, n in zip(t, shape):
            if sizes.get(c, 1) != 1 and n not in (1, sizes[c]):
                raise ValueError(f"{op}: letter {c!r} of {equation!r} has sizes {sizes[c]} and {n} "
                                 f"(operand shapes {', '.join(str(tuple(s)) for s in shapes)})")
            if n != 1 or c not in sizes:
                sizes[c] = n
    return terms, out, sizes


def einsum(equation, *operands):
    """Einstein summation, as ``torch.einsum`` / ``numpy.einsum``: ``einsum("ij,jk->ik", a, b)``
    is a @ b, ``einsum("bhqd,bhkd->bhqk", q, k)`` attention scores, ``einsum("ii", a)`` the
    trace.  "..." stands for broadcast axes; size-1 axes broadcast against a letter's size.
    The operands may also come as one list.  Differentiable in every operand (any order)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the first argument must be the equation string, got {type(equation).__name__}")
    if not operands or not all(isinstance(t, Tensor) for t in operands):
        raise TypeError("einsum: expected one or more tensors after the equation")
    terms, out, sizes = _parse_einsum(equation, [t.shape for t in operands])
    from .elementwise import astype, promote_types

    dtype = operands[0].dtype
    for t in operands[1:]:
        dtype = promote_types(dtype, t.dtype)
    ops = [astype(t, dtype) for t in operands]
    # size-1 axes broadcast to their letter's size up front, so Einsum sees one size per letter
    ops = [t if all(n == sizes[c] for c, n in zip(s, t.shape)) else
           broadcast_to(t, tuple(sizes[c] for c in s)) for s, t in zip(terms, ops)]
    return Einsum.apply(*ops, equation=",".join(terms) + "->" + out)

