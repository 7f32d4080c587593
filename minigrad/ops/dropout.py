"""Dropout's op: the input times a random mask drawn once in forward (nn.functional.dropout
and the Dropout layers choose when it applies; the mask comes from the kernel table)."""
from .. import backend
from ..autograd import Function, register
from ..tensor import Tensor


@register
class DropoutMask(Function):
    """z = x * m, with m_i = 1 / (1 - p) with probability 1 - p and 0 otherwise (inverted
    dropout: the expected value of z is x, so evaluation needs no rescaling).

    m comes from the kernel table's counter-based generator (Philox4x32-10): the backend hands
    out (seed, offset) and advances the offset, so a manual_seed gives the same masks on
    every device.

    dL/dx = g * m      (m is a constant drawn once in forward, so this differentiates again)"""

    saves_inputs = False  # the mask, drawn in forward

    def forward(self, x, p):
        seed, offset = backend.philox_seed_offset(x.size)
        self.mask = backend.kernels(x).dropout_mask(x.shape, p, seed, offset, x.dtype, like=x)
        return x * self.mask

    def backward(self, g):
        return g * Tensor._wrap(self.mask)
