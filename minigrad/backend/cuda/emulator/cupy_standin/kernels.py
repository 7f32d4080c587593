"""``cupy.RawModule`` / ``cupy.RawKernel`` of the stand-in: the CUDA C runs in the C emulator.

The source goes to ``emulator.Module`` (g++, threads as fibers) instead of NVRTC; a launch
takes CuPy's arguments: device arrays by their data pointer (whatever their layout: CuPy
passes the address of the first element, the kernel indexes from there), NumPy and Python
scalars by value (the emulator checks their sizes against the parameters), ``None`` as a null
pointer.  A NumPy array is refused, as CuPy refuses it.

A kernel that faults or traps (a device-side check, an out-of-bounds access, a deadlock at a
barrier) does not raise at the launch: its error waits for the next synchronisation or
transfer (transfers.kernel_failed), where a GPU reports it.  Errors a GPU reports at the launch
itself (bad arguments, too much shared memory, a source that does not compile) raise at once.
"""
import numpy as np

from .. import DeadlockError, KernelError
from .. import Module as _EmulatorModule
from . import transfers
from .core import _unsupported, ndarray


class RawModule:
    """CUDA C source, compiled (by the emulator) when a function is first asked for."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False, *,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            if path is None:
                raise TypeError("RawModule needs code= or path=")
            with open(path) as f:
                code = f.read()
        self.code, self.options, self.name_expressions = code, tuple(options), name_expressions
        self._module = None

    def get_function(self, name):
        if self._module is None:
            self._module = _EmulatorModule(self.code, options=self.options, name_expressions=self.name_expressions)
        return RawKernel._of(self._module.get_function(name), name)


class RawKernel:
    """One kernel: ``RawKernel(code, name, options)``, or from ``RawModule.get_function``."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False, *,
                 enable_cooperative_groups=False, jitify=False):
        self._function, self.name = None, name
        self._module = RawModule(code=code, options=options)

    @classmethod
    def _of(cls, function, name):
        kernel = cls.__new__(cls)
        kernel._function, kernel.name, kernel._module = function, name, None
        return kernel

    def _fn(self):
        if self._function is None:
            self._function = self._module.get_function(self.name)._function
        return self._function

    @property
    def max_dynamic_shared_size_bytes(self):
        return self._fn().max_dynamic_shared_size_bytes

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, value):
        self._fn().max_dynamic_shared_size_bytes = value

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        fn = self._fn()
        host_args = tuple(_argument(a) for a in args) if isinstance(args, (tuple, list)) else args
        try:
            fn(grid, block, host_args, shared_mem=shared_mem)
        except (KernelError, DeadlockError) as e:  # the kernel ran and failed: reported later
            transfers.kernel_failed(transfers.CUDARuntimeError(
                f"cudaErrorLaunchFailure: unspecified launch failure, in kernel {self.name} "
                f"(the emulator: {e})"))

    def __repr__(self):
        return f"<RawKernel {self.name} (emulated)>"


def _argument(a):
    """What the emulator receives for one launch argument."""
    if isinstance(a, ndarray):
        return _memory_from_first_element(a._a)
    if isinstance(a, np.ndarray):
        raise _unsupported(a)
    return a


def _memory_from_first_element(a):
    """The array's memory as the flat run of elements its strides reach, starting at its first
    element: what a kernel indexes from the pointer CuPy passes (a C-contiguous array is
    passed as it is)."""
    if a.flags.c_contiguous:
        return a
    if any(s < 0 for s in a.strides) or any(s % a.itemsize for s in a.strides):
        raise ValueError(f"the CuPy stand-in cannot pass an array with strides {a.strides} to a kernel "
                         "(negative or not a multiple of the element size); make it contiguous first")
    span = 1 + sum((n - 1) * s for n, s in zip(a.shape, a.strides)) // a.itemsize if a.size else 0
    return np.lib.stride_tricks.as_strided(a, shape=(span,), strides=(a.itemsize,))

