"""Where arrays live: devices, the array-module switch, and seeded random generators.

One switch, DeZero style: every op asks ``array_module(x)`` for the module that owns its
input (``numpy`` on the CPU, ``cupy`` on the GPU) and writes the math once against it.
Nothing here knows about autograd.
"""
import os

import numpy as np

try:  # the GPU is optional: `pip install minigrad[gpu]`
    import cupy
except Exception:  # ImportError, or a CUDA driver that cupy cannot load
    cupy = None


class Device:
    """A place where arrays live: ``Device('cpu')`` or ``Device('cuda')``."""

    __slots__ = ("type",)
    _known = ("cpu", "cuda")

    def __init__(self, spec="cpu"):
        if isinstance(spec, Device):
            spec = spec.type
        name = str(spec).split(":")[0]
        if name not in self._known:
            raise ValueError(f"unknown device {spec!r}: expected one of {self._known}")
        self.type = name

    @property
    def xp(self):
        """The array module for this device (numpy or cupy)."""
        if self.type == "cpu":
            return np
        if cupy is None:
            raise RuntimeError(
                "device 'cuda' needs CuPy and a CUDA GPU: install with `pip install minigrad[gpu]`"
            )
        return cupy

    def __eq__(self, other):
        return isinstance(other, (Device, str)) and self.type == Device(other).type

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return f"device({self.type!r})"

    def __str__(self):
        return self.type


cpu = Device("cpu")
cuda = Device("cuda")


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def array_module(array):
    """numpy or cupy, whichever owns ``array`` (the one array-module switch)."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def device_of(array):
    return cuda if (cupy is not None and isinstance(array, cupy.ndarray)) else cpu


def to_device(array, device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    device = Device(device)
    if device.type == "cpu":
        return cupy.asnumpy(array) if device_of(array) is cuda else array
    return device.xp.asarray(array)


# ----------------------------------------------------------------------------------------
# Random numbers: one seeded generator per device, so manual_seed makes every run repeatable.
_generators = {}


def manual_seed(seed):
    """Seed every random function of every device (rand, randn, init, dropout, shuffling)."""
    _generators.clear()
    _generators["seed"] = int(seed)
    return int(seed)


def generator(device=cpu):
    """The random generator of ``device`` (a ``numpy.random.Generator`` on the CPU)."""
    device = Device(device)
    gen = _generators.get(device.type)
    if gen is None:
        seed = _generators.get("seed")
        gen = device.xp.random.default_rng(seed)
        _generators[device.type] = gen
    return gen


# ----------------------------------------------------------------------------------------
# Default dtype: float32, as in PyTorch; float64 is used for gradient checks.
_default_dtype = [np.dtype(np.float32)]


def get_default_dtype():
    return _default_dtype[0]


def set_default_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype[0] = dtype


def numba_enabled():
    """numba kernels are used unless MINIGRAD_DISABLE_NUMBA=1 (then pure-NumPy fallbacks run)."""
    return os.environ.get("MINIGRAD_DISABLE_NUMBA", "0") not in ("1", "true", "yes")


# ----------------------------------------------------------------------------------------
# The CPU kernel module (backend/cpu.py) shares its name with the `cpu` device above, and
# importing a submodule rebinds the package attribute to the module.  Import it once here,
# as `cpu_kernels`, and put the device back, so `backend.cpu` is always the Device.
import importlib as _importlib  # noqa: E402

_cpu_device = cpu
cpu_kernels = _importlib.import_module(__name__ + ".cpu")
cpu = _cpu_device
del _cpu_device
