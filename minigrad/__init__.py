"""minigrad: a from-scratch deep-learning framework whose core reads in an afternoon
(docs/architecture.md, "Reading path").

    import minigrad as mg
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad            # tensor([2., 4.])

This file only gathers the public API (docs/architecture.md shows how the pieces fit
together).  It follows PyTorch's layout, so that a PyTorch script runs with only its imports
changed (``import minigrad as torch``, ``torchvision`` -> ``minigrad.vision``; README): the
functional forms of the ops (``minigrad.ops.__all__``), tensor creation, grad mode, dtypes,
devices, and the namespaces ``nn``, ``optim``, ``autograd``, ``utils.data``, ``vision``,
``cuda``, ``backends``.  tests/test_pytorch_api.py lists the namespace exactly.
"""
import numpy as _np

from . import backend
from .autograd import (detect_anomaly, enable_grad, grad, inference_mode, is_anomaly_enabled,
                       is_grad_enabled, no_grad, set_grad_enabled)
from .backend import (NoCUDAError, cuda_available, default_device, get_default_dtype, manual_seed,
                      set_default_device, set_default_dtype)
from .backend import Device, Device as device  # noqa: F401  (torch.device("cuda"))
from .tensor import (
    Tensor, arange, empty, eye, from_numpy, full, linspace, multinomial, ones, ones_like, rand,
    rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from . import ops
from .ops import *  # noqa: F401,F403  (the functional forms listed in ops.__all__: exp, where, ...)
from .ops import abs, max, min, pow, sum  # noqa: F401  (shadow builtins on purpose: mg.sum)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from . import autograd             # torch.autograd: Function, grad, backward, gradcheck
from . import viz                  # print_tape, to_dot: look at the tape
from . import cuda, backends, accelerator  # cuda.is_available(); backends.cudnn.benchmark; ...
from . import nn, optim            # nn.Linear, nn.Conv2d, optim.Adam, ...
from . import data, metrics        # data.MNIST, data.DataLoader, metrics.confusion_matrix
from . import utils, vision        # utils.data (torch.utils.data), vision (torchvision)
from .io import load, save         # checkpoints: one .npz, never pickle
from .diagnostics import doctor    # what runs here: versions, devices, smoke tests

# dtypes (NumPy's), under PyTorch's names too: minigrad.float is float32, minigrad.long int64
float16, float32, float64 = _np.float16, _np.float32, _np.float64
int8, int16, int32, int64, uint8, bool_ = _np.int8, _np.int16, _np.int32, _np.int64, _np.uint8, _np.bool_
half, float, double = float16, float32, float64  # noqa: A001  (shadow builtins, as torch does)
short, int, long, bool = int16, int32, int64, bool_  # noqa: A001

__version__ = "0.1.0"
