"""Loss functions: cross_entropy, nll_loss, binary_cross_entropy(_with_logits), mse_loss.

Signatures and semantics are PyTorch's (``torch.nn.functional``): ``reduction`` is "mean"
(default), "sum" or "none"; class weights, ``ignore_index``, probability targets and
(N, C, d1, d2, ...) inputs work as there.  The arguments after ``weight`` are keyword-only,
so an old call that passed ``reduction`` third raises instead of meaning something else.
Formulas and derivations: docs/losses.md.
"""
import numpy as np

from .. import backend
from ..autograd import Function, is_grad_enabled, register
from ..tensor import Tensor
from .activation import log_softmax, relu, sigmoid
from .elementwise import abs, astype, clip, exp, lift, log, log1p, maximum
from .reduce import mean, sum
from .shape import permute, reshape

# Targets, class weights and pos_weight reach the ops as tensor *parameters* (Function.apply
# hands forward their arrays and the engine checks their versions before backward), so an
# in-place edit between forward and backward raises instead of changing the gradient.  They
# keep the caller's tensor (or a view of it, which shares its version counter) wherever the
# array is the caller's memory; a converted copy (dtype, device) is a new tensor nobody else
# holds.

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _divide(total, count):
    """total / count for arrays; 0 / 0 is NaN (the mean of nothing, as in PyTorch), without
    NumPy's warning (reading a NumPy count is free; CuPy divides quietly)."""
    if type(count) is int or backend.array_module(count) is np:
        return total / count if count else total * np.nan
    return total / count


def _reduce(losses, reduction, count):
    """Reduce per-sample losses (an array); "mean" divides by ``count``."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return _divide(losses.sum(), count)


def _host_checks(array):
    """Checks that read values back are free on the CPU; on the GPU only MINIGRAD_DEBUG=1 runs
    them (a training step must not wait for the device), and bad values give NaN instead."""
    return backend.device_of(array) is backend.CPU or backend.debug_checks()


# -- class-index targets -------------------------------------------------------------------


def _class_weight(op, weight, input, c):
    """The class weights (C,) as a tensor in the input's dtype, or None."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        hint = f"; pass reduction={weight!r} as a keyword" if isinstance(weight, str) else ""
        raise TypeError(f"{op}: weight must be a Tensor of shape ({c},) (one weight per class) or None, "
                        f"got {type(weight).__name__}{hint}")
    if weight.shape != (c,) or weight.dtype.kind != "f":
        raise ValueError(f"{op}: weight must be a floating Tensor of shape ({c},) (one weight per class) for "
                         f"input of shape {input.shape}, got shape {weight.shape} and dtype {weight.dtype}")
    _no_grad_to(op, "weight", weight)
    if weight.device != input.device:
        raise RuntimeError(f"{op}: input is on {input.device} but weight is on {weight.device}")
    return _constant_in(weight, input.dtype)


def _constant_in(t, dtype):
    """t off the tape, in ``dtype``: t itself (same memory, same version counter) when it has
    that dtype, else a converted copy."""
    t = t.detach()
    return t if t.dtype == dtype else astype(t, dtype)


def _no_grad_to(op, name, t):
    if t.requires_grad and is_grad_enabled():
        raise ValueError(f"{op}: no gradient flows to {name} (as in PyTorch); pass {name}.detach()")


def _expected_target_shape(input):
    """(N, C) -> (N,);  (N, C, d1, ...) -> (N, d1, ...);  (C,) -> ()."""
    return () if input.ndim == 1 else input.shape[:1] + input.shape[2:]


def _check_input(op, input):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point (N, C) scores, got dtype {input.dtype}")
    if input.ndim == 0:
        raise ValueError(f"{op}: expected input of shape (N, C), (N, C, d1, ...) or (C,), got a 0-d tensor")
    c = input.shape[1] if input.ndim >= 2 else input.shape[0]
    if c == 0:
        raise ValueError(f"{op}: input of shape {input.shape} has no classes")
    return c


def _labels(op, input, target, c, ignore_index):
    """The integer labels as an int64 tensor on the input's device, checked against the input
    (the caller's tensor itself where it already is one)."""
    t = target.array if isinstance(target, Tensor) else target
    if not hasattr(t, "dtype"):
        t = np.asarray(t)
    expected = _expected_target_shape(input)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must hold integer class labels (e.g. int64) of shape {expected}"
            + (f", or class probabilities of the input's shape {input.shape}" if op == "cross_entropy" else "")
            + f"; got dtype {t.dtype} and shape {tuple(t.shape)}; convert class indices with target.long()"
        )
    if tuple(t.shape) != expected:
        what = "one label per row of the input" if input.ndim == 2 else "the input's shape without the class axis"
        batch = " (batch size mismatch)" if t.ndim == len(expected) and t.ndim and t.shape[0] != expected[0] else ""
        raise ValueError(f"{op}: expected target of shape {expected} ({what}), got target shape "
                         f"{tuple(t.shape)} for input shape {input.shape}{batch}")
    if not isinstance(target, Tensor) or backend.array_module(t) is not backend.array_module(input.array) \
            or t.dtype != np.int64:
        # a copy (to the input's device, in int64): a new tensor, that nobody else can edit
        t = backend.to_device(t, input.device).astype(np.int64)
        target = Tensor._wrap(t)
    if t.size and _host_checks(t) and (int(t.min()) < 0 or int(t.max()) >= c):
        wrong = t[(t != ignore_index) & ((t < 0) | (t >= c))]
        if wrong.size:
            label = int(wrong.min()) if int(wrong.min()) < 0 else int(wrong.max())
            raise ValueError(f"{op}: target label {label} is out of range for {c} classes (valid labels are "
                             f"0 to {c - 1}; ignore_index={ignore_index} marks a row to skip)")
    return target.detach()


def _rows(input, t):
    """(x (M, C), labels (M,)): the class axis moved last and the rest flattened (the labels
    reshaped as a view: they keep the caller's version counter)."""
    if input.ndim == 2:
        return input, t
    if input.ndim == 1:
        return reshape(input, (1, input.shape[0])), reshape(t, (1,))
    axes = (0,) + tuple(range(2, input.ndim)) + (1,)
    return reshape(permute(input, axes), (-1, input.shape[1])), reshape(t, (-1,))


def _total_weight(target, weight, ignore_index, dtype):
    """The divisor of "mean": the summed weights of the rows that are not ignored (their
    count, without weights), as PyTorch."""
    xp = backend.array_module(target)
    if weight is None:
        count = xp.count_nonzero(target != ignore_index)
        return int(count) if xp is np else count.astype(dtype)  # (on the GPU it stays there)
    w_t = weight[xp.clip(target, 0, weight.shape[0] - 1)]  # (a bad label's row is NaN anyway)
    return (w_t * (target != ignore_index)).sum(dtype=dtype)


@register
class CrossEntropy(Function):
    """Softmax cross-entropy of (N, C) logits x against integer labels t, in one op.

    log p = x - logsumexp(x) (row-wise, max-shifted, so huge logits do not overflow); with
    class weights w (1 without), label smoothing e and q = (1 - e) onehot(t) + e / C:

        loss_n = -(1 - e) w_t log p_t - (e / C) sum_c w_c log p_c          (0 if t = ignore_index)
        mean = sum_n loss_n / sum_{n not ignored} w_{t_n}

    dL/dx_nc = g_n [(1 - e) w_t (p_c - [c = t]) + (e / C)(p_c sum_k w_k - w_c)],   p = softmax(x)
    (g_n = g / the mean's divisor for "mean", g for "sum").

    Both directions are kernels (cross_entropy_forward / cross_entropy_backward), so this op
    is once-differentiable: for second derivatives use ``nll_loss(log_softmax(x), t)``, built
    from twice-differentiable ops."""

    once_differentiable = True

    def forward(self, x, *, target, weight, ignore_index, label_smoothing, reduction):
        self.args = (target, weight, ignore_index, label_smoothing)
        self.reduction = reduction
        losses, self.sumexp = backend.kernels(x).cross_entropy_forward(x, *self.args)
        self.count = _total_weight(target, weight, ignore_index, x.dtype) if reduction == "mean" else None
        return _reduce(losses, reduction, self.count)

    def backward(self, g):
        x = self.saved_tensors[0].array
        if self.reduction == "none":
            grow = g.array
        else:  # every row gets g (divided by the mean's divisor)
            grow = backend.array_module(x).empty(x.shape[:1], dtype=x.dtype)
            grow[...] = g.array if self.reduction == "sum" else _divide(g.array, self.count)
        target, weight, ignore_index, e = self.args
        dx = backend.kernels(x).cross_entropy_backward(x, target, self.sumexp, grow, weight, ignore_index, e)
        return Tensor._wrap(dx)


@register
class NLLLoss(Function):
    """Negative log-likelihood of (N, C) log-probabilities z against integer labels t, with
    class weights w (1 without):

    loss_n = -w_t z_{n, t}  (0 if t = ignore_index)      mean: sum_n loss_n / sum_{n not ignored} w_{t_n}
    dL/dz_nc = -g_n w_t [c = t]                           (g_n = g / that divisor for "mean")

    The backward is g times a constant, so it can be differentiated again."""

    def forward(self, z, *, target, weight, ignore_index, reduction):
        xp = backend.array_module(z)
        n, c = z.shape
        valid = target != ignore_index
        in_range = (target >= 0) & (target < c)
        self.target = xp.where(valid & in_range, target, 0)  # in bounds for indexing
        coef = valid * (1 if weight is None else weight[self.target])
        self.coef = xp.where(valid & ~in_range, np.nan, coef).astype(z.dtype)  # a bad label: NaN
        self.reduction = reduction
        self.count = _total_weight(target, weight, ignore_index, z.dtype) if reduction == "mean" else None
        return _reduce(-z[xp.arange(n), self.target] * self.coef, reduction, self.count)

    def backward(self, g):
        (z,) = self.saved_tensors
        xp = backend.array_module(z.array)
        n = z.shape[0]
        scale = self.coef
        if self.reduction == "mean":  # (rows of weight 0, e.g. ignored, keep 0 when the divisor is 0)
            scale = xp.where(self.coef == 0, 0, _divide(self.coef, self.count)).astype(z.dtype, copy=False)
        onehot = xp.zeros(z.shape, dtype=z.dtype)
        onehot[xp.arange(n), self.target] = -scale
        if self.reduction == "none":
            g = reshape(g, (n, 1))
        return g * Tensor._wrap(onehot)


def _class_loss(op, input, target, weight, ignore_index, reduction):
    """Checks shared by cross_entropy and nll_loss; the (M, C) rows, labels and weights."""
    _check_reduction(op, reduction)
    c = _check_input(op, input)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    w = _class_weight(op, weight, input, c)
    x, t = _rows(input, _labels(op, input, target, c, int(ignore_index)))
    return x, t, w


def _unflatten(losses, input, reduction):
    """"none" losses of the (M, C) rows back in the target's shape."""
    if reduction != "none" or input.ndim == 2:
        return losses
    return reshape(losses, _expected_target_shape(input))


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits against class labels (log-softmax + NLL fused), PyTorch's
    F.cross_entropy: input (N, C), (N, C, d1, ...) or (C,); target integer labels of shape
    (N,), (N, d1, ...) or (), or class probabilities of the input's shape.  ``weight`` (C,)
    weighs each class; rows whose label is ``ignore_index`` count for nothing (also not in the
    mean's divisor); ``label_smoothing`` e in [0, 1] mixes the target with the uniform one."""
    op = "cross_entropy"
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating)) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if isinstance(target, Tensor) and target.dtype.kind == "f" and isinstance(input, Tensor) \
            and target.shape == input.shape:
        return _cross_entropy_probabilities(input, target, weight, reduction, float(label_smoothing))
    x, t, w = _class_loss(op, input, target, weight, ignore_index, reduction)
    losses = CrossEntropy.apply(x, target=t, weight=w, ignore_index=int(ignore_index),
                                label_smoothing=float(label_smoothing), reduction=reduction)
    return _unflatten(losses, input, reduction)


def _cross_entropy_probabilities(input, target, weight, reduction, e):
    """Cross-entropy against class probabilities q (the input's shape), from ops (so it
    differentiates twice, in the input and in q):  loss = -sum_c w_c q_c log p_c, with q mixed
    with the uniform distribution by label smoothing; "mean" divides by the number of
    samples (N d1 ...), as in PyTorch."""
    op = "cross_entropy"
    _check_reduction(op, reduction)
    c = _check_input(op, input)
    axis = 1 if input.ndim >= 2 else 0
    w = _class_weight(op, weight, input, c)
    logp = log_softmax(input, dim=axis)
    if w is not None:  # (a view of the weight tensor: Mul then checks its version)
        logp = logp * reshape(w, (c,) + (1,) * (input.ndim - axis - 1))
    q = target if not e else target * (1 - e) + e / c
    losses = -sum(q * logp, axis=axis)
    if reduction == "none":
        return losses
    return sum(losses) if reduction == "sum" else mean(losses)


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities (e.g. from log_softmax) against class
    labels, PyTorch's F.nll_loss: input (N, C), (N, C, d1, ...) or (C,), target (N,),
    (N, d1, ...) or (); ``weight`` and ``ignore_index`` as in cross_entropy."""
    x, t, w = _class_loss("nll_loss", input, target, weight, ignore_index, reduction)
    losses = NLLLoss.apply(x, target=t, weight=w, ignore_index=int(ignore_index), reduction=reduction)
    return _unflatten(losses, input, reduction)


# -- elementwise targets -------------------------------------------------------------------


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


def _broadcast_weight(op, name, weight, input):
    """A weight Tensor that broadcasts to the input's shape, as a tensor in its dtype."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        hint = f"; pass reduction={weight!r} as a keyword" if isinstance(weight, str) else ""
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(weight).__name__}{hint}")
    try:
        shape = np.broadcast_shapes(weight.shape, input.shape)
    except ValueError:
        shape = None
    if shape != input.shape:
        raise ValueError(f"{op}: {name} of shape {weight.shape} does not broadcast to the input's shape {input.shape}")
    _no_grad_to(op, name, weight)
    if weight.device != input.device:
        raise RuntimeError(f"{op}: input is on {input.device} but {name} is on {weight.device}")
    return _constant_in(weight, input.dtype)


def _constant(array):
    return None if array is None else Tensor._wrap(array)


@register
class BinaryCrossEntropy(Function):
    """Binary cross-entropy of probabilities x in [0, 1] against targets y (same shape), each
    log clamped at -100 as in PyTorch (so x = 0 or 1 gives a finite loss), weight w (1 without):

        loss = -w [y log x + (1 - y) log(1 - x)]
        dL/dx = g w (x - y) / max(x (1 - x), 1e-12)        (PyTorch's form: finite at 0 and 1)
        dL/dy = g w (log(1 - x) - log x)                    (the clamped logs)

    log(1 - x) is computed as log1p(-x), as in PyTorch: for x = 1e-8, 1 - x rounds to 1 in
    float32 and the loss would lose its value.  The backward is written with ops, so it
    differentiates again (away from the clamps)."""

    def forward(self, x, y, *, weight, reduction):
        xp = backend.array_module(x)
        self.weight, self.reduction = weight, reduction
        with np.errstate(divide="ignore"):  # log 0 = -inf, clamped just below
            losses = -(y * xp.maximum(xp.log(x), -100) + (1 - y) * xp.maximum(xp.log1p(-x), -100))
        return _weigh_and_reduce(losses, weight, reduction)

    def backward(self, g):
        x, y = self.saved_tensors
        gw = _elementwise_upstream(g, x, self.reduction, self.weight)
        gx = gw * ((x - y) / maximum(x * (1 - x), 1e-12)) if x.requires_grad else None  # (g (x - y) may be subnormal)
        gy = None
        if y.requires_grad:
            with np.errstate(divide="ignore"):  # log 0 = -inf, clamped
                gy = gw * (clip(log1p(-x), min=-100) - clip(log(x), min=-100))
        return gx, gy


def _weigh_and_reduce(losses, weight, reduction):
    """Elementwise losses times their weight, reduced ("mean": over every element)."""
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, reduction, losses.dtype.type(losses.size))


def _elementwise_upstream(g, x, reduction, weight):
    """The upstream gradient of each element: g (per element for "none", / numel for "mean"),
    times the weight."""
    if reduction == "mean":
        g = g / x.numel()
    return g if weight is None else g * Tensor._wrap(weight)


@register
class BCEWithLogits(Function):
    """Binary cross-entropy on logits x (any shape) with targets y in [0, 1] (same shape), the
    sigmoid fused in; weight w and pos_weight p (the weight of the positive term; both 1
    without).  With softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + exp(-|x|)) (stable for
    any x; -log s(x) = softplus(-x) and -log(1 - s(x)) = softplus(x)):

        loss = w [p y softplus(-x) + (1 - y) softplus(x)]      (p = 1: max(x, 0) - x y + log(1 + exp(-|x|)))
        dL/dx = g w [(1 - y) s - p y (1 - s)]                   (p = 1: g w (s - y)),   s = sigmoid(x)
        dL/dy = g w [p softplus(-x) - softplus(x)]              (p = 1: -g w x)"""

    def forward(self, x, y, *, weight, pos_weight, reduction):
        xp = backend.array_module(x)
        self.weight, self.pos_weight, self.reduction = weight, pos_weight, reduction
        softplus = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        if pos_weight is None:
            losses = softplus - x * y
        else:  # softplus(-x) = softplus(x) - x
            losses = (1 - y) * softplus + pos_weight * y * (softplus - x)
        return _weigh_and_reduce(losses, weight, reduction)

    def backward(self, g):
        x, y = self.saved_tensors
        gw = _elementwise_upstream(g, x, self.reduction, self.weight)
        p = _constant(self.pos_weight)
        gx = gy = None
        if x.requires_grad:
            s = sigmoid(x)
            gx = gw * (s - y) if p is None else gw * ((1 - y) * s - p * y * (1 - s))
        if y.requires_grad:
            # p softplus(-x) - softplus(x) = (p - 1) softplus(x) - p x
            gy = -gw * x if p is None else gw * ((p - 1) * (relu(x) + log1p(exp(-abs(x)))) - p * x)
        return gx, gy


def binary_cross_entropy(input, target, weight=None, *, reduction="mean"):
    """Binary cross-entropy of probabilities (e.g. from sigmoid) against targets in [0, 1] of
    the same shape, PyTorch's F.binary_cross_entropy (logs clamped at -100); ``weight``
    broadcasts to the input.  Prefer binary_cross_entropy_with_logits on logits: it is stable."""
    op = "binary_cross_entropy"
    _check_reduction(op, reduction)
    target = _same_shape(op, input, target)
    w = _broadcast_weight(op, "weight", weight, input)
    if input.numel() and _host_checks(input.array) and bool(((input.array < 0) | (input.array > 1)).any()):
        raise ValueError(f"{op}: all elements of input should be between 0 and 1 (probabilities); "
                         "for logits use binary_cross_entropy_with_logits")
    return BinaryCrossEntropy.apply(input, target, weight=w, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, *, reduction="mean", pos_weight=None):
    """Binary cross-entropy of logits against targets in [0, 1] (sigmoid fused in, stable),
    PyTorch's F.binary_cross_entropy_with_logits: ``weight`` broadcasts to the input,
    ``pos_weight`` weighs the positive term (e.g. one per class, broadcast along the last axis)."""
    op = "binary_cross_entropy_with_logits"
    _check_reduction(op, reduction)
    target = _same_shape(op, input, target)
    w = _broadcast_weight(op, "weight", weight, input)
    p = _broadcast_weight(op, "pos_weight", pos_weight, input)
    return BCEWithLogits.apply(input, target, weight=w, pos_weight=p, reduction=reduction)


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
