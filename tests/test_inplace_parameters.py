"""Tensors passed to an op as parameters (targets, class weights, pos_weight, gather's index,
masked_fill's mask, the attention mask) are version-checked by the engine like inputs: an
in-place edit between forward and backward raises PyTorch's error instead of silently
changing the gradient (the backward would read the edited values).  Each case failed before
(no error, and a gradient of the edited graph)."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4))
P = rng.uniform(0.1, 0.9, (3, 4))


CASES = {
    # name: (build(x) -> (loss, the parameter tensor), an in-place edit of that parameter)
    "cross_entropy target": (lambda x: (F.cross_entropy(x, t := mg.tensor([0, 1, 2])), t),
                             lambda t: t.fill_(3)),
    "cross_entropy target (N, C, d)": (
        lambda x: (F.cross_entropy(x.reshape(1, 3, 4), t := mg.tensor([[0, 1, 2, 0]])), t), lambda t: t.fill_(2)),
    "cross_entropy weight": (lambda x: (F.cross_entropy(x, mg.tensor([0, 1, 2]), w := mg.tensor([1.0, 2, 3, 4],
                                                                                              dtype=x.dtype)), w),
                             lambda w: w.mul_(2)),
    "cross_entropy probabilities weight": (
        lambda x: (F.cross_entropy(x, mg.tensor(P), w := mg.tensor([1.0, 2, 3, 4], dtype=x.dtype)), w),
        lambda w: w.mul_(2)),
    "nll_loss target": (lambda x: (F.nll_loss(x, t := mg.tensor([0, 1, 2])), t), lambda t: t.fill_(3)),
    "nll_loss weight": (lambda x: (F.nll_loss(x, mg.tensor([0, 1, 2]), w := mg.tensor([1.0, 2, 3, 4], dtype=x.dtype)), w),
                        lambda w: w.mul_(2)),
    "binary_cross_entropy weight": (
        lambda x: (F.binary_cross_entropy(mg.sigmoid(x), mg.tensor(P), w := mg.tensor(P.copy())), w),
        lambda w: w.mul_(2)),
    "bce_with_logits weight": (
        lambda x: (F.binary_cross_entropy_with_logits(x, mg.tensor(P), w := mg.tensor(P.copy())), w),
        lambda w: w.mul_(2)),
    "bce_with_logits pos_weight": (
        lambda x: (F.binary_cross_entropy_with_logits(x, mg.tensor(P), pos_weight=(w := mg.tensor([1.0, 2, 3, 4], dtype=x.dtype))), w),
        lambda w: w.mul_(2)),
    "gather index": (lambda x: (mg.gather(x, 1, i := mg.tensor([[0, 1], [1, 2], [2, 3]])).sum(), i),
                     lambda i: i.fill_(0)),
    "max indices": (lambda x: (lambda r: (r.values.sum(), r.indices))(mg.max(x, 1)), lambda i: i.fill_(0)),
    "masked_fill mask": (lambda x: (x.masked_fill(m := mg.tensor(P > 0.5), 0.0).sum(), m),
                         lambda m: m.fill_(True)),
    "attention float mask": (
        lambda x: (F.scaled_dot_product_attention(x[None], x[None], x[None],
                                                  attn_mask=(m := mg.tensor(P[:, :3], dtype=x.dtype))).sum(), m),
        lambda m: m.mul_(5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_editing_a_parameter_tensor_in_place_before_backward_raises(name):
    build, edit = CASES[name]
    x = mg.tensor(X, requires_grad=True)
    loss, param = build(x)
    with mg.no_grad():
        edit(param)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("name", sorted(CASES))
def test_without_an_edit_the_gradient_is_that_of_a_copy(name):
    """The same graph with its parameter tensors untouched: the gradient equals the one
    computed with a private copy of the parameter (the check costs nothing else)."""
    build, _ = CASES[name]
    x = mg.tensor(X, requires_grad=True)
    loss, _ = build(x)
    loss.backward()
    x2 = mg.tensor(X, requires_grad=True)
    loss2, _ = build(x2)
    loss2.backward()
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())


def test_a_numpy_target_is_copied_so_editing_it_changes_nothing():
    """A target given as a NumPy array cannot be version-checked: the op keeps a copy."""
    t = np.array([0, 1, 2])
    x = mg.tensor(X, requires_grad=True)
    loss = F.cross_entropy(x, t)
    t[:] = 3
    loss.backward()
    x2 = mg.tensor(X, requires_grad=True)
    F.cross_entropy(x2, mg.tensor([0, 1, 2])).backward()
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())


def test_the_error_names_the_argument():
    x = mg.tensor(X, requires_grad=True)
    t = mg.tensor([0, 1, 2])
    loss = F.cross_entropy(x, t)
    t.add_(1)
    with pytest.raises(RuntimeError, match=r"its argument 'target' of CrossEntropy .* is at version 1, but "
                                           r"CrossEntropy saved it at version 0"):
        loss.backward()


def test_a_parameter_converted_to_another_dtype_is_a_private_copy():
    """A float32 pos_weight for float64 logits is converted: the op holds its own copy, so
    editing the caller's tensor changes nothing (the gradient of the unedited graph)."""
    x = mg.tensor(X, requires_grad=True)
    w = mg.tensor([1.0, 2, 3, 4], dtype=mg.float32)
    loss = F.binary_cross_entropy_with_logits(x, mg.tensor(P), pos_weight=w)
    w.mul_(2)
    loss.backward()
    x2 = mg.tensor(X, requires_grad=True)
    F.binary_cross_entropy_with_logits(x2, mg.tensor(P), pos_weight=mg.tensor([1.0, 2, 3, 4])).backward()
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())
