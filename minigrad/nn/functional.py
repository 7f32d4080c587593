"""The functional interface (PyTorch's ``torch.nn.functional``, imported as ``F``): every layer
and loss as a plain function of tensors.  Most are the ops themselves; ``dropout`` is here.
"""
from .. import backend
from ..autograd import Function, register
from ..ops import (  # noqa: F401  (re-exported: F.relu, F.cross_entropy, ...)
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, flatten, gelu, leaky_relu,
    linear, log_softmax, mse_loss, nll_loss, relu, sigmoid, silu, softmax, tanh,
)
from ..tensor import Tensor
from ..ops import (  # noqa: F401,E402  (convolution, pooling, normalization)
    adaptive_avg_pool2d, avg_pool2d, batch_norm, conv2d, layer_norm, max_pool2d, one_hot,
)
from ..ops.shape import functional_pad as pad  # noqa: F401,E402  (PyTorch's convention)
from ..ops import embedding, scaled_dot_product_attention  # noqa: F401,E402  (Transformers)


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


def _check_p(p, op="dropout"):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability p must be a number in [0, 1], got {p!r}")


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) while
    ``training``; the identity otherwise (random numbers from the seeded generator)."""
    _check_p(p)
    if not training or p == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating-point tensor, got dtype {x.dtype}")
    if p == 1:
        return x * 0.0
    return DropoutMask.apply(x, p=float(p))
