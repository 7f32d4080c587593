"""Loss modules: thin wrappers that hold ``reduction`` (and options) and call the functional form.
Formulas: docs/losses.md."""
from ..ops.loss import (
    _check_reduction, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
)
from .module import Module


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        _check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class CrossEntropyLoss(_Loss):
    """cross_entropy(logits, labels): log-softmax and negative log-likelihood in one op."""

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, self.reduction, self.label_smoothing)


class NLLLoss(_Loss):
    """nll_loss(log_probs, labels) = -log_probs[n, label_n]."""

    def forward(self, input, target):
        return nll_loss(input, target, self.reduction)


class MSELoss(_Loss):
    """mse_loss(input, target) = (input - target)^2."""

    def forward(self, input, target):
        return mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """binary_cross_entropy_with_logits(logits, target), the stable form."""

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.reduction)
