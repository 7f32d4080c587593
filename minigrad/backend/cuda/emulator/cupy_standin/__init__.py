"""A strict stand-in for the part of CuPy that minigrad uses: device "cuda" on any machine.

With ``MINIGRAD_CUDA_EMULATOR=1``, ``minigrad.backend`` imports this package where it would
import ``cupy`` (and nothing of it is imported otherwise).  Arrays then live in this module's
``ndarray`` (NumPy memory inside, CuPy's behaviour outside: core.py), and every launch of the
project's CUDA C (``RawModule`` / ``RawKernel``) runs in the C emulator (kernels.py).  It is a
test and teaching device: CI runs every device-parametrised test on it, and a student can run
``python examples/mnist_mlp.py --device cuda`` on a laptop and step through a kernel (slowly).
docs/emulator.md, "The emulated device", has the full story.

What it checks that NumPy would let through, as a GPU would: no implicit conversion to NumPy,
no host arrays in device code, reductions stay on the device, indices wrap as in CuPy, the
generator has CuPy 14's methods only, kernel failures come out at the next synchronisation;
and it counts every host transfer and synchronisation, per line of code (transfers.py)::

    from minigrad.backend.cuda.emulator import cupy_standin
    with cupy_standin.counting() as c:
        step()
    assert c.total == 0, c
"""
import numpy as _np

from . import cuda, random, special  # noqa: F401  (cupy.cuda, cupy.random, cupyx.scipy.special)
from .core import IMPLICIT_CONVERSION, UFUNCS, ndarray, ufunc  # noqa: F401
from .kernels import RawKernel, RawModule  # noqa: F401
from .routines import *  # noqa: F401,F403
from .routines import array, asarray, asnumpy, empty, take, where  # noqa: F401
from .transfers import CUDARuntimeError, counting  # noqa: F401

__version__ = "14 (minigrad's stand-in on the CUDA emulator, not CuPy)"

globals().update(UFUNCS)  # cupy.add, cupy.exp, ... (cupy.abs is absolute, as in NumPy)
abs = UFUNCS["absolute"]  # noqa: A001
true_divide = UFUNCS["divide"]
mod = UFUNCS["remainder"]

# dtypes and constants, as CuPy re-exports them from NumPy
from numpy import (bool_, complex64, complex128, dtype, e, finfo, float16, float32, float64, iinfo,  # noqa: E402,F401
                   inf, int8, int16, int32, int64, intp, nan, newaxis, pi, promote_types, result_type,
                   uint8, uint16, uint32, uint64, can_cast)

del _np
