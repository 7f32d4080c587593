"""Small helpers the op tests share: making tensors from NumPy arrays and checking gradients.

    from tests.helpers import t, leaf, check_grads

* ``t(a)``: a tensor with ``a``'s values, on the device under test (sharing ``a``'s memory on
  the CPU) or on the device you name.
* ``leaf(a)``: the same in float64 and requiring grad: the input of a gradient check.
* ``check_grads(fn, *arrays)``: gradcheck and gradgradcheck of ``fn`` at leaves made from
  ``arrays``.
* ``torch_installed()``, ``real_mnist_dir()``: whether the optional references are here.

"The device under test" is conftest's ``ON``: the CPU, or, in a module that uses the
``on_device`` fixture, each device in turn.
"""
import numpy as np

import minigrad as mg
from tests.conftest import ON


def t(a, requires_grad=False, device=None):
    """A tensor with the values of the NumPy array ``a``.

    Without ``device``: on the device under test (``ON``); on the CPU it shares ``a``'s memory,
    so ``a``'s layout (transposed, a strided slice) reaches the op as it is.  With ``device``: a
    C-contiguous copy on that device.
    """
    x = ON.tensor(a) if device is None else mg.tensor(np.array(a, order="C"), device=device)
    return x.requires_grad_(requires_grad)


def leaf(a, device=None, requires_grad=True):
    """A float64 leaf with the values of ``a`` (an array, a list or a number) that requires grad:
    the input of a gradient check.  ``device`` as in ``t``: without it the device under test,
    sharing the memory of a float64 array on the CPU."""
    return t(np.asarray(a, dtype=np.float64), requires_grad, device)


def check_grads(fn, *arrays, twice=True, **kwargs):
    """``fn``'s first derivatives (gradcheck) and, with ``twice``, its second (gradgradcheck)
    agree with finite differences at float64 leaves made from ``arrays`` (``leaf``); ``kwargs``
    (``eps``, ``atol``, ...) go to both checks."""
    xs = [leaf(a) for a in arrays]
    assert mg.gradcheck(fn, *xs, **kwargs)
    if twice:
        assert mg.gradgradcheck(fn, *xs, **kwargs)


def torch_installed():
    """Whether PyTorch (an optional reference, never required) imports here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def real_mnist_dir():
    """The data root holding real MNIST where minigrad looks without downloading
    ($MINIGRAD_DATA, then the cache), to pass as a script's MINIGRAD_DATA; None where it is not
    there (the tests that train on it skip)."""
    from minigrad.data.download import candidate_dirs

    for path, direct in candidate_dirs(None, "mnist"):
        if (path / "t10k-labels-idx1-ubyte.gz").exists() and (path / "train-images-idx3-ubyte.gz").exists():
            return str(path if direct else path.parent)
    return None


def assert_matches_torch(ours_fn, theirs_fn, arrays, rtol, atol, seed=9):
    """``ours_fn`` at float64 leaves made from ``arrays`` and ``theirs_fn`` (PyTorch's) at torch
    leaves with the same values agree within ``rtol``/``atol``: the value, and each input's
    gradient for a random upstream gradient (drawn from ``seed``).  An input PyTorch gives no
    gradient is not compared.  The caller has checked that torch imports (importorskip)."""
    import torch

    ours = [leaf(a) for a in arrays]
    theirs = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    y1, y2 = ours_fn(*ours), theirs_fn(*theirs)
    np.testing.assert_allclose(y1.numpy(), y2.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(seed).standard_normal(y1.shape)
    y1.backward(t(g))
    y2.backward(torch.tensor(g))
    for x, tx in zip(ours, theirs):
        if tx.grad is not None:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)
