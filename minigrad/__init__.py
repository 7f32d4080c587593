"""minigrad: a from-scratch deep-learning framework you can read in an afternoon.

    import minigrad as mg
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad            # tensor([2., 4.])

This file only gathers the public API; docs/architecture.md shows how the pieces fit together.
"""
import numpy as _np

from . import backend
from .autograd import (detect_anomaly, enable_grad, grad, is_anomaly_enabled, is_grad_enabled,
                       no_grad, set_grad_enabled)
from .backend import (Device, NoCUDAError, cuda_available, default_device, get_default_dtype,
                      manual_seed, set_default_device, set_default_dtype)
from .tensor import (
    Tensor, arange, empty, eye, from_numpy, full, ones, ones_like, rand, randint, randn, tensor,
    zeros, zeros_like,
)
from . import ops
from .ops import *  # noqa: F401,F403  (the functional forms: exp, log, where, matmul, ...)
from .ops import abs, max, min, pow, sum  # noqa: F401  (shadow builtins on purpose: mg.sum)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from . import viz                  # print_tape, to_dot: look at the tape
from . import cuda                 # cuda.is_available(), cuda.synchronize()
from . import nn, optim            # nn.Linear, nn.Conv2d, optim.Adam, ...
from . import data, metrics        # data.MNIST, data.DataLoader, metrics.confusion_matrix
from .io import load, save         # checkpoints: one .npz, never pickle
from .diagnostics import doctor    # what runs here: versions, devices, smoke tests

float32, float64, int32, int64, bool_ = _np.float32, _np.float64, _np.int32, _np.int64, _np.bool_
float16, uint8 = _np.float16, _np.uint8

__version__ = "0.1.0"
