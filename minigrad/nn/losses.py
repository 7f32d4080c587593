"""Loss modules: thin wrappers that hold ``reduction`` and the other options (PyTorch's
arguments; those after ``weight`` keyword-only) and call the functional form.  ``weight`` and
``pos_weight`` are buffers, as in PyTorch: they follow ``.to(device)`` and are in the state
dict.  Formulas: docs/losses.md."""
from ..ops.loss import (
    _check_reduction, binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss,
    nll_loss,
)
from ..tensor import Tensor
from .module import Module


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        _check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        if weight is not None and not isinstance(weight, Tensor):
            hint = f"; pass reduction={weight!r} as a keyword" if isinstance(weight, str) else ""
            raise TypeError(f"{type(self).__name__}: weight must be a Tensor or None, got {type(weight).__name__}{hint}")
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """cross_entropy(logits, target): log-softmax and negative log-likelihood in one op."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """nll_loss(log_probs, labels) = -weight[label] * log_probs[n, label]."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """mse_loss(input, target) = (input - target)^2."""

    def forward(self, input, target):
        return mse_loss(input, target, self.reduction)


class BCELoss(_WeightedLoss):
    """binary_cross_entropy(probabilities, target) (logs clamped at -100)."""

    def __init__(self, weight=None, *, reduction="mean"):
        super().__init__(weight, reduction)

    def forward(self, input, target):
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """binary_cross_entropy_with_logits(logits, target), the stable form."""

    def __init__(self, weight=None, *, reduction="mean", pos_weight=None):
        super().__init__(weight, reduction)
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            raise TypeError(f"BCEWithLogitsLoss: pos_weight must be a Tensor or None, got {type(pos_weight).__name__}")
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                pos_weight=self.pos_weight)
