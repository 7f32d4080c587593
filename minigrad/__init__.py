"""minigrad: a from-scratch deep-learning framework you can read in an afternoon.

    import minigrad as mg
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad            # tensor([2., 4.])
"""
from . import backend
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd import detect_anomaly, is_anomaly_enabled
from .backend import Device, cuda_available, get_default_dtype, manual_seed, set_default_dtype
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .tensor import (
    Tensor, arange, empty, eye, from_numpy, full, ones, ones_like, rand, randint, randn, tensor,
    zeros, zeros_like,
)
from . import ops
from . import viz  # noqa: E402  (tape printing and graph export: minigrad.viz)
from .ops import *  # noqa: F401,F403  (the functional forms: exp, log, where, ...)
from .ops import abs, pow, sum  # noqa: F401  (shadow builtins on purpose: mg.sum)
from . import data, metrics  # noqa: E402  (minigrad.data.DataLoader, minigrad.metrics.accuracy)
from .io import load, save  # noqa: E402  (checkpoints: one .npz, never pickle)
from . import nn, optim  # noqa: E402  (minigrad.nn.Linear, minigrad.optim.Adam)

import numpy as _np

float32, float64, int32, int64, bool_ = _np.float32, _np.float64, _np.int32, _np.int64, _np.bool_
float16, uint8 = _np.float16, _np.uint8

__version__ = "0.1.0"
