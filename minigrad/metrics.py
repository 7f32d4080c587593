"""Classification metrics: accuracy, confusion matrix, precision / recall / F1, a report.

Inputs may be minigrad Tensors or NumPy arrays.  ``pred`` is either class indices (an integer
array with the shape of ``target``) or scores/logits with one extra class axis, axis 1 as in
PyTorch: (N, C) for targets (N,), (N, C, H, W) for targets (N, H, W); the predicted class is the
argmax over that axis.

Conventions (as scikit-learn): confusion rows are true classes, columns predicted classes.
For class c, with TP = C[c, c], precision = TP / (column sum), recall = TP / (row sum),
F1 = 2 P R / (P + R); a 0/0 in any of them (a class never predicted, never present, or with
P = R = 0) counts as 0.  Macro averages are the unweighted means of the per-class values
(macro F1 is the mean of the per-class F1s, not the F1 of macro P and R); weighted averages
weight each class by its support (its number of true examples).
"""
import numpy as np

from .tensor import Tensor

__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "classification_report"]


def _np(x, name, fn):
    if isinstance(x, Tensor):
        return x.numpy()
    if isinstance(x, (np.ndarray, list, tuple, int, np.integer)):
        return np.asarray(x)
    if hasattr(x, "get") and hasattr(x, "dtype"):  # a CuPy array
        return x.get()
    raise TypeError(f"{fn}: {name} must be a Tensor or a NumPy array, got {type(x).__name__}")


def _labels(pred, target, fn):
    """(predicted class indices, target class indices), both int arrays of the same shape."""
    p, t = _np(pred, "pred", fn), _np(target, "target", fn)
    if t.dtype.kind not in "iub":
        raise TypeError(f"{fn}: target must hold integer class indices, got dtype {t.dtype}")
    if p.ndim == t.ndim + 1:
        if p.ndim < 2 or p.shape[:1] + p.shape[2:] != t.shape:
            raise ValueError(f"{fn}: scores of shape {p.shape} do not match targets of shape "
                             f"{t.shape} (expected the class axis at axis 1)")
        if p.shape[1] == 0:
            raise ValueError(f"{fn}: scores of shape {p.shape} have no classes")
        p = p.argmax(axis=1)
    elif p.shape != t.shape:
        raise ValueError(f"{fn}: pred of shape {p.shape} does not match target of shape {t.shape}; "
                         "pass class indices of the target's shape or scores with a class axis 1")
    elif p.dtype.kind not in "iub":
        raise TypeError(f"{fn}: pred has the target's shape {p.shape} but dtype {p.dtype}: pass "
                        "integer class indices (e.g. logits.argmax(axis=1)) or the scores themselves")
    return p.astype(np.int64, copy=False), t.astype(np.int64, copy=False)


def accuracy(pred, target):
    """The fraction of examples whose predicted class equals the target, as a Python float.

    ``pred``: class indices (same shape as ``target``) or logits/scores with a class axis 1.
    """
    p, t = _labels(pred, target, "accuracy")
    if t.size == 0:
        raise ValueError("accuracy: no examples (empty target)")
    return float(np.count_nonzero(p == t)) / t.size


def confusion_matrix(pred, target, num_classes=None):
    """``C[i, j]`` = number of examples of true class i predicted as class j, int64 (K, K).

    ``num_classes`` defaults to 1 + the largest label seen; labels must lie in [0, K).
    """
    p, t = _labels(pred, target, "confusion_matrix")
    p, t = p.ravel(), t.ravel()
    if num_classes is None:
        num_classes = int(max(p.max(initial=-1), t.max(initial=-1))) + 1
    k = int(num_classes)
    if k < 1:
        raise ValueError(f"confusion_matrix: num_classes must be >= 1, got {num_classes}")
    for name, a in (("pred", p), ("target", t)):
        if a.size and (a.min() < 0 or a.max() >= k):
            raise ValueError(f"confusion_matrix: {name} holds labels in [{a.min()}, {a.max()}], "
                             f"outside [0, {k}) for num_classes={k}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def _div(a, b):
    """a / b elementwise, with 0 where b == 0 (the documented 0/0 -> 0 rule)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    np.divide(a, b, out=out, where=b != 0)
    return out


def precision_recall_f1(confusion):
    """Per-class precision, recall, F1 and support from a confusion matrix, plus averages.

    Returns a dict::

        precision, recall, f1   float64 arrays (K,), one value per class
        support                 int64 array (K,): true examples of each class (row sums)
        accuracy                trace / total
        macro                   {"precision", "recall", "f1"}: unweighted means over classes
        weighted                {"precision", "recall", "f1"}: means weighted by support

    0/0 is taken as 0 (see the module docstring).
    """
    c = _np(confusion, "confusion", "precision_recall_f1")
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"precision_recall_f1: confusion must be a square (K, K) matrix with "
                         f"K >= 1, got shape {c.shape}")
    if (c < 0).any():
        raise ValueError("precision_recall_f1: confusion has negative counts")
    tp = np.diag(c).astype(np.float64)
    support = c.sum(axis=1).astype(np.int64)
    precision = _div(tp, c.sum(axis=0))
    recall = _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    total = c.sum()
    weights = _div(support, total)
    return {
        "precision": precision, "recall": recall, "f1": f1, "support": support,
        "accuracy": float(_div(tp.sum(), total)),
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()),
                  "f1": float(f1.mean())},
        "weighted": {"precision": float((precision * weights).sum()),
                     "recall": float((recall * weights).sum()), "f1": float((f1 * weights).sum())},
    }


def classification_report(confusion, class_names=None, digits=4):
    """A text table of per-class precision, recall, F1 and support, with accuracy and the
    macro and weighted averages (the layout of scikit-learn's report)."""
    m = precision_recall_f1(confusion)
    k = len(m["support"])
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"classification_report: {len(names)} class names for a {k}-class "
                         "confusion matrix")
    width = max([len(n) for n in names] + [len("weighted avg")])
    col = max(digits + 3, 9) + 1
    head = f"{'':>{width}} " + "".join(f"{h:>{col}}" for h in ("precision", "recall", "f1-score", "support"))
    lines = [head, ""]
    for i, n in enumerate(names):
        lines.append(f"{n:>{width}} " + "".join(f"{v:>{col}.{digits}f}" for v in
                     (m["precision"][i], m["recall"][i], m["f1"][i])) + f"{m['support'][i]:>{col}d}")
    total = int(m["support"].sum())
    lines.append("")
    lines.append(f"{'accuracy':>{width}} " + " " * (2 * col) + f"{m['accuracy']:>{col}.{digits}f}{total:>{col}d}")
    for label, key in (("macro avg", "macro"), ("weighted avg", "weighted")):
        a = m[key]
        lines.append(f"{label:>{width}} " + "".join(f"{a[v]:>{col}.{digits}f}" for v in
                     ("precision", "recall", "f1")) + f"{total:>{col}d}")
    return "\n".join(lines) + "\n"
