"""Parameter: a Tensor that a Module registers as trainable.

Assigning a Parameter to a Module attribute (``self.weight = Parameter(...)``) is what makes
it show up in ``module.parameters()``, in ``state_dict()`` and hence in the optimizer.
Ops on a Parameter return plain Tensors; only the leaf itself is a Parameter.
"""
import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad (unless asked not to) and that Modules register.

    ``Parameter(tensor)`` shares the tensor's array (no copy), as in PyTorch.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty((0,), dtype=backend.get_default_dtype())
        if isinstance(data, Tensor):
            self._init(data.array)
            self._memory = data._memory  # the same memory, so the same count of in-place writes
        else:
            Tensor.__init__(self, data)
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(
                f"Parameter: only floating-point tensors can require gradients, got dtype "
                f"{self.dtype}; pass requires_grad=False for an integer parameter"
            )
        self.requires_grad = bool(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)
