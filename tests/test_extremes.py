"""Every registered op at the extremes of float32, forward and backward, against float64.

For each op in ``autograd.REGISTRY`` a sample below calls it on float32 inputs drawn from the
edges of the range: near overflow (3.4e38, 1e38, 1e20 whose square overflows), the exp
thresholds (88.72, -103.97), huge logits (1e4), tiny and subnormal values (1.2e-38, 1e-40,
1.4e-45), signed zeros, inf and NaN, mixed with arbitrary float32 numbers.  The same function
runs again on the same values in float64 (exact copies), which is the truth for float32 to
be held against, forward and backward (with an upstream gradient drawn from the same
values).  A registered op without a sample fails ``test_every_registered_op_has_a_sample``,
so an op added later is picked up.

What is asserted, element by element (``check``), wherever the bound exists:
  * a NaN in float64 is a NaN in float32 (NaN is never masked), and no NaN appears where
    float64 has none;
  * an infinity in float64 is the same infinity in float32;
  * a finite float64 value w: |got - w| <= tol, where a float32 result may round to +-inf
    only when w is within tol of the overflow threshold.

The tolerances come from the error analysis of each op's formula, in units of
  U    = 2^-24, float32's unit roundoff: a rounded operation errs by <= U |result| ...
  TINY = 2^-149, float32's smallest subnormal: ... or by <= TINY / 2 in the subnormal range,
as tol = k (U * mag + TINY * sub): k roundings, each with the relative error U of the
formula's magnitude ``mag`` (the sum of the absolute values of its terms, so cancellation
is accounted for; by default |w|), plus an absolute TINY per rounding that lands in the
subnormal range, amplified by ``sub`` (the factors applied after it; 1 by default, and
1 + |g| for backwards, whose results are products with the upstream gradient g).
libm-grade functions (exp, log, sin, cos, tanh, pow, erf: NumPy's float32 SIMD versions
are documented within 4 ulp, glibc's within 2) count as 8 roundings.  Sums of n terms
(matmul, conv, pooling, reductions) have error <= (n - 1) U sum |terms| (Higham, 3.1),
where sum |terms| is the op itself evaluated on |inputs| (exact for multilinear ops).
Where that magnitude, or an intermediate value a formula forms, exceeds float32's range,
any float32 evaluation (PyTorch's too) may overflow there: there is no bound, and nothing
is asserted for those elements (each sample says which intermediates it watches).
Each sample states its bound next to it.  Where a formula chains many steps (the norms, the
recurrent cells), the bound is an absolute one derived step by step (``Bound``); for the cells
by a running error analysis (``Run``, above the cell samples): float64 values carried with
a bound on float32's error through each elementary step of the documented forward and backward
formulas, each step adding its own rounding (in U and TINY as above) to its operands' errors.
"""
import functools
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import backend
from minigrad.autograd import REGISTRY
from minigrad.ops.activation import GELUDerivative
from minigrad.ops.embedding import EmbeddingBackward
from minigrad.ops.rnn import GRUSequence, LSTMCell, LSTMSequence, RNNSequence, gru_cell, rnn_cell
from minigrad.ops.shape import scatter_add
from tests.tables import NEEDS_EMULATOR

U = 2.0 ** -24
TINY = 2.0 ** -149
FLT_MIN = 2.0 ** -126  # the smallest normal float32: what a flush-to-zero rounding may lose
F32_MAX = float(np.finfo(np.float32).max)
LIBM = 8  # a float32 libm call: within 4 ulp = 8 U
TANH = 10  # the numba table's float32 tanh (cpu_kernels._tanh_poly): within 10 U (proved in test_cpu_kernels)

EXTREMES = [0.0, -0.0, np.inf, -np.inf, np.nan, F32_MAX, -F32_MAX, 1e38, -1e30, 1e20, -1.9e19,
            88.72, -88.72, -103.97, 1e4, -1e4, 1.1754944e-38, -1e-40, 1.4e-45, -1.4e-45, 1e-30,
            1.0, -1.0, 0.5, 3.0, -7.0, 0.1]
ELEMENT = st.one_of(st.sampled_from(EXTREMES), st.floats(width=32))
BIG_ROWS = object()  # (elements of a softmax-family input: rows of huge logits, see _big_rows)
UNIT = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 1e-30, 1.4e-45, 1e-8, 0.99999994, np.nan]),
                 st.floats(0, 1, width=32))  # probabilities (binary_cross_entropy's input)


def _finite_abs(a):
    """|a| with infinities and NaNs as 0: the magnitudes a bound may use (an infinite or NaN
    value propagates the same in both precisions, and stays checked as such)."""
    return np.nan_to_num(np.abs(a), nan=0.0, posinf=0.0)


class Tol:
    """tol = k (U mag + TINY sub), mag and sub functions of the Case (float64 values); by
    default mag = |w| and sub = 1, or 1 + max |g| in a backward.  An explicit ``mag`` beyond
    float32's range means an intermediate of the formula is too (no bound there), and so
    does an ``inner`` magnitude beyond it: the intermediate values the formula forms (in a
    backward, the local derivative that g multiplies, or a tensor passed between its ops)."""

    def __init__(self, k=1, mag=None, sub=None, inner=None):
        self.k, self.mag, self.sub, self.inner = k, mag, sub, inner

    def __call__(self, c, want):
        with np.errstate(all="ignore"):
            mag = np.abs(want) if self.mag is None else np.abs(self.mag(c))
            if self.sub is not None:
                sub = self.sub(c)
            else:  # (the largest finite |g|: a bound for every element, whatever g's shape)
                sub = 1.0 if c.g is None else 1.0 + np.abs(np.where(np.isfinite(c.g), c.g, 0)).max(initial=0)
            tol = self.k * (U * mag + c.tiny * np.abs(sub))
            free = np.zeros(np.shape(tol), bool)
            if self.mag is not None:
                free = free | (mag > F32_MAX)
            if self.inner is not None:
                free = free | (np.abs(self.inner(c)) > F32_MAX)
            return np.where(free, np.inf, tol)


def grad_tol(k, local, sub=None, between=None):
    """A backward's bound g * J: mag = |g| |J|_terms, where ``local`` gives |J|'s terms; no
    bound where they exceed float32's range, or where ``between`` (the magnitude of a tensor
    the backward passes from one of its ops to the next) does."""
    inner = local if between is None else (lambda c: np.maximum(local(c), between(c)))
    return Tol(k, mag=lambda c: np.abs(c.g) * local(c), inner=inner,
               sub=sub or (lambda c: 1 + np.abs(c.g) * np.maximum(1, local(c))))


class Sums(Tol):
    """A multilinear op (sums of n products): tol = (n + 2) (U sum|terms| + TINY), with
    sum|terms| = the op on |inputs| (and |g|), infinities and NaNs counted as 0 so that their
    propagation stays checked.  A mean (or average pool) divides a sum of up to ``divisor``
    terms: where divisor sum|terms| exceeds float32's range, partial sums may overflow.
    ``in_g``: the op is linear in g only (max pooling's scatter): the magnitude is its
    backward with |g| at the inputs as they are.  ``intermediates``: (a bound on the values the
    op forms on the way, a bound on what multiplies them afterwards), functions of the Case:
    where the first exceeds float32's range, no bound; a subnormal intermediate's error (TINY)
    is scaled by the second."""

    def __init__(self, n, divisor=1, in_g=False, intermediates=None):
        super().__init__(n + 2)
        self.divisor, self.in_g, self.intermediates = divisor, in_g, intermediates

    def __call__(self, c, want):
        mag = np.abs(c.magnitude(self))
        with np.errstate(all="ignore"):
            free, tiny = mag * self.divisor > F32_MAX, c.tiny
            if self.intermediates is not None:
                values, later = (f(c) for f in self.intermediates)
                free = free | (values > F32_MAX)
                tiny = c.tiny * max(1.0, later)
            return np.where(free, np.inf, self.k * (U * mag + tiny))


EXACT = Tol(1)  # one rounding at most: the op moves, selects or correctly rounds values


class Bound(Tol):
    """tol = fn(c): an absolute bound that the sample derives step by step (the norms, the
    recurrent cells' running error analysis below); inf where there is none."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, c, want):
        with np.errstate(all="ignore"):
            tol = np.broadcast_to(np.asarray(self.fn(c), dtype=np.float64), np.shape(want))
            return np.where(np.isnan(tol), np.inf, tol)


class Case:
    """The float64 values a bound reads: x (the inputs), g (the upstream gradient; None in
    the forward), out (the forward's float64 output), i (the input whose gradient is
    checked; None in the forward)."""

    def __init__(self, sample, xs, out, g=None, i=None, tiny=TINY):
        self.sample, self.x, self.out, self.g, self.i = sample, xs, out, g, i
        self.tiny = tiny  # the absolute error of a rounding in the subnormal range

    def magnitude(self, sums):
        """The op on |inputs| with |g| (non-finite values as 0), in float64."""
        xs = [_finite_abs(x) for x in self.x] if not sums.in_g else self.x
        if self.g is None:
            return run(self.sample, xs, np.float64)[0]
        g = _finite_abs(self.g)
        return run(self.sample, xs, np.float64, g)[1][self.i]


class Sample:
    """fn(*tensors) with float inputs of ``shapes`` (elements from ``elements``: one
    strategy, or one per input); ``fwd`` bounds the output, ``bwd`` the gradients (one Tol, or
    one per input)."""

    def __init__(self, shapes, fn, fwd=EXACT, bwd=EXACT, elements=ELEMENT):
        self.shapes, self.fn, self.fwd, self.bwd = shapes, fn, fwd, bwd
        self.elements = elements if isinstance(elements, (list, tuple)) else [elements] * len(shapes)

    def bwd_tol(self, i):
        return self.bwd[i] if isinstance(self.bwd, (list, tuple)) else self.bwd


def run(sample, arrays, dtype, g=None):
    """(output, gradients) of the sample in ``dtype``; gradients when g is given."""
    mg.manual_seed(0)  # (dropout: the same mask in both precisions)
    ts = [mg.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    with np.errstate(all="ignore"):
        out = sample.fn(*ts)
        grads = None
        if g is not None:
            grads = mg.grad(out, ts, mg.tensor(np.asarray(g, dtype=out.dtype)), allow_unused=True)
            grads = [np.zeros(a.shape, dtype) if d is None else d.numpy().astype(dtype) for a, d in zip(arrays, grads)]
    return out.numpy(), grads


def _off(got, want, tol):
    """The elements where the float32 result breaks the float64 one's bound (see above)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), want.shape)
    with np.errstate(all="ignore"):
        constrained = ~(tol > F32_MAX) & ~np.isnan(tol)  # else intermediates may leave the range
        bad = constrained & np.isnan(want) & ~np.isnan(got)                        # NaN is kept
        bad |= constrained & np.isnan(got) & ~np.isnan(want)                       # and not made up
        bad |= constrained & np.isinf(want) & (got != want)                        # inf is inf
        finite = constrained & np.isfinite(want) & ~np.isnan(got)
        err = np.where(finite, np.abs(got - want), 0.0)
        may_overflow = np.abs(want) + tol >= F32_MAX
        err = np.where(np.isinf(got) & may_overflow & (np.sign(got) == np.sign(want)), 0.0, err)
        bad |= finite & ~(err <= tol)
    return bad


def check(got, want, tol, what, flushed=None):
    """Assert the float32 result against the float64 one.  ``flushed`` = (want, tol) on
    flushed inputs: an element may meet either bound (a flush-to-zero table, below)."""
    bad = _off(got, want, tol)
    if flushed is not None:
        bad &= _off(got, *flushed)
        # an infinity times an intermediate that flushed to zero is NaN where float64 has inf
        bad &= ~(np.isinf(np.asarray(want, np.float64)) & np.isnan(np.asarray(got, np.float64)))
    if bad.any():
        got, want, tol = np.asarray(got), np.asarray(want), np.broadcast_to(tol, np.shape(want))
        i = np.flatnonzero(bad.ravel())[0]
        raise AssertionError(f"{what}: element {np.unravel_index(i, want.shape)}: float32 gives "
                             f"{got.ravel()[i]!r}, float64 {want.ravel()[i]!r}, tolerance "
                             f"{tol.ravel()[i]:.3g} ({bad.sum()} of {bad.size} elements off)")


# -- the samples, op by op ------------------------------------------------------------------
#
# Bounds use the Case c: c.x (inputs), c.g (upstream gradient), c.out (forward output).

SAMPLES = {}


def sample(name, *args, **kwargs):
    SAMPLES.setdefault(name, []).append(Sample(*args, **kwargs))


def _sig(v):
    with np.errstate(all="ignore"):
        return np.where(v >= 0, 1 / (1 + np.exp(-np.abs(v))), np.exp(-np.abs(v)) / (1 + np.exp(-np.abs(v))))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _phi(v):
    with np.errstate(all="ignore"):
        return np.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)


LABELS = np.array([0, 3, 1, 4])
INDEX = np.array([[0, 2, 2], [1, 0, 1]])

# Moving, selecting and correctly rounded ops: one rounding (the result's own, or none).
# (+, -, *, / and sqrt are correctly rounded in float32, and float64's 53 bits >= 2 * 24 + 2
# make the rounded float64 result the same number: Figueroa's double-rounding theorem.)
sample("Abs", [(6,)], mg.abs)
sample("Neg", [(6,)], lambda x: -x)
sample("Sign", [(6,)], mg.sign)
sample("Add", [(6,), (6,)], lambda x, y: x + y)
sample("Sub", [(6,), (6,)], lambda x, y: x - y)
sample("Mul", [(6,), (6,)], lambda x, y: x * y)
# dL/dy = -g ((x / y) / y): three roundings; a subnormal x / y (error TINY/2) is then divided
# by y and multiplied by g
sample("Div", [(6,), (6,)], lambda x, y: x / y,
       bwd=[EXACT, grad_tol(3, lambda c: np.abs(c.x[0]) / c.x[1] ** 2,
                            sub=lambda c: 1 + np.abs(c.g) * (1 + 1 / np.abs(c.x[1])))])
# floor of the exact quotient (fmod based, as Python and PyTorch): an integer, exact
sample("DivRounded", [(6,), (6,)], mg.floor_divide)

sample("Sqrt", [(6,)], mg.sqrt, bwd=Tol(3))  # g / (2 z)
sample("Maximum", [(6,), (6,)], mg.maximum)  # the gradient g, 0 or g / 2 (ties)
sample("Minimum", [(6,), (6,)], mg.minimum)
sample("Clip", [(6,)], lambda x: mg.clip(x, -2.0, 1e30))
sample("Clone", [(6,)], mg.clone)
sample("Cast", [(6,)], lambda x: mg.ops.astype(mg.ops.astype(x, np.float16), x.dtype))  # float16 rounding, both ways
sample("Where", [(6,), (6,)], lambda x, y: mg.where(mg.tensor([True, False, True, False, True, False]), x, y))
sample("ReLU", [(6,)], mg.relu)
# s x with s = 0.01 rounded to float32 in one precision and float64 in the other: 2 roundings
sample("LeakyReLU", [(6,)], lambda x: F.leaky_relu(x, 0.01), fwd=Tol(2), bwd=Tol(2))
sample("Reshape", [(2, 3)], lambda x: x.reshape(3, 2))
sample("Permute", [(2, 3)], lambda x: mg.permute(x, 1, 0))
sample("Pad", [(2, 3)], lambda x: F.pad(x, (1, 2), value=-1e30))
sample("Concatenate", [(2,), (3,)], lambda x, y: mg.cat([x, y]))
sample("Stack", [(3,), (3,)], lambda x, y: mg.stack([x, y]))
sample("IndexPut", [(4,), (2,)], lambda x, v: mg.ops.index_put(x, mg.tensor([1, 3]), v))
sample("Max", [(3, 4)], lambda x: mg.amax(x, 1), bwd=Tol(2))  # ties share g: g / count (two roundings)
sample("Min", [(3, 4)], lambda x: mg.amin(x, 1), bwd=Tol(2))
sample("MaxPool2d", [(1, 2, 4, 4)], lambda x: F.max_pool2d(x, 2, padding=1))
sample("MaxPool2d", [(1, 1, 5, 5)], lambda x: F.max_pool2d(x, 3, stride=1, padding=1),
       bwd=Sums(9, in_g=True))  # overlapping windows add their g
sample("DropoutMask", [(6,)], lambda x: F.dropout(x, 0.3), fwd=Tol(2), bwd=Tol(2))  # x * (1/0.7 rounded)

# Sums: the op on |inputs| is the magnitude of its terms; n = the most terms in one sum
sample("Sum", [(3, 4)], lambda x: mg.sum(x, 1), bwd=EXACT, fwd=Sums(4))
sample("Mean", [(3, 4)], lambda x: mg.mean(x, 1), fwd=Sums(5, divisor=4), bwd=Tol(1))
sample("SumTo", [(3, 4)], lambda x: mg.sum_to(x, (1, 4)), fwd=Sums(3))
sample("BroadcastTo", [(3, 1)], lambda x: mg.broadcast_to(x, (3, 4)), bwd=Sums(4))
sample("Getitem", [(4,)], lambda x: x[mg.tensor([0, 2, 2, 3])], bwd=Sums(2))
sample("Gather", [(3, 4)], lambda x: mg.gather(x, 1, mg.tensor([[0, 1], [1, 1], [3, 0]])), bwd=Sums(2))
sample("ScatterAdd", [(4,)], lambda v: scatter_add(v, mg.tensor([0, 2, 2, 1]), (3,)), fwd=Sums(2))
sample("Embedding", [(3, 4)], lambda w: F.embedding(mg.tensor(INDEX), w), bwd=Sums(3))
sample("EmbeddingBackward", [(6, 4)], lambda g: EmbeddingBackward.apply(
    g, indices=mg.tensor(INDEX.reshape(-1)), num_embeddings=3, padding_idx=None), fwd=Sums(3))
sample("MatMul", [(3, 4), (4, 2)], lambda a, b: a @ b, fwd=Sums(4), bwd=Sums(4))
sample("Linear", [(3, 4), (2, 4), (2,)], F.linear, fwd=Sums(5), bwd=Sums(3))
sample("Conv2d", [(1, 2, 4, 4), (3, 2, 3, 3), (3,)], lambda x, w, b: F.conv2d(x, w, b, padding=1),
       fwd=Sums(19), bwd=Sums(27))
sample("AvgPool2d", [(1, 2, 4, 4)], lambda x: F.avg_pool2d(x, 2, padding=1), fwd=Sums(5, divisor=4), bwd=Sums(2))
sample("AdaptiveAvgPool2d", [(1, 2, 5, 5)], lambda x: F.adaptive_avg_pool2d(x, 2), fwd=Sums(10, divisor=9), bwd=Sums(5))
sample("NLLLoss", [(4, 5)], lambda x: F.nll_loss(x, mg.tensor(LABELS)), fwd=Sums(5, divisor=4), bwd=Tol(2))
# (CumSum's backward: the running sums of g from the far end)
sample("CumSum", [(3, 4)], lambda x: mg.cumsum(x, 1), fwd=Sums(4), bwd=Sums(4))
sample("Einsum", [(2, 2, 3), (2, 3, 2)], lambda a, b: mg.einsum("bij,bjk->bik", a, b), fwd=Sums(3), bwd=Sums(2))
sample("Einsum", [(3, 4), (3, 4)], lambda a, b: mg.einsum("ij,ij->i", a, b), fwd=Sums(4), bwd=Sums(1))
# the diagonal is a copy; its gradient g placed on the diagonal by products with the identity's
# exact ones and zeros (g * 0 is NaN for an infinite g in both precisions)
sample("Einsum", [(3, 3)], lambda a: mg.einsum("ii->i", a))


def _tops(c):
    return [float(_finite_abs(x).max(initial=0)) for x in list(c.x) + ([] if c.g is None else [c.g])]


def _largest_pair(c):
    """max |x| |y| over two operands; inf (no bound) where a product of two finite operands
    can round to 0 in float32 while a third is infinite: 0 * inf is NaN there, inf in float64."""
    arrays = list(c.x) + ([] if c.g is None else [c.g])
    tops = _tops(c)
    if any(np.isinf(a).any() for a in arrays):
        lows = [float(np.min(np.abs(a[np.isfinite(a) & (a != 0)]), initial=np.inf)) for a in arrays]
        if any(p * q < 2.0 ** -149 for i, p in enumerate(lows) for q in lows[i + 1:]):
            return np.inf
    return max(p * q for i, p in enumerate(tops) for q in tops[i + 1:])


# NumPy contracts three operands two at a time (g among them in a backward): an intermediate
# may overflow where the result does not (|a||b| huge, c tiny), and a subnormal one carries an
# absolute error (TINY) that the third operand then scales (sums of at most 3 terms each).
_PAIRWISE = (lambda c: 3 * _largest_pair(c), lambda c: 3 * max(_tops(c)))


# three operands, a chain: z_il = sum_jk a_ij b_jk c_kl, contracted pairwise (3 terms, then 2):
# forward (3 + 2) U of sum|terms|; each gradient also sums over two letters (at most 3 + 2)
sample("Einsum", [(2, 3), (3, 2), (2, 2)], lambda a, b, c: mg.einsum("ij,jk,kl->il", a, b, c),
       fwd=Sums(4, intermediates=_PAIRWISE), bwd=Sums(4, intermediates=_PAIRWISE))

# Rounding to integers: exact, and a zero gradient (g * 0)
sample("Floor", [(6,)], mg.floor)
sample("Ceil", [(6,)], mg.ceil)
sample("Trunc", [(6,)], mg.trunc)
sample("Round", [(6,)], mg.round)


def _round_tol(d):
    """round(x, d) = rint(x / s) s with the step s = 10^-d (NumPy multiplies by 10^d for d > 0,
    as PyTorch does): x / s rounds (U |x| / s, or TINY / 2 if subnormal) in each precision, and
    rint of two values that far apart differs by at most that plus one step; the last operation
    rounds once more (U |z|, TINY / 2).  Where |x| / s exceeds float32's range it overflows to
    inf in float32 (PyTorch's float32 round too): no bound."""
    s = 10.0 ** -d

    def bound(c):
        x = _finite_abs(c.x[0])  # (inf and NaN: the same in both)
        tol = s * (1 + 2 * U * x / s + c.tiny) + 2 * U * np.abs(c.out) + c.tiny
        return np.where(x / s > F32_MAX, np.inf, tol)
    return Bound(bound)


for _d in (1, 2, -1):
    sample("Round", [(6,)], lambda x, d=_d: mg.round(x, d), fwd=_round_tol(_d))


# libm-grade elementwise functions and their derivatives (grad_tol: g times a local derivative)
sample("Exp", [(6,)], mg.exp, fwd=Tol(LIBM), bwd=grad_tol(LIBM + 1, lambda c: np.exp(c.x[0])))   # g z
sample("Log", [(6,)], mg.log, fwd=Tol(LIBM), bwd=grad_tol(1, lambda c: 1 / np.abs(c.x[0])))      # g / x
sample("Log1p", [(6,)], mg.log1p, fwd=Tol(LIBM), bwd=grad_tol(2, lambda c: 1 / np.abs(1 + c.x[0])))  # g / (1 + x)
sample("Sin", [(6,)], mg.sin, fwd=Tol(LIBM), bwd=grad_tol(LIBM + 1, lambda c: np.abs(np.cos(c.x[0]))))
sample("Cos", [(6,)], mg.cos, fwd=Tol(LIBM), bwd=grad_tol(LIBM + 1, lambda c: np.abs(np.sin(c.x[0]))))
# sigmoid = 1 / (1 + e) or e / (1 + e), e = exp(-|x|); its derivative y (1 - y): terms y, y^2
_dsig = lambda v: _sig(v) + _sig(v) ** 2  # noqa: E731
_dtanh = lambda v: 1 + np.tanh(v) ** 2     # noqa: E731  (1 - y^2: terms 1, y^2)
sample("Sigmoid", [(6,)], mg.sigmoid, fwd=Tol(LIBM + 3), bwd=grad_tol(LIBM + 6, lambda c: _dsig(c.x[0])))
sample("Tanh", [(6,)], mg.tanh, fwd=Tol(TANH), bwd=grad_tol(TANH + 3, lambda c: _dtanh(c.x[0])))
# gelu = 0.5 x (1 + erf(x / sqrt 2)): 1 + erf cancels for x << 0, so the magnitude is
# 0.5 |x| (1 + |erf|), not |gelu| (the float32 kernel is within one ulp of that: test_ops_activation).
# gelu' = Phi + x phi;  gelu'' = phi (2 - x^2)
_gelu_mag = lambda v: 0.5 * np.abs(v) * (1 + np.abs(_erf(v / math.sqrt(2))))  # noqa: E731
# phi = exp(-x^2 / 2) / sqrt(2 pi) of a rounded x^2 carries a relative error x^2 / 2 U


def _dgelu(v, k):
    """|terms| of gelu' = Phi + x phi, each times its relative error in U (k for Phi =
    0.5 (1 + erf): its 1 + erf cancels for x << 0, so the magnitude is 0.5 (1 + |erf|))."""
    return 0.5 * (1 + np.abs(_erf(v / math.sqrt(2)))) * k + np.abs(v) * _phi(v) * (k + v * v)


def _d2gelu(v, k):
    return _phi(v) * (2 + v * v) * (k + v * v)



_K1, _K2 = 2 * LIBM + 4, 2 * LIBM + 6
sample("GELU", [(6,)], mg.gelu, fwd=Tol(LIBM + 4, mag=lambda c: _gelu_mag(c.x[0])),
       bwd=grad_tol(1, lambda c: _dgelu(c.x[0], _K1), sub=lambda c: _K1 * (1 + np.abs(c.g))))
# gelu' as an op of its own (GELU's backward in ops: erf is a kernel): the kernel gelu_backward
# with g = 1, and its derivative gelu'' = phi (2 - x^2) in ops (2 phi - (x phi) x)
sample("GELUDerivative", [(6,)], lambda x: GELUDerivative.apply(x, approximate="none"),
       fwd=Tol(1, mag=lambda c: _dgelu(c.x[0], _K1), sub=lambda c: 2 * _K1),
       bwd=grad_tol(1, lambda c: _d2gelu(c.x[0], _K2),
                    sub=lambda c: _K2 * (1 + 2 * np.abs(c.g) * (2 + c.x[0] ** 2))))


def _gelu_tanh_terms(v):
    """(t, |u|, |u'|) of the tanh approximation, u = sqrt(2/pi) (x + 0.044715 x^3)."""
    with np.errstate(all="ignore"):
        u = math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)
        du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * v * v)
        return np.tanh(u), np.abs(u), np.abs(du)


def _gelu_tanh_mag(v):
    # 0.5 x (1 + t): terms 0.5 |x| (1 + |t|); t = tanh(u) moves by (1 - t^2) |du|, du = 4 U |u|
    t, u, _ = _gelu_tanh_terms(v)
    with np.errstate(all="ignore"):
        return 0.5 * np.abs(v) * (1 + np.abs(t) + 4 * (1 - t * t) * np.nan_to_num(u))


def _dgelu_tanh(v):
    # 0.5 (1 + t) + 0.5 x (1 - t^2) u', and t's error (1 - t^2) 4 U |u| moving both terms
    t, u, du = _gelu_tanh_terms(v)
    with np.errstate(all="ignore"):
        return (0.5 * (1 + np.abs(t)) + 0.5 * np.abs(v) * (1 - t * t) * np.nan_to_num(du)
                + (1 - t * t) * np.nan_to_num(u) * 4 * (1 + np.abs(v * t) * np.nan_to_num(du)))


sample("GELU", [(6,)], lambda x: mg.gelu(x, approximate="tanh"),
       fwd=Tol(LIBM + 6, mag=lambda c: _gelu_tanh_mag(c.x[0])),
       bwd=grad_tol(2 * LIBM + 8, lambda c: _dgelu_tanh(c.x[0])))


def _d2gelu_tanh(v):
    """gelu'' = A B with A = 1 - t^2 and B = u' + 0.5 x (u'' - 2 t u'^2), in units of U, for x
    clipped to [-10, 10] as the op does: A from t carries the absolute error 2 (LIBM + 1) +
    8 A |u| (t's own and u's rounding, times 2|t|) and multiplies |B|'s terms; B's terms carry
    ~12 roundings, and t's error moves its 2 t u'^2 term."""
    x = np.clip(v, -10.0, 10.0)
    t, u, du = _gelu_tanh_terms(x)
    a = 1 - t * t
    terms = du + 0.5 * np.abs(x) * (6 * 0.044715 * math.sqrt(2 / math.pi) * np.abs(x) + 2 * du * du)
    return terms * (2 * LIBM + 2 + 8 * a * u) + a * (12 * terms + np.abs(x) * du * du * (LIBM + 4 * a * u))


# the tanh form's gelu' as an op (the kernel with g = 1; the same bound as GELU's backward at
# g = 1) and its derivative gelu'' in ops, which once overflowed to NaN for |x| > 7e12
sample("GELUDerivative", [(6,)], lambda x: GELUDerivative.apply(x, approximate="tanh"),
       fwd=Tol(2 * LIBM + 8, mag=lambda c: _dgelu_tanh(c.x[0]), sub=lambda c: 1 + np.maximum(1, _dgelu_tanh(c.x[0]))),
       bwd=grad_tol(1, lambda c: _d2gelu_tanh(c.x[0])))
# silu = x s: its derivative s (1 + x (1 - s)) has terms s, s |x|, s^2 |x|.  s rounds to a
# subnormal for x < -87 (error TINY / 2), and x multiplies that: sub = 1 + |x| (|g| ...)
_dsilu = lambda v: _sig(v) * (1 + np.abs(v) + np.abs(v) * _sig(v))  # noqa: E731
sample("SiLU", [(6,)], mg.silu, fwd=Tol(LIBM + 4, sub=lambda c: 1 + np.abs(c.x[0])),
       bwd=grad_tol(LIBM + 6, lambda c: _dsilu(c.x[0]), sub=lambda c: (1 + np.abs(c.g)) * (1 + np.abs(c.x[0]))))
# powers: libm pow.  (x^(y-1) with y - 1 rounded (relative U) is off by |ln x| |y - 1| U.)  The derivative p x^(p-1) is formed before g multiplies it (PyTorch's
# order); where x^(p-1) alone is beyond float32's range there is no bound.  A subnormal power
# (error TINY / 2) is then scaled by p (or y, or ln a) and g: sub = (1 + |g|) (1 + |p|).  For x ** y,
# y - 1 is rounded (y = 2^24 + 2 gives 2^24: for x < 0 the sign flips with the parity), so
# d/dx carries |ln x| |y| U, and for x < 0 has no bound where float32's y - 1 is rounded
# (its parity or integrality decides the sign, or NaN); d/dy = g z ln x.
for _p in (2, 3, 0.5, -1.5):
    sample("PowScalar", [(6,)], lambda x, p=_p: x ** p, fwd=Tol(LIBM),
           bwd=grad_tol(LIBM + 2, lambda c, p=_p: np.abs(p) * np.abs(c.x[0]) ** (p - 1),
                        sub=lambda c, p=_p: (1 + np.abs(c.g)) * (1 + abs(p))))
for _a in (2.0, 0.5, 0.0):
    sample("RPowScalar", [(6,)], lambda x, a=_a: a ** x, fwd=Tol(LIBM),
           bwd=grad_tol(2 * LIBM + 2, lambda c, a=_a: np.abs(c.out) * (np.abs(np.log(a)) if a else 1.0),
                        sub=lambda c, a=_a: (1 + np.abs(c.g)) * (1 + (abs(math.log(a)) if a else 1.0))))


def _pow_dx(c):
    x, y = c.x
    with np.errstate(all="ignore"):
        local = np.abs(y) * np.abs(x) ** (y - 1) * (1 + np.abs(np.log(np.abs(x))) * (1 + np.abs(y)))
        rounded = (y.astype(np.float32) - np.float32(1)).astype(np.float64) != y - 1
        return np.where((x < 0) & rounded, np.inf, local)  # the sign (or NaN) follows y - 1's parity


sample("Pow", [(6,), (6,)], lambda x, y: x ** y, fwd=Tol(LIBM),
       bwd=[grad_tol(LIBM + 2, _pow_dx, between=lambda c: np.abs(c.x[0]) ** (c.x[1] - 1),
                     sub=lambda c: (1 + np.abs(c.g)) * (1 + np.abs(c.x[1]))),
            grad_tol(2 * LIBM + 2, lambda c: np.abs(c.out) * (1 + np.abs(np.log(np.abs(c.x[0])))),
                     sub=lambda c: (1 + np.abs(c.g)) * (1 + np.abs(np.log(np.abs(c.x[0])))))])


# -- the softmax family, rows of n = 4 along axis 1 ------------------------------------------
# With d = x - m (m the row max; exact in float32 where it matters), s = sum exp(d),
# p = exp(d) / s, L = log s:
#   p carries the relative error (|d| + n + LIBM + 2) U (d's rounding moves exp(d) by |d| U);
#   log p = d - L carries the absolute error (|d| + (LIBM + 1) |L| + n + 2) U.
# A softmax computed from exp(x - lse) instead carries |lse| U: 1e-3 for logits near 1e4,
# which these bounds reject (tests/test_numerics.py holds that defect's own regression).

def _rows(c, v=None):
    v = c.x[-1] if v is None else v
    with np.errstate(all="ignore"):
        m = v.max(axis=1, keepdims=True)
        d = v - m
        e = np.exp(d)
        s = e.sum(axis=1, keepdims=True)
        return d, e / s, np.log(s), m


def _p_err(d, n=4):
    return np.abs(d) + n + LIBM + 2


def _softmax_fwd(c):
    d, p, _, _ = _rows(c)
    return p * _p_err(d)


def _logsoftmax_err(c):
    # d = x - m and z = d - L each round at about |d|; L = log s carries log's and the sum's error
    d, _, L, _ = _rows(c)
    return 2 * np.abs(d) + (LIBM + 1) * np.abs(L) + 6


def _softmax_bwd(g, c):
    # y (g - S), S = sum g y: terms y |g| and y sum |g| y, each y with its own relative error
    d, p, _, _ = _rows(c)
    r = _p_err(d) + 6
    return p * ((np.abs(g) + _row_sum(g * p)) * r + _row_sum(g * p * r))


def _logsoftmax_bwd(g, c):
    # g - p sum g: p = exp(log p) carries log p's absolute error
    _, p, _, _ = _rows(c)
    return np.abs(g) + p * _row_sum(g) * (_logsoftmax_err(c) + LIBM + 4)


ROWS = [(3, 4)]


def _row_sum(v):
    return _finite_abs(v).sum(axis=1, keepdims=True)


# (a product g y with y = p rounded to a subnormal errs by |g| TINY / 2, and those add up in
# the row sums: sub = 1 + |g| + sum |g|; where sum |g| exceeds float32's range, so may S,
# and so may g - S where |g| + |S| does.  An infinite g times a p that float32 flushes to 0
# gives NaN where float64 has inf: no bound in such a row either.)
_g_sub = lambda g: 6 * (1 + np.abs(g) + _row_sum(g))  # noqa: E731  (n + 2 = 6 roundings)


def _g_inner(g, c, weighted=True):
    """The largest magnitude of g - S (or of sum g) in each row (a row sum spreads an
    overflow over the row), and inf where an infinite g meets a p that underflows in float32."""
    _, p, _, _ = _rows(c)
    with np.errstate(all="ignore"):
        inner = np.abs(np.nan_to_num(g, posinf=0, neginf=0)).max(1, keepdims=True) + _row_sum(g * p if weighted else g)
        flushed = (np.isinf(g).any(1, keepdims=True) & ((p > 0) & (p < TINY)).any(1, keepdims=True))
        return np.where(flushed, np.inf, inner)
sample("Softmax", ROWS, lambda x: F.softmax(x, 1), fwd=Tol(1, mag=_softmax_fwd),
       bwd=Tol(1, mag=lambda c: _softmax_bwd(c.g, c), sub=lambda c: _g_sub(c.g), inner=lambda c: _g_inner(c.g, c)))
sample("LogSoftmax", ROWS, lambda x: F.log_softmax(x, 1), fwd=Tol(1, mag=_logsoftmax_err),
       bwd=Tol(1, mag=lambda c: _logsoftmax_bwd(c.g, c), sub=lambda c: _g_sub(c.g),
               inner=lambda c: _g_inner(c.g, c, weighted=False)))
sample("LogSumExp", ROWS, lambda x: mg.logsumexp(x, 1),
       fwd=Tol(1, mag=lambda c: np.abs(_rows(c)[3][:, 0]) + (LIBM + 1) * np.abs(_rows(c)[2][:, 0]) + 6),
       bwd=Tol(1, mag=lambda c: np.abs(c.g[:, None]) * _softmax_fwd(c), sub=lambda c: 1 + np.abs(c.g[:, None])))


for _name, _args in [("Softmax", dict(fwd=Tol(1, mag=_softmax_fwd), bwd=Tol(1, mag=lambda c: _softmax_bwd(c.g, c),
                                                                            sub=lambda c: _g_sub(c.g),
                                                                            inner=lambda c: _g_inner(c.g, c)))),
                     ("LogSoftmax", dict(fwd=Tol(1, mag=_logsoftmax_err),
                                         bwd=Tol(1, mag=lambda c: _logsoftmax_bwd(c.g, c), sub=lambda c: _g_sub(c.g),
                                                 inner=lambda c: _g_inner(c.g, c, weighted=False))))]:
    # rows of magnitude 1e4 .. 3e38 (a backward through exp(x - lse) fails these)
    sample(_name, ROWS, SAMPLES[_name][0].fn, elements=BIG_ROWS, **_args)
sample("LogSumExp", ROWS, lambda x: mg.logsumexp(x, 1), elements=BIG_ROWS,
       fwd=SAMPLES["LogSumExp"][0].fwd, bwd=SAMPLES["LogSumExp"][0].bwd)


def _ce_fwd(c):
    d, _, L, _ = _rows(c, c.x[0])
    # L - d_t (+ the smoothing sum): d_t and the result each round at about |d_t|
    return 2 * np.abs(d[np.arange(4), LABELS]) + 2 * np.abs(d).mean(1) + (LIBM + 2) * np.abs(L[:, 0]) + 8


def _ce_bwd(c):
    # g (p - onehot): p's relative error, and the rounding of p - 1
    d, p, _, _ = _rows(c, c.x[0])
    onehot = np.eye(5)[LABELS]
    return np.abs(c.g[:, None]) * (p * (_p_err(d, 5) + 6) + 4 * (onehot + 0.1))  # (0.1: label smoothing)


sample("CrossEntropy", [(4, 5)], lambda x: F.cross_entropy(x, mg.tensor(LABELS), reduction="none"),
       fwd=Tol(1, mag=_ce_fwd), bwd=Tol(1, mag=_ce_bwd, sub=lambda c: 1 + np.abs(c.g[:, None])))
sample("CrossEntropy", [(4, 5)], lambda x: F.cross_entropy(x, mg.tensor(LABELS), reduction="none",
                                                            label_smoothing=0.1),
       fwd=Tol(1, mag=_ce_fwd, inner=lambda c: np.abs(_rows(c, c.x[0])[0]).sum(1)),  # sum (x - m) beyond range
       bwd=Tol(1, mag=_ce_bwd, sub=lambda c: 1 + np.abs(c.g[:, None])))
sample("CrossEntropy", [(4, 5)], SAMPLES["CrossEntropy"][0].fn, elements=BIG_ROWS,  # logits 1e4 .. 3e38
       fwd=Tol(1, mag=_ce_fwd, inner=lambda c: np.abs(_rows(c, c.x[0])[0]).sum(1)),
       bwd=Tol(1, mag=_ce_bwd, sub=lambda c: 1 + np.abs(c.g[:, None])))


# -- losses on probabilities and logits --------------------------------------------------------

def _bce_logs(p):
    with np.errstate(all="ignore"):
        return np.maximum(np.log(p), -100), np.maximum(np.log1p(-p), -100)


def _bce_fwd(c):
    # -(y log p + (1 - y) log(1 - p)): terms |y| |log p| and |1 - y| |log(1 - p)|
    p, y = c.x
    lp, l1p = _bce_logs(p)
    return (np.abs(y) + np.abs(1 - y)) * (np.abs(lp) + np.abs(l1p) + 2)


def _bce_dp(c):
    # d/dp = (p - y) / max(p (1 - p), 1e-12)
    p, y = c.x
    return (np.abs(p) + np.abs(y)) / np.maximum(p * (1 - p), 1e-12)


def _bce_dy(c):
    # d/dy = log(1 - p) - log p (clamped)
    lp, l1p = _bce_logs(c.x[0])
    return np.abs(lp) + np.abs(l1p)


sample("BinaryCrossEntropy", [(6,), (6,)], lambda p, y: F.binary_cross_entropy(p, y, reduction="none"),
       fwd=Tol(LIBM + 3, mag=_bce_fwd), bwd=[grad_tol(6, _bce_dp), grad_tol(LIBM + 2, _bce_dy)],
       elements=[UNIT, ELEMENT])


def _softplus(v):
    with np.errstate(all="ignore"):
        return np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))


def _bcel_fwd(c, pw=1.0):
    # (1 - y) softplus(x) + pw y softplus(-x), softplus(-x) = softplus(x) - x
    x, y = c.x
    sp = _softplus(x)
    return (np.abs(1 - y) + np.abs(pw * y)) * (sp + np.abs(x)) + np.abs(x * y)


def _bcel_dx(c, pw=1.0):
    # d/dx = (1 - y) s - pw y (1 - s)  (pw = 1: s - y)
    x, y = c.x
    s = _sig(x)
    return np.abs(1 - y) * s + np.abs(pw * y) * (1 - s) + np.abs(y)


def _bcel_dy(c, pw=1.0):
    # d/dy = pw softplus(-x) - softplus(x) = (pw - 1) softplus(x) - pw x
    x = c.x[0]
    return (1 + abs(pw)) * _softplus(x) + abs(pw) * np.abs(x)


sample("BCEWithLogits", [(6,), (6,)], lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none"),
       fwd=Tol(2 * LIBM + 4, mag=_bcel_fwd), bwd=[grad_tol(LIBM + 6, _bcel_dx), grad_tol(3, _bcel_dy)])
sample("BCEWithLogits", [(6,), (6,)],
       lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=mg.full((6,), 3.0, dtype=x.dtype)),
       fwd=Tol(2 * LIBM + 6, mag=lambda c: _bcel_fwd(c, 3.0)),
       bwd=[grad_tol(LIBM + 8, lambda c: _bcel_dx(c, 3.0)), grad_tol(2 * LIBM + 6, lambda c: _bcel_dy(c, 3.0))])


# -- normalization: mean and variance of each row ---------------------------------------------
# xhat = (x - mu) / sqrt(var + eps): mu errs by n U mean|x|, var (two passes) by (n + 3) U
# (var + 2 mean|x - mu| n mean|x|); xhat then by U (|x - mu| + n mean|x|) / sigma plus
# |xhat| (n + 4) U and half var's relative error.  Where the sum of (x - mu)^2 exceeds
# float32's range the variance overflows in any float32 evaluation (PyTorch's included: its
# batch_norm of [1e20, -1e20, 0, 0] is 0): no bound there.

def _moments(x, axes, eps=1e-5):
    mu = x.mean(axis=axes, keepdims=True)
    dev = x - mu
    n = np.prod([x.shape[a] for a in axes])
    var = (dev * dev).mean(axis=axes, keepdims=True)
    mabs = np.abs(x).mean(axis=axes, keepdims=True)
    sigma = np.sqrt(var + eps)
    return n, dev, var, sigma, mabs


def _xhat_err(x, axes):
    """(|xhat| and its error bound / U, and where float32's variance overflows)."""
    with np.errstate(all="ignore"):
        n, dev, var, sigma, mabs = _moments(x, axes)
        xhat = dev / sigma
        err = (np.abs(dev) + n * mabs) / sigma + np.abs(xhat) * (2 * n + 8) \
            + np.abs(xhat) * (n + 3) * (var + 2 * np.abs(dev).mean(axis=axes, keepdims=True) * n * mabs) / (var + 1e-5)
        overflow = (dev * dev).sum(axis=axes, keepdims=True) * 2 > F32_MAX
        return np.abs(xhat), err, np.broadcast_to(overflow, x.shape)


def _norm_tol(axes, waxis):
    """y = w xhat + b: w's magnitude times xhat's error, plus the two roundings."""

    def fwd(c):
        x, w, b = c.x
        shape = [1] * x.ndim
        shape[waxis] = -1
        xhat, err, overflow = _xhat_err(x, axes)
        w, b = np.abs(w).reshape(shape), np.abs(b).reshape(shape)
        # (a kernel that folds w / sigma into one factor overflows where it exceeds float32's
        # range, and 0 * inf is NaN: PyTorch's CPU batch_norm gives NaN there too)
        folded = w / _moments(x, axes)[3] > F32_MAX
        return np.where(overflow | folded, np.inf, w * err + 2 * (w * xhat + b))

    def sub(c):  # a subnormal mean or deviation (error TINY / 2) is scaled by n |w| / sigma;
        # a kernel that folds w / sigma into one factor (as PyTorch's does) rounds it, subnormal
        # for a subnormal w, and multiplies the deviation x - mu by it
        x, w, _ = c.x
        shape = [1] * x.ndim
        shape[waxis] = -1
        with np.errstate(all="ignore"):
            n, dev, _, sigma, _ = _moments(x, axes)
            return 1 + 2 * n * np.abs(w).reshape(shape) / sigma + np.abs(dev)

    return Tol(1, mag=fwd, sub=sub)


def _norm_bwd_tol(axes, waxis):
    """The backward, with gw = g w: dx = (gw - mean gw - xhat mean(gw xhat)) / sigma,
    dw = sum g xhat, db = sum g (sums over the other axes): magnitudes from |gw|, |xhat| and
    1/sigma, times (3 n + 20) roundings plus xhat's error; where sum |gw| exceeds float32's
    range, so may the means."""

    def bound(c):
        x, w, _ = c.x
        shape = [1] * x.ndim
        shape[waxis] = -1
        other = tuple(a for a in range(x.ndim) if a != waxis)
        with np.errstate(all="ignore"):
            n, _, _, sigma, _ = _moments(x, axes)
            xhat, err, overflow = _xhat_err(x, axes)
            g = np.abs(c.g)
            gw = g * np.abs(w).reshape(shape)
            sums = gw.sum(axis=axes, keepdims=True)
            dx = (gw + sums / n + xhat * (gw * (xhat + err * U)).mean(axis=axes, keepdims=True)) \
                / sigma * (3 * n + 20 + err)
            dx = np.where(overflow | (sums > F32_MAX) | (g.sum(axis=axes, keepdims=True) > F32_MAX)
                          | ((g * xhat).sum(axis=axes, keepdims=True) > F32_MAX)
                          | ((gw * xhat).sum(axis=axes, keepdims=True) > F32_MAX)  # mean(gw xhat)'s sum
                          | (np.abs(w).reshape(shape) / sigma > F32_MAX), np.inf, dx)
            # (plus |g| times xhat's absolute error err U, which does not shrink with xhat: x - mu
            # cancels where x is near the mean)
            dw = (g * (xhat + err * U)).sum(axis=other) * (n + 4 + err.max(axis=other)) + (g * err).sum(axis=other)
            dw = np.where(overflow.any(axis=other) | (g.sum(axis=other) > F32_MAX), np.inf, dw)
            db = g.sum(axis=other) * (n + 2)
            return [dx, dw, db][c.i]

    def sub(c):  # subnormal means, deviations or w / sigma (error TINY / 2 each), scaled by
        # what multiplies them: sum |g| n (2 + |xhat|) (1 + (1 + |w|) / sigma); and the
        # subnormal products and means on g's side (g w, g xhat, their means: up to n of them
        # in a sum, each TINY / 2, or FLT_MIN where flushed), scaled by the same factors but g;
        # and a kernel's folded per-channel coefficients (w / sigma, and those of dx = scale
        # (g - c0 - (x - mu) c1)), rounded subnormal where small, times g or x - mu
        x, w, _ = c.x
        with np.errstate(all="ignore"):
            n, _, _, sigma, _ = _moments(x, axes)
            xhat, _, _ = _xhat_err(x, axes)
            g = np.abs(np.nan_to_num(c.g, posinf=0, neginf=0)).sum()
            wmax = np.nan_to_num(np.abs(w), posinf=0).max()
            xmax = np.nan_to_num(xhat, nan=0, posinf=0).max()
            dmax = np.abs(np.nan_to_num(x - x.mean(axis=axes, keepdims=True), nan=0, posinf=0, neginf=0)).max()
            return (1 + g + dmax) * n * (2 + xmax) * (1 + (1 + wmax) / np.nan_to_num(sigma, nan=1).min())

    return Tol(1, mag=bound, sub=sub)


sample("BatchNorm", [(4, 3), (3,), (3,)], lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
       fwd=_norm_tol((0,), 1), bwd=_norm_bwd_tol((0,), 1))
sample("LayerNorm", [(3, 4), (4,), (4,)], lambda x, w, b: F.layer_norm(x, (4,), w, b),
       fwd=_norm_tol((1,), 1), bwd=_norm_bwd_tol((1,), 1))


def _var_fwd(c):
    x = c.x[0]
    with np.errstate(all="ignore"):
        n, dev, var, _, mabs = _moments(x, (1,), eps=0)
        ss = (dev * dev).sum(1)
        mag = (ss + 2 * np.abs(dev).sum(1) * 4 * mabs[:, 0]) / 3
        return np.where((ss * 2 > F32_MAX) | (4 * mabs[:, 0] > F32_MAX), np.inf, mag)


def _var_bwd(c):
    x = c.x[0]
    with np.errstate(all="ignore"):
        n, dev, _, _, mabs = _moments(x, (1,), eps=0)
        return np.where(n * mabs > F32_MAX, np.inf, np.abs(c.g[:, None]) * 2 * (np.abs(dev) + n * mabs) / 3)


sample("Var", ROWS, lambda x: mg.var(x, 1), fwd=Tol(8, mag=_var_fwd), bwd=Tol(8, mag=_var_bwd))


# -- p-norms of rows of 4: z = S^(1/p), S = sum |x|^p ------------------------------------------
# Each |x|^p rounds (x * x for p = 2: U; pow: LIBM U), or errs by up to TINY / 2 per rounding
# where it is subnormal (squares of x below 1e-19 are, or become 0); the sum adds (n - 1) U S:
#   |S32 - S| <= eS = (n - 1 + r) U S + n r TINY / 2          (r = 1 for p = 2, LIBM for pow)
# so eS / S is not small where S is tiny.  For q = 1/p <= 1, by the mean value theorem and the
# concavity of t^q:  |S32^q - S^q| <= min(q (S - eS)^(q-1) eS, eS^q); then sqrt rounds once,
# pow is LIBM U and also sees 1/p rounded to float32 (S^(q (1 + U)) moves z by |ln z| U).
# Where S exceeds float32's range it overflows (any float32 evaluation's, PyTorch's too, as
# the two-pass scaled norms of LAPACK do not): no bound.  Infinities and NaNs pass to z
# exactly: S counts the finite elements only, so that their propagation stays checked.

def _norm_parts(c, p):
    x = _finite_abs(c.x[0])
    n, q, r = x.shape[1], 1 / p, (1 if p == 2 else LIBM)
    with np.errstate(all="ignore"):
        S = (x ** p).sum(1, keepdims=True)
        z = S ** q
        eS = (n - 1 + r) * U * S + n * r * c.tiny / 2
        dz = np.minimum(q * np.maximum(S - eS, 0) ** (q - 1) * eS, eS ** q)
        dz = dz + (1 if p == 2 else LIBM + np.abs(np.log(z))) * U * (z + dz) + c.tiny
        return x, n, S, z, eS, np.where(S > F32_MAX, np.inf, dz)


def _norm_fwd(p):
    return Bound(lambda c: _norm_parts(c, p)[-1][:, 0])


def _norm_bwd(p):
    """dL/dx = g sign(x) A / B with A = |x|^(p-1) and B = z^(p-1) (each a pow: LIBM U, and
    LIBM TINY / 2 where subnormal; for p = 2, A = |x| is exact), B from float32's z, within dz
    of z.  Where B's lower end is positive the quotient lies in [A_lo / B_hi, A_hi / B_lo].
    It is bounded anyway: float32's local factor A / B is 0 where its z is 0 (masked), and
    otherwise its S32 >= fl(|x|^p) (1 - (n + LIBM) U) >= (|x|^p - r TINY / 2) (1 - ...) and
    S32 >= TINY, so |x|^p / S32 <= rho = (1 + r / 2) / (1 - (n + LIBM) U), and A / B <=
    rho^((p-1)/p) (1 + (3 LIBM + 2) U) + LIBM TINY^(1/p) (a subnormal A over B >= TINY^((p-1)/p));
    the exact local factor is (|x|^p / S)^((p-1)/p) <= 1.  Then / and * g round (2 U, or TINY / 2
    in the subnormal range: the quotient's is multiplied by g).
    No bound where S or B = z^(p-1) exceeds float32's range (float32 gives 0 there)."""

    def bound(c):
        x, n, S, z, _, dz = _norm_parts(c, p)
        a, r = (0, 1) if p == 2 else (LIBM, LIBM)
        with np.errstate(all="ignore"):
            A = x ** (p - 1)
            local = np.where(z > 0, A / z ** (p - 1), 0.0)
            a_lo, a_hi = A * (1 - a * U) - a * c.tiny / 2, A * (1 + a * U) + a * c.tiny / 2
            b_lo = np.maximum(z - dz, 0) ** (p - 1) * (1 - LIBM * U) - LIBM * c.tiny / 2
            b_hi = (z + dz) ** (p - 1) * (1 + LIBM * U) + LIBM * c.tiny / 2
            interval = np.where(b_lo > 0, np.maximum(a_hi / b_lo - local, local - np.maximum(a_lo, 0) / b_hi),
                                np.inf)
            rho = (1 + r / 2) / (1 - (n + LIBM) * U)
            crude = local + rho ** ((p - 1) / p) * (1 + (3 * LIBM + 2) * U) + LIBM * c.tiny ** (1 / p)
            err = np.minimum(interval, crude)
            g = np.abs(c.g)[:, None]
            tol = g * (err + 2 * U * (local + err) + c.tiny) + c.tiny  # (a subnormal quotient, times g)
            return np.where((S > F32_MAX) | ((z + dz) ** (p - 1) > F32_MAX), np.inf, tol)
    return Bound(bound)


for _p in (2, 3):
    sample("Norm", ROWS, lambda x, p=_p: mg.norm(x, p, dim=1), fwd=_norm_fwd(_p), bwd=_norm_bwd(_p))


# -- attention: softmax(q k^T scale) v, batch 1, 3 queries and keys of width 4 ----------------
# S = scale q k^T errs by (D + 2) U scale |q| |k|^T (a sum of D products); P = softmax(S) then
# by that absolute error in its exponent plus the softmax's own (n + LIBM + 2) U; O = P v by
# (n + 2) U P |v|.  Where |q| |k|^T exceeds float32's range, S overflows before it is scaled:
# no bound.  (Scaling q and k by sqrt(scale) first, as PyTorch's reference does, would move
# that limit by the factor 1 / scale: left to the attention kernels' owner.)

def _attention(c):
    q, k, v = (a[0] for a in c.x)
    scale = 1 / math.sqrt(q.shape[-1])
    with np.errstate(all="ignore"):
        s = q @ k.T * scale
        big = np.abs(q) @ np.abs(k).T * max(scale, 1)  # (q k^T is formed before the scale)
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        # the exponent s - m errs by E (absolute), so p = exp(s - m) / l by up to
        # exp(2 E) - 1 relative (numerator and denominator), plus its own roundings.  Where that
        # reaches 1, p may be any weight (two scores 4e27 apart may round equal near 1e35):
        # no bound, in any float32 evaluation
        exponent = U * ((q.shape[-1] + 2) * big.max(1, keepdims=True) + 2)
        rel = np.expm1(2 * exponent)
        r = rel / U + 3 * 2 + LIBM + 8
        over = (big > F32_MAX).any(1, keepdims=True) | ~(rel < 0.5)
        return s, p, np.abs(v), r, over, scale


def _attention_fwd(c):
    _, p, av, r, over, _ = _attention(c)
    tk = c.x[1].shape[1]  # (the tiled kernel sums exp(s - m) v unnormalised: up to Tk times O)
    return np.where(over | ((p @ av) * tk > F32_MAX).any(1, keepdims=True), np.inf, (p @ av) * r)[None]


def _attention_bwd(c):
    _, p, av, r, over, scale = _attention(c)
    q, k, _ = (np.abs(a[0]) for a in c.x)
    g = np.abs(c.g[0])
    with np.errstate(all="ignore"):
        dp = g @ av.T
        over = over | (dp > F32_MAX).any(1, keepdims=True)  # dP = g v^T beyond range
        # O = P v, accumulated unnormalised by the tiled kernel (sum_j exp(s_j - m) v_j, then / l,
        # l <= Tk), beyond range (and so D = sum g O)
        over = over | ((p @ av) * k.shape[0] > F32_MAX).any(1, keepdims=True)
        ds = p * (dp + (p * dp).sum(1, keepdims=True)) * (r + 8)
        dq = np.where(over, np.inf, scale * ds @ k)
        dk = np.where(over.any(), np.inf, scale * ds.T @ q)
        dv = np.where(over.any(), np.inf, (p * r).T @ g)
        return [dq, dk, dv][c.i][None]


def _finite_sum(a):
    return 1 + _finite_abs(a).sum()


def _attention_sub(c):
    """A weight p that lands in the subnormal range errs by TINY / 2 absolute, and multiplies
    v: up to sum_j |v_j| per output column (infinite v left out: those columns are inf/NaN)."""
    v = _finite_abs(c.x[2][0])
    return 1 + v.sum(0)[None, None, :]


sample("ScaledDotProductAttention", [(1, 3, 4)] * 3, lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
       fwd=Tol(1, mag=_attention_fwd, sub=_attention_sub),
       bwd=Tol(1, mag=_attention_bwd, sub=lambda c: _finite_sum(c.g) * _finite_sum(c.x[2]) * (
           _finite_sum(c.x[0]) + _finite_sum(c.x[1]))))  # (a subnormal p times g, v and q or k)


# -- recurrent cells: a running error analysis -----------------------------------------------
# The cells chain a dozen operations, so their bounds are not written out by hand: ``Run``
# follows float32's evaluation of the documented formulas step by step, carrying the exact
# value v (float64) and a bound e on how far float32's value can be from it, each step adding
# its own rounding to the errors its operands bring (Higham's running error analysis):
#   * a sum of n products (a matrix product with the biases): (n + 2) U sum |terms|, plus each
#     operand's error times the other factor, plus a TINY per product (a subnormal product);
#   * a product of k factors: (k - 1) U |v|, plus prod(|v_i| + e_i) - prod |v_i|, plus a TINY
#     per rounding times the factors above 1 that may follow it (any order: the tables differ);
#   * a sum of k terms: (k - 1) U sum |terms| plus their errors (sums landing in the subnormal
#     range are exact);
#   * a libm-grade function f (sigmoid, tanh) of a value within e of v: k U |f| (k = LIBM + 3
#     for sigmoid's exp, add and divide; TANH for tanh), or k TINY / 2 in the subnormal range,
#     plus e max |f'| over [v - e, v + e];
# No bound (e = inf) where an intermediate may leave float32's range: a sum's terms or a
# product's factors above 1 (a partial product) beyond it.  A value that is inf or NaN in
# float64 is the same in float32 when it came out of operands float32 holds exactly (e = 0);
# otherwise there is no bound either.

class Run:
    """A value of a float32 evaluation: v exact (float64 array), float32's within e of it."""

    def __init__(self, v, e=0.0, tiny=TINY):
        self.v = np.asarray(v, dtype=np.float64)
        self.e = np.broadcast_to(np.asarray(e, dtype=np.float64), self.v.shape)
        self.tiny = tiny

    def __getitem__(self, index):
        return Run(self.v[index], self.e[index], self.tiny)

    @property
    def T(self):
        return Run(self.v.T, self.e.T, self.tiny)

    def __neg__(self):
        return Run(-self.v, self.e, self.tiny)

    def __add__(self, other):
        return _add(self, other)

    def __sub__(self, other):
        return _add(self, -other)

    def __rsub__(self, other):  # 1 - x
        return _add(Run(other, tiny=self.tiny), -self)

    def __mul__(self, other):
        return _mul(self, other)


def _settled(v, e, exact, big, tiny):
    """The step's Run: e, inf where it is NaN or an intermediate is ``big``; a non-finite v is
    exact where its operands were (``exact``), else unbounded."""
    with np.errstate(all="ignore"):
        e = np.where(np.isnan(e) | big, np.inf, e)
        return Run(v, np.where(np.isfinite(v), e, np.where(exact, 0.0, np.inf)), tiny)


def _cross(factors):
    """prod(|v_i| + e_i) - prod |v_i| (how far float32's operands can move the product), 0
    where they are all exact."""
    with np.errstate(all="ignore"):
        hi = functools.reduce(np.multiply, [np.abs(f.v) + f.e for f in factors])
        lo = functools.reduce(np.multiply, [np.abs(f.v) for f in factors])
        exact = functools.reduce(np.logical_and, [f.e == 0 for f in factors])
        return np.where(exact, 0.0, hi - lo), exact


def _mul(*factors):
    with np.errstate(all="ignore"):
        v = functools.reduce(np.multiply, [f.v for f in factors])
        cross, exact = _cross(factors)
        above = functools.reduce(np.multiply, [np.maximum(np.abs(f.v) + f.e, 1) for f in factors])
        k = len(factors) - 1
        e = k * U * (np.abs(v) + cross) + cross + k * factors[0].tiny * above
        return _settled(v, e, exact, above > F32_MAX, factors[0].tiny)


def _add(*terms):
    with np.errstate(all="ignore"):
        v = functools.reduce(np.add, [t.v for t in terms])
        mag = functools.reduce(np.add, [np.nan_to_num(np.abs(t.v), posinf=0.0) + t.e for t in terms])
        exact = functools.reduce(np.logical_and, [t.e == 0 for t in terms])
        k = len(terms) - 1
        e = k * U * mag + functools.reduce(np.add, [t.e for t in terms])
        return _settled(v, e, exact, mag * (1 + (k + 1) * U) > F32_MAX, terms[0].tiny)


def _dot(a, b):
    """a @ b (2-D): each element a sum of n products."""
    n = a.v.shape[1]
    with np.errstate(all="ignore"):
        terms = _mul(Run(a.v[:, :, None], a.e[:, :, None], a.tiny), Run(b.v[None], b.e[None], a.tiny))
        v = terms.v.sum(1)
        mag = np.nan_to_num(np.abs(terms.v), posinf=0.0).sum(1)
        e = (n + 2) * U * mag + np.where(np.isfinite(terms.v), terms.e, 0).sum(1)
        big = (mag + terms.e.sum(1)) * (1 + (n + 2) * U) > F32_MAX
        exact = (terms.e == 0).all(1)
        return _settled(v, e, exact, big | np.isinf(terms.e).any(1), a.tiny)


def _ones(n, like):
    return Run(np.ones((n, 1)), tiny=like.tiny)


def _nearest_zero(x):
    """The points of [v - e, v + e] nearest 0, where |f'| is largest for sigmoid and tanh."""
    with np.errstate(all="ignore"):
        lo, hi = x.v - x.e, x.v + x.e
        return np.where(lo > 0, lo, np.where(hi < 0, hi, 0.0))


def _libm(x, f, dmax, k):
    with np.errstate(all="ignore"):
        v = f(x.v)
        slope = np.where(x.e == 0, 0.0, x.e * dmax(_nearest_zero(x)))
        e = slope + k * (U * (np.abs(v) + slope) + x.tiny / 2)
        return _settled(v, e, x.e == 0, False, x.tiny)


def _r_sigmoid(x):
    return _libm(x, _sig, lambda t: _sig(t) * (1 - _sig(t)), LIBM + 3)


def _r_tanh(x):
    return _libm(x, np.tanh, lambda t: 1 - np.tanh(t) ** 2, TANH)


def _r_relu(x):
    """max(x, 0), exact; float32's is 0 where x + e <= 0, within e elsewhere (1-Lipschitz)."""
    with np.errstate(all="ignore"):
        v = np.where(np.isnan(x.v) | (x.v > 0), x.v, 0.0)
        return Run(v, np.where(x.v + x.e <= 0, 0.0, x.e), x.tiny)


def _r_relu_backward(g, y):
    """g [y > 0]: float32 may decide otherwise where y is within its error of 0 (error |g|)."""
    with np.errstate(all="ignore"):
        unsure = (y.e > 0) & (y.v <= y.e)
        e = np.where(unsure, np.abs(g.v) + g.e, np.where(y.v > 0, g.e, 0.0))
        return Run(np.where(y.v > 0, g.v, 0.0), e, g.tiny)


def _cat(runs, axis=1):
    return Run(np.concatenate([r.v for r in runs], axis), np.concatenate([r.e for r in runs], axis), runs[0].tiny)


def _products(x, h, w_ih, w_hh, b_ih, b_hh, together):
    """The pre-activations x W_ih^T + b_ih + h W_hh^T + b_hh, summed ``together`` in any order
    (every table's RNN and LSTM), or the two sums gi, gh apart (the GRU's)."""
    b = x.v.shape[0]
    bias = lambda v: Run(v.v[None], v.e[None], v.tiny)  # noqa: E731
    if together:
        return _dot(_cat([x, h, _ones(b, x), _ones(b, x)]), _cat([w_ih.T, w_hh.T, bias(b_ih), bias(b_hh)], 0))
    return (_dot(_cat([x, _ones(b, x)]), _cat([w_ih.T, bias(b_ih)], 0)),
            _dot(_cat([h, _ones(b, x)]), _cat([w_hh.T, bias(b_hh)], 0)))


def _weight_grads(dgi, dgh, x, h, w_ih, w_hh):
    """dx = dgi W_ih, dh = dgh W_hh, dW_ih = dgi^T x, dW_hh = dgh^T h, and the bias gradients
    (the column sums of dgi and dgh)."""
    b = x.v.shape[0]
    colsum = lambda d: _dot(d.T, _ones(b, d))[:, 0]  # noqa: E731
    return [_dot(dgi, w_ih), _dot(dgh, w_hh), _dot(dgi.T, x), _dot(dgh.T, h), colsum(dgi), colsum(dgh)]


def _rnn_gates(relu_cell, ins, g):
    """An Elman step: (h', and given g: dL/d of its two products (the same da), no direct dh)."""
    x, h, w_ih, w_hh, b_ih, b_hh = ins
    a = _products(x, h, w_ih, w_hh, b_ih, b_hh, together=True)
    out = _r_relu(a) if relu_cell else _r_tanh(a)
    if g is None:
        return out, None, None, None
    da = _r_relu_backward(g, out) if relu_cell else g * (1 - out * out)
    return out, da, da, None


def _rnn_step(relu_cell):
    def step(ins, g):
        out, da, _, _ = _rnn_gates(relu_cell, ins, g)
        return out, None if g is None else _weight_grads(da, da, *ins[:4])
    return step


def _lstm_gates(ins, ghc):
    """An LSTM step: (out = [h', c'], and given ghc, the gates' gradient da and dc)."""
    x, h, c, w_ih, w_hh, b_ih, b_hh = ins
    a = _products(x, h, w_ih, w_hh, b_ih, b_hh, together=True)
    n = c.v.shape[1]
    i, f, o = (_r_sigmoid(a[:, k * n:(k + 1) * n]) for k in (0, 1, 3))
    gg = _r_tanh(a[:, 2 * n:3 * n])
    c_new = f * c + i * gg
    tc = _r_tanh(c_new)
    h_new = o * tc
    out = Run(np.stack([h_new.v, c_new.v]), np.stack([h_new.e, c_new.e]), x.tiny)
    if ghc is None:
        return out, None, None
    gh, gc = ghc[0], ghc[1]
    dc_new = gc + _mul(gh, o, 1 - tc * tc)
    da = _cat([_mul(dc_new, gg, i, 1 - i), _mul(dc_new, c, f, 1 - f), _mul(dc_new, i, 1 - gg * gg),
               _mul(gh, tc, o, 1 - o)])
    return out, da, dc_new * f


def _lstm_step(ins, ghc):
    out, da, dc = _lstm_gates(ins, ghc)
    if ghc is None:
        return out, None
    dx, dh, dw_ih, dw_hh, db, _ = _weight_grads(da, da, *ins[:2], *ins[3:5])
    return out, [dx, dh, dc, dw_ih, dw_hh, db, db]


def _stacked(runs, axis=0):
    return Run(np.stack([r.v for r in runs], axis), np.stack([r.e for r in runs], axis), runs[0].tiny)


def _lstm_sequence(reverse):
    """LSTMSequence: the steps in order; backward the reverse loop carrying dh = da W_hh and
    dc, then dX, dW_ih, dW_hh and db as one product each over all steps' rows."""

    def seq(ins, g):
        x, h, c, w_ih, w_hh, b_ih, b_hh = ins
        steps = x.v.shape[0]
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        prev, outs = {}, {}
        for t in order:
            prev[t] = (h, c)
            outs[t], _, _ = _lstm_gates([x[t], h, c, w_ih, w_hh, b_ih, b_hh], None)
            h, c = outs[t][0], outs[t][1]
        out = _stacked([outs[t] for t in range(steps)], 1)  # (2, T, B, H)
        if g is None:
            return out, None
        das, dh, dc = {}, None, None
        for t in reversed(order):
            ghc = g[:, t] if dh is None else _stacked([g[0, t] + dh, g[1, t] + dc])
            _, das[t], dc = _lstm_gates([x[t], *prev[t], w_ih, w_hh, b_ih, b_hh], ghc)
            dh = _dot(das[t], w_hh)
        rows = lambda runs: _cat(runs, 0)  # noqa: E731  (T*B rows, in time order)
        da = rows([das[t] for t in range(steps)])
        dx = _dot(da, w_ih)
        dx = Run(dx.v.reshape(x.v.shape), dx.e.reshape(x.v.shape), x.tiny)
        db = _dot(da.T, _ones(da.v.shape[0], da))[:, 0]
        return out, [dx, dh, dc, _dot(da.T, rows([x[t] for t in range(steps)])),
                     _dot(da.T, rows([prev[t][0] for t in range(steps)])), db, db]
    return seq


def _gru_gates(relu_cell, ins, g):
    """A GRU step: (h', and given g: dgi, dgh (dL/d of its two products) and g z, h's direct
    share of dh).  (relu_cell: unused, the signature of _rnn_gates.)"""
    x, h, w_ih, w_hh, b_ih, b_hh = ins
    gi, gh = _products(x, h, w_ih, w_hh, b_ih, b_hh, together=False)
    n = h.v.shape[1]
    r, z = _r_sigmoid(gi[:, :n] + gh[:, :n]), _r_sigmoid(gi[:, n:2 * n] + gh[:, n:2 * n])
    ghn = gh[:, 2 * n:]
    nn = _r_tanh(gi[:, 2 * n:] + r * ghn)
    out = (1 - z) * nn + z * h
    if g is None:
        return out, None, None, None
    da_n = _mul(g, 1 - z, 1 - nn * nn)
    da_r = _mul(da_n, ghn, r, 1 - r)
    da_z = _mul(g, h - nn, z, 1 - z)
    return out, _cat([da_r, da_z, da_n]), _cat([da_r, da_z, da_n * r]), g * z


def _gru_step(ins, g):
    out, dgi, dgh, g_z = _gru_gates(False, ins, g)
    if g is None:
        return out, None
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(dgi, dgh, *ins[:4])
    return out, [dx, dh + g_z, dw_ih, dw_hh, db_ih, db_hh]


def _one_state_sequence(gates, relu_cell, reverse):
    """GRUSequence and RNNSequence: the steps in order; backward the reverse loop carrying
    dh = dgh W_hh (+ g z), then dX, dW_ih, dW_hh and the biases' gradients as one product
    each over all steps' rows (as _lstm_sequence, with one state)."""

    def seq(ins, g):
        x, h, w_ih, w_hh, b_ih, b_hh = ins
        steps = x.v.shape[0]
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        prev, outs = {}, {}
        for t in order:
            prev[t] = h
            h = outs[t] = gates(relu_cell, [x[t], h, w_ih, w_hh, b_ih, b_hh], None)[0]
        out = _stacked([outs[t] for t in range(steps)])
        if g is None:
            return out, None
        dgis, dghs, dh = {}, {}, None
        for t in reversed(order):
            g_t = g[t] if dh is None else g[t] + dh
            _, dgis[t], dghs[t], direct = gates(relu_cell, [x[t], prev[t], w_ih, w_hh, b_ih, b_hh], g_t)
            dh = _dot(dghs[t], w_hh) if direct is None else _dot(dghs[t], w_hh) + direct
        rows = lambda runs: _cat([runs[t] for t in range(steps)], 0)  # noqa: E731  (T*B rows)
        dgi, dgh = rows(dgis), rows(dghs)
        dx = _dot(dgi, w_ih)
        colsum = lambda d: _dot(d.T, _ones(d.v.shape[0], d))[:, 0]  # noqa: E731
        return out, [Run(dx.v.reshape(x.v.shape), dx.e.reshape(x.v.shape), x.tiny), dh, _dot(dgi.T, rows(x)),
                     _dot(dgh.T, rows(prev)), colsum(dgi), colsum(dgh)]
    return seq


def _both_directions(forward, backward):
    """A sequence op with reverse=(False, True): x, then each direction's own inputs; the two
    directions' outputs stacked, x's gradient the sum of what each sends it."""

    def seq(ins, g):
        x, own = ins[0], ins[1:]
        n = len(own) // 2
        (out_f, grads_f), (out_b, grads_b) = (
            run([x] + own[d * n:(d + 1) * n], None if g is None else g[d]) for d, run in enumerate((forward, backward)))
        out = _stacked([out_f, out_b])
        return out, None if g is None else [grads_f[0] + grads_b[0]] + grads_f[1:] + grads_b[1:]
    return seq


def _cell_bound(step):
    """The Bound of a cell sample: ``step`` run on the Case's inputs (and upstream gradient)."""

    def bound(c):
        ins = [Run(x, tiny=c.tiny) for x in c.x]
        out, grads = step(ins, None if c.g is None else Run(c.g, tiny=c.tiny))
        return out.e if c.g is None else grads[c.i].e
    return Bound(bound)


B_, I_, H_ = 2, 3, 2  # small shapes keep hypothesis fast
# (ELEMENT alone makes nearly every pre-activation overflow, which leaves nothing to check:
# half the elements are moderate, so that some rows stay in range next to the extremes)
CELL = st.one_of(ELEMENT, st.floats(-8, 8, width=32))
for _nl in ("tanh", "relu"):
    _b = _cell_bound(_rnn_step(_nl == "relu"))
    sample("RNNCell", [(B_, I_), (B_, H_), (H_, I_), (H_, H_), (H_,), (H_,)],
           lambda *t, nl=_nl: rnn_cell(*t, nonlinearity=nl), fwd=_b, bwd=_b, elements=CELL)
_b = _cell_bound(_lstm_step)
sample("LSTMCell", [(B_, I_), (B_, H_), (B_, H_), (4 * H_, I_), (4 * H_, H_), (4 * H_,), (4 * H_,)],
       LSTMCell.apply, fwd=_b, bwd=_b, elements=CELL)
sample("LSTMCell", [(B_, I_), (B_, 1), (B_, H_), (4 * H_, I_), (4 * H_, 1), (4 * H_,), (4 * H_,)],  # h projected to 1
       LSTMCell.apply, fwd=_b, bwd=_b, elements=CELL)
# each sequence op one way and the other way; and the LSTM's both ways in one op (a
# bidirectional layer: the directions' split and x's summed gradient are _Sequence's, shared
# by the three ops; tests/test_ops_rnn.py runs all three both ways)
_LSTM_OWN = [(B_, H_), (B_, H_), (4 * H_, I_), (4 * H_, H_), (4 * H_,), (4 * H_,)]
for _reverse in (False, True):
    _b = _cell_bound(_lstm_sequence(_reverse))
    sample("LSTMSequence", [(3, B_, I_)] + _LSTM_OWN,
           lambda *t, r=_reverse: LSTMSequence.apply(*t, reverse=r), fwd=_b, bwd=_b, elements=CELL)
_b = _cell_bound(_both_directions(_lstm_sequence(False), _lstm_sequence(True)))
sample("LSTMSequence", [(3, B_, I_)] + _LSTM_OWN * 2,
       lambda *t: LSTMSequence.apply(*t, reverse=(False, True)), fwd=_b, bwd=_b, elements=CELL)
for _reverse in (False, True):
    _b = _cell_bound(_one_state_sequence(_gru_gates, False, _reverse))
    sample("GRUSequence", [(3, B_, I_), (B_, H_), (3 * H_, I_), (3 * H_, H_), (3 * H_,), (3 * H_,)],
           lambda *t, r=_reverse: GRUSequence.apply(*t, reverse=r), fwd=_b, bwd=_b, elements=CELL)
    for _nl in ("tanh", "relu"):
        _b = _cell_bound(_one_state_sequence(_rnn_gates, _nl == "relu", _reverse))
        sample("RNNSequence", [(3, B_, I_), (B_, H_), (H_, I_), (H_, H_), (H_,), (H_,)],
               lambda *t, r=_reverse, nl=_nl: RNNSequence.apply(*t, nonlinearity=nl, reverse=r), fwd=_b, bwd=_b,
               elements=CELL)
_b = _cell_bound(_gru_step)
sample("GRUCell", [(B_, I_), (B_, H_), (3 * H_, I_), (3 * H_, H_), (3 * H_,), (3 * H_,)], gru_cell, fwd=_b, bwd=_b,
       elements=CELL)


# -- the tests ---------------------------------------------------------------------------------


def test_every_registered_op_has_a_sample():
    from tests.test_registry import import_package_modules

    import_package_modules()
    missing = sorted(set(REGISTRY) - set(SAMPLES))
    assert not missing, (f"registered ops without an extreme-value sample in tests/test_extremes.py: "
                         f"{', '.join(missing)} (add one, with its error bound)")
    assert not set(SAMPLES) - set(REGISTRY), sorted(set(SAMPLES) - set(REGISTRY))


CASES = [pytest.param(name, i, id=f"{name}-{i}") for name in sorted(SAMPLES) for i in range(len(SAMPLES[name]))]


@st.composite
def _case(draw, s):
    arrays = []
    for shape, el in zip(s.shapes, s.elements):
        if el is BIG_ROWS:
            arrays.append(draw(_big_rows(shape)))
        else:
            arrays.append(np.array(draw(st.lists(el, min_size=math.prod(shape), max_size=math.prod(shape))),
                                   dtype=np.float32).reshape(shape))
    return arrays


@st.composite
def _big_rows(draw, shape):
    """Rows of huge logits, o + e or -o + e with o from 1e4 to 3e38 and e small (float32
    arithmetic): the softmax family's hard case (equal or near-equal logits far from 0)."""
    rows = []
    for _ in range(shape[0]):
        o = np.float32(draw(st.one_of(st.sampled_from([1e4, 1e5, 88.72, 1e20, 3e38]), st.floats(1e4, F32_MAX, width=32))))
        row = [np.float32(draw(st.sampled_from([o, o, -o]))) + np.float32(draw(st.sampled_from([0.0, 0.0, 1.0, -0.5])
                                                                               | st.floats(-8, 8, width=32)))
               for _ in range(shape[1])]
        rows.append(row)
    return np.array(rows, dtype=np.float32)


def _flush(a):
    """float32 subnormals set to zero, keeping the sign (what -ftz=true does to an operand)."""
    a = np.asarray(a)
    return np.where(np.abs(a) < FLT_MIN, np.copysign(0.0, a), a).astype(a.dtype)


def check_sample(s, arrays, g_values, ftz=False):
    """``ftz``: the table's kernels flush float32 subnormals to zero, as CuPy compiles every
    CUDA kernel (-ftz=true, docs/emulator.md): an element may instead meet the bound of float64
    on flushed inputs, where a rounding in the subnormal range loses up to FLT_MIN, not TINY;
    and where float64 gives an infinity, a flushed intermediate may make it 0 * inf = NaN."""
    out32, _ = run(s, arrays, np.float32)
    g = np.resize(np.asarray(g_values, dtype=np.float32), out32.shape)
    _, grads32 = run(s, arrays, np.float32, g)

    def truth(xs, g, tiny):
        """(forward value and bound, [(gradient, bound)]) in float64 on inputs xs."""
        xs = [a.astype(np.float64) for a in xs]
        out64, _ = run(s, xs, np.float64)
        _, grads64 = run(s, xs, np.float64, g.astype(np.float64))
        fwd = (out64, s.fwd(Case(s, xs, out64, tiny=tiny), out64))
        bwd = [(d64, s.bwd_tol(i)(Case(s, xs, out64, g.astype(np.float64), i, tiny=tiny), d64))
               for i, d64 in enumerate(grads64)]
        return fwd, bwd

    fwd, bwd = truth(arrays, g, TINY)
    ffwd, fbwd = truth([_flush(a) for a in arrays], _flush(g), FLT_MIN) if ftz else (None, [None] * len(bwd))
    check(out32, *fwd, "forward", ffwd)
    for i, (d32, exact, flushed) in enumerate(zip(grads32, bwd, fbwd)):
        check(d32, *exact, f"gradient of input {i}", flushed)


def _kernels_used(s):
    """The kernel-table functions a sample calls (forward and backward), found by running it
    once on ordinary values with ``backend.kernels`` handing out a recording proxy."""
    used, kernels = set(), backend.kernels

    class Recorder:
        def __init__(self, table):
            self.table = table

        def __getattr__(self, name):
            used.add(name)
            return getattr(self.table, name)

    backend.kernels = lambda array: Recorder(kernels(array))
    try:
        arrays = [np.full(shape, 0.5, np.float32) for shape in s.shapes]
        out, _ = run(s, arrays, np.float32)
        run(s, arrays, np.float32, np.ones(out.shape, np.float32))
    finally:
        backend.kernels = kernels
    return used


# Every kernel table: numba (cpu), the readable reference, and the CUDA C run by the emulator.
# A sample whose op calls no kernel computes the same in each, so it runs on "cpu" only.
TABLE_CASES = [pytest.param("cpu", name, i, id=f"{name}-{i}-cpu") for name, i in
               ((c.values[0], c.values[1]) for c in CASES)]
for _c in CASES:
    if _kernels_used(SAMPLES[_c.values[0]][_c.values[1]]):
        TABLE_CASES.append(pytest.param("reference", *_c.values, id=f"{_c.id}-reference"))
        TABLE_CASES.append(pytest.param("cuda", *_c.values, id=f"{_c.id}-cuda", marks=NEEDS_EMULATOR))


def test_the_kernel_tables_are_exercised():
    """(The recording above must see the kernels: the softmax and cross-entropy samples
    reach their table functions, so those run on every table.)"""
    assert {"softmax", "softmax_backward"} <= _kernels_used(SAMPLES["Softmax"][0])
    assert {"cross_entropy_forward", "cross_entropy_backward"} <= _kernels_used(SAMPLES["CrossEntropy"][0])
    assert not _kernels_used(SAMPLES["Add"][0])


@pytest.mark.parametrize("table,name,index", TABLE_CASES)
@given(data=st.data())
def test_op_at_float32_extremes_against_float64(table, name, index, data):
    s = SAMPLES[name][index]
    arrays = data.draw(_case(s))
    g = data.draw(st.lists(ELEMENT, min_size=1, max_size=12))
    previous = backend.set_cpu_kernels(table)
    try:
        check_sample(s, arrays, g, ftz=table == "cuda")
    finally:
        backend.set_cpu_kernels(previous)
