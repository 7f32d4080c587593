"""minigrad.metrics against hand-computed values (and scikit-learn's conventions)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.metrics import accuracy, classification_report, confusion_matrix, precision_recall_f1

# 8 examples, 3 classes, worked by hand:
#   target 0 0 0 1 1 2 2 2
#   pred   0 1 0 1 2 2 2 0
TARGET = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PRED = np.array([0, 1, 0, 1, 2, 2, 2, 0])
CONF = np.array([[2, 1, 0],    # true 0: two right, one called 1
                 [0, 1, 1],    # true 1: one right, one called 2
                 [1, 0, 2]])   # true 2: two right, one called 0


def test_accuracy_from_labels_and_logits():
    assert accuracy(PRED, TARGET) == 5 / 8
    logits = np.eye(3, dtype=np.float32)[PRED] * 3 - 1  # argmax = PRED
    assert accuracy(mg.tensor(logits), mg.tensor(TARGET)) == 5 / 8
    assert accuracy(logits.T.copy().T, TARGET) == 5 / 8  # non-contiguous scores
    # a class axis at 1 for dense predictions: (N, C, H, W) against (N, H, W)
    scores = np.zeros((2, 3, 2, 2))
    scores[:, 1] = 1.0
    assert accuracy(scores, np.array([[[1, 1], [1, 0]], [[1, 2], [1, 1]]])) == 6 / 8
    assert accuracy(np.array([1]), np.array([1])) == 1.0
    assert accuracy(np.array(3), np.array(2)) == 0.0  # 0-d


def test_accuracy_errors():
    with pytest.raises(ValueError, match=r"pred of shape \(3,\) does not match target of shape \(4,\)"):
        accuracy(np.zeros(3, np.int64), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"scores of shape \(4, 3\) do not match targets of shape \(5,\)"):
        accuracy(np.zeros((4, 3)), np.zeros(5, np.int64))
    with pytest.raises(TypeError, match="pred has the target's shape .* but dtype float64"):
        accuracy(np.zeros(4), np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="target must hold integer class indices, got dtype float32"):
        accuracy(np.zeros((4, 3)), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="no examples"):
        accuracy(np.zeros((0, 3)), np.zeros(0, np.int64))
    with pytest.raises(TypeError, match="pred must be a Tensor or a NumPy array, got str"):
        accuracy("0", np.zeros(1, np.int64))


def test_confusion_matrix_by_hand():
    c = confusion_matrix(PRED, TARGET, 3)
    np.testing.assert_array_equal(c, CONF)
    assert c.dtype == np.int64
    np.testing.assert_array_equal(confusion_matrix(mg.tensor(PRED), mg.tensor(TARGET)), CONF)
    wide = confusion_matrix(PRED, TARGET, num_classes=5)
    assert wide.shape == (5, 5) and wide[:3, :3].tolist() == CONF.tolist() and wide[3:].sum() == 0
    empty = confusion_matrix(np.zeros(0, np.int64), np.zeros(0, np.int64), 2)
    np.testing.assert_array_equal(empty, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"target holds labels in \[0, 2\], outside \[0, 2\)"):
        confusion_matrix(PRED % 2, TARGET, 2)
    with pytest.raises(ValueError, match=r"pred holds labels in \[-1, 1\]"):
        confusion_matrix(np.array([-1, 1]), np.array([0, 1]), 2)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40))
def test_confusion_matrix_counts_every_pair(pairs):
    pred, target = np.array(pairs).T
    c = confusion_matrix(pred, target, 5)
    assert c.sum() == len(pairs)
    for p, t in set(pairs):  # pairs are (pred, target); rows are targets
        assert c[t, p] == pairs.count((p, t))
    assert np.trace(c) / c.sum() == accuracy(pred, target)


def test_precision_recall_f1_by_hand():
    m = precision_recall_f1(CONF)
    # precision = diag / column sums = 2/3, 1/2, 2/3 ; recall = diag / row sums = 2/3, 1/2, 2/3
    np.testing.assert_allclose(m["precision"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_allclose(m["recall"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_allclose(m["f1"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_array_equal(m["support"], [3, 2, 3])
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["macro"]["f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert m["weighted"]["recall"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2 + 3 * 2 / 3) / 8)
    # asymmetric case: P and R differ
    c = np.array([[3, 1], [2, 4]])
    m = precision_recall_f1(mg.tensor(c))
    np.testing.assert_allclose(m["precision"], [3 / 5, 4 / 5])
    np.testing.assert_allclose(m["recall"], [3 / 4, 4 / 6])
    f0 = 2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4)
    f1 = 2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6)
    np.testing.assert_allclose(m["f1"], [f0, f1])
    assert m["macro"]["precision"] == pytest.approx(0.7)
    assert m["macro"]["f1"] == pytest.approx((f0 + f1) / 2)  # mean of F1s, not F1 of means


def test_zero_division_counts_as_zero():
    # class 1 never predicted (precision 0/0), class 2 never present (recall 0/0),
    # class 3 absent and never predicted (everything 0/0)
    c = np.array([[2, 0, 1, 0],
                  [1, 0, 0, 0],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0]])
    with np.errstate(all="raise"):
        m = precision_recall_f1(c)
    np.testing.assert_allclose(m["precision"], [2 / 3, 0, 0, 0])
    np.testing.assert_allclose(m["recall"], [2 / 3, 0, 0, 0])
    np.testing.assert_allclose(m["f1"], [2 / 3, 0, 0, 0])
    assert m["macro"]["recall"] == pytest.approx(2 / 3 / 4)
    assert precision_recall_f1(np.zeros((2, 2), np.int64))["accuracy"] == 0.0


def test_matches_sklearn_when_available():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    c = confusion_matrix(p, t, 4)
    np.testing.assert_array_equal(c, metrics.confusion_matrix(t, p, labels=range(4)))
    m = precision_recall_f1(c)
    ref = metrics.precision_recall_fscore_support(t, p, labels=range(4), zero_division=0)
    for got, want in zip((m["precision"], m["recall"], m["f1"], m["support"]), ref):
        np.testing.assert_allclose(got, want)


def test_precision_recall_f1_errors():
    with pytest.raises(ValueError, match=r"square \(K, K\) matrix with K >= 1, got shape \(2, 3\)"):
        precision_recall_f1(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="negative counts"):
        precision_recall_f1(np.array([[1, -1], [0, 1]]))


def test_classification_report_layout():
    text = classification_report(CONF, class_names=["cat", "dog", "bird"])
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["cat", "0.6667", "0.6667", "0.6667", "3"]
    assert lines[3].split() == ["dog", "0.5000", "0.5000", "0.5000", "2"]
    assert lines[4].split() == ["bird", "0.6667", "0.6667", "0.6667", "3"]
    assert lines[6].split() == ["accuracy", "0.6250", "8"]
    assert lines[7].split() == ["macro", "avg", "0.6111", "0.6111", "0.6111", "8"]
    assert lines[8].split() == ["weighted", "avg", "0.6250", "0.6250", "0.6250", "8"]
    # columns line up: every number ends at the same offsets as the header
    assert lines[2].rfind("3") == lines[0].rfind("t") == lines[6].rfind("8")
    default = classification_report(CONF, digits=2)
    assert default.splitlines()[2].split() == ["0", "0.67", "0.67", "0.67", "3"]
    with pytest.raises(ValueError, match="2 class names for a 3-class confusion matrix"):
        classification_report(CONF, class_names=["a", "b"])
