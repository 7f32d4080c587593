"""Loss functions: cross_entropy, nll_loss, mse_loss, binary_cross_entropy_with_logits.

``reduction`` is "mean" (default), "sum" or "none" (one loss per sample/element), as in PyTorch.
Formulas and derivations: docs/losses.md.
"""
from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor
from .activation import sigmoid
from .elementwise import lift
from .reduce import mean, sum
from .shape import reshape

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(xp, losses, reduction):
    """Reduce per-sample losses (an array); the mean of nothing is NaN, as in PyTorch."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if losses.size == 0:
        return xp.asarray(float("nan"), dtype=losses.dtype)
    return losses.sum() / losses.size  # (ndarray.mean costs 3x more on small batches)


def _check_labels(op, logits, target):
    """Validate (N, C) scores against (N,) integer labels; return the label array on the
    scores' device."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(logits).__name__}")
    if logits.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point (N, C) scores, got dtype {logits.dtype}")
    if logits.ndim != 2:
        raise ValueError(
            f"{op}: expected input of shape (N, C) (a batch of N rows of C class scores), got shape "
            f"{logits.shape}; for a single sample use input.reshape(1, -1) and a target of shape (1,)"
        )
    t = target.data if isinstance(target, Tensor) else target
    if not hasattr(t, "dtype"):
        t = backend.array_module(logits.data).asarray(t)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must hold integer class labels (e.g. int64), got dtype {t.dtype}; "
            "convert class indices with target.long()"
        )
    n, c = logits.shape
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(
            f"{op}: expected target of shape ({n},) (one label per row of the input), got target shape "
            f"{tuple(t.shape)} for input shape {logits.shape} (batch size mismatch)"
        )
    t = backend.to_device(t, logits.device)
    if n:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= c:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{op}: target label {bad} is out of range for {c} classes (valid labels are 0 to {c - 1})"
            )
    return t


@register
class CrossEntropy(Function):
    """Softmax cross-entropy of (N, C) logits x against integer labels t, in one op.

    log p = x - logsumexp(x)  (row-wise, with the row max subtracted first, so huge logits do
    not overflow);  with label smoothing e the target distribution is q = (1 - e) onehot(t) + e / C:

        loss_n = -sum_c q_c log p_nc         (e = 0:  loss_n = -log p_{n, t_n})

    dL/dx_n = g_n * (softmax(x_n) - q_n)     (g_n = g / N for "mean", g for "sum")

    The backward is computed with arrays from the saved log-probabilities (one exp, one
    scatter), so this op is once-differentiable: for second derivatives use
    ``nll_loss(log_softmax(x), t)``, which is built from twice-differentiable ops."""

    once_differentiable = True

    def forward(self, x, target, reduction, label_smoothing):
        xp = backend.array_module(x)
        n, c = x.shape
        rows = xp.arange(n)
        logp = x - x.max(axis=1, keepdims=True) if n else x.copy()
        if n:
            logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        losses = -logp[rows, target]
        if label_smoothing:
            e = x.dtype.type(label_smoothing)
            losses *= 1 - e
            losses -= e / c * logp.sum(axis=1)
        self.logp, self.target, self.rows = logp, target, rows
        self.reduction, self.smoothing = reduction, label_smoothing
        return _reduce(xp, losses, reduction)

    def backward(self, g):
        xp = backend.array_module(self.logp)
        grad = xp.exp(self.logp)  # softmax
        n, c = grad.shape
        e = self.smoothing
        grad[self.rows, self.target] -= grad.dtype.type(1 - e)
        if e:
            grad -= grad.dtype.type(e / c)
        if self.reduction == "none":
            grad *= g.data[:, None]
        else:
            grad *= g.data / n if self.reduction == "mean" else g.data
        return Tensor._wrap(grad)


@register
class NLLLoss(Function):
    """Negative log-likelihood of (N, C) log-probabilities z against integer labels t.

    loss_n = -z_{n, t_n}           dL/dz_nc = -g_n * [c == t_n]   (g_n = g / N for "mean")

    The backward is g times a constant (-onehot), so it can be differentiated again."""

    def forward(self, z, target, reduction):
        xp = backend.array_module(z)
        n = z.shape[0]
        self.target, self.reduction = target, reduction
        return _reduce(xp, -z[xp.arange(n), target], reduction)

    def backward(self, g):
        (z,) = self.saved_tensors
        xp = backend.array_module(z.data)
        n = z.shape[0]
        coef = xp.zeros(z.shape, dtype=g.dtype)
        coef[xp.arange(n), self.target] = -1.0 / n if self.reduction == "mean" else -1.0
        if self.reduction == "none":
            g = reshape(g, (n, 1))
        return g * Tensor._wrap(coef)


@register
class BCEWithLogits(Function):
    """Binary cross-entropy on logits x (any shape) with targets y in [0, 1] (same shape):

    loss = -[y log s(x) + (1 - y) log(1 - s(x))] = max(x, 0) - x y + log(1 + exp(-|x|))

    (the right-hand form never exponentiates a positive number, so it is stable for any x).
    dL/dx = g * (s(x) - y),   dL/dy = -g * x        (s = sigmoid; g / numel for "mean")"""

    def forward(self, x, y, reduction):
        xp = backend.array_module(x)
        self.reduction, self.count = reduction, x.size
        losses = xp.maximum(x, 0) - x * y + xp.log1p(xp.exp(-xp.abs(x)))
        return _reduce(xp, losses, reduction)

    def backward(self, g):
        x, y = self.saved_tensors
        if self.reduction == "mean":
            g = g / self.count
        gx = g * (sigmoid(x) - y) if x.requires_grad else None
        gy = g * -x if y.requires_grad else None
        return gx, gy


# -- functional forms ---------------------------------------------------------------------


def cross_entropy(input, target, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of (N, C) logits against (N,) integer class labels (log-softmax + NLL fused).

    ``label_smoothing`` e in [0, 1] mixes the one-hot target with the uniform distribution."""
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    t = _check_labels("cross_entropy", input, target)
    if input.shape[1] == 0:
        raise ValueError(f"cross_entropy: input of shape {input.shape} has no classes")
    return CrossEntropy.apply(input, target=t, reduction=reduction, label_smoothing=float(label_smoothing))


def nll_loss(input, target, reduction="mean"):
    """Negative log-likelihood of (N, C) log-probabilities (e.g. from log_softmax) against (N,) labels."""
    _check_reduction("nll_loss", reduction)
    t = _check_labels("nll_loss", input, target)
    return NLLLoss.apply(input, target=t, reduction=reduction)


def _same_shape(op, input, target):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    target = lift(target, input)
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got dtype {input.dtype}")
    if target.shape != input.shape:
        # broadcasting (N, 1) against (N,) silently gives an (N, N) loss: refuse it
        raise ValueError(
            f"{op}: target shape {target.shape} differs from input shape {input.shape}; "
            "they must be equal (reshape one of them)"
        )
    if target.dtype != input.dtype:
        target = target.astype(input.dtype)
    return target


def mse_loss(input, target, reduction="mean"):
    """Mean squared error: (input - target)^2, averaged ("mean"), summed or per element.

    Built from sub, mul and mean, so every derivative order comes for free:
    dL/dinput = 2 (input - target) g / numel."""
    _check_reduction("mse_loss", reduction)
    target = _same_shape("mse_loss", input, target)
    d = input - target
    sq = d * d
    if reduction == "mean":
        return mean(sq)
    if reduction == "sum":
        return sum(sq)
    return sq


def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    """Binary cross-entropy of logits against targets in [0, 1] (sigmoid fused in, stable)."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    target = _same_shape("binary_cross_entropy_with_logits", input, target)
    return BCEWithLogits.apply(input, target, reduction=reduction)
