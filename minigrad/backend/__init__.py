"""Where arrays live: devices, the array-module switch, the kernel table, random state.

Two switches, DeZero style, and nothing here knows about autograd:

* ``array_module(x)`` is the module that owns an array (``numpy`` on the CPU, ``cupy`` on the
  GPU), for plain array math written once against it;
* ``kernels(x)`` is the kernel table of the array's device: ``reference`` (readable xp code),
  ``cpu_kernels`` (reference + numba) or ``cuda`` (reference + our CUDA C, in backend/cuda/).  The three
  modules expose the same names with the same semantics (docs/architecture.md); ops call
  ``kernels(x.array).softmax(...)`` and never pick an implementation themselves.
"""
import importlib

import numpy as np
from .. import _env
from . import host_memory

host_memory.configure()  # keep freed memory for the next step (host_memory.py says why)

# Device "cuda" is CuPy on a GPU, or, with MINIGRAD_CUDA_EMULATOR=1, the CuPy stand-in that runs
# our CUDA C in the C emulator on any machine (backend/cuda/emulator/cupy_standin: for CI and
# for students; docs/emulator.md).  The stand-in is bound to the name ``cupy`` at the end of this
# file (it imports backend.cuda, which needs the functions below); real CuPy is then not imported.
EMULATED_CUDA = _env.flag("MINIGRAD_CUDA_EMULATOR")
cupy = None
_cupy_import_error = None
if not EMULATED_CUDA:
    try:  # the GPU is optional: pip install -e ".[gpu]" (README, "GPU")
        import cupy
    except Exception as _e:  # ImportError, or a CUDA library that cupy cannot load
        cupy = None
        _cupy_import_error = f"{type(_e).__name__}: {_e}"


class NoCUDAError(RuntimeError):
    """Device 'cuda' was asked for, and this machine cannot give it (the message says why)."""


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
        """The array module for this device (numpy or cupy); NoCUDAError, saying why, when
        this machine has no usable GPU."""
        if self.type == "cpu":
            return np
        if not cuda_available():
            raise NoCUDAError(f"device 'cuda': {cuda_status()[1]}")
        return cupy

    def __eq__(self, other):
        if isinstance(other, Device):
            return self.type == other.type
        return isinstance(other, str) and self.type == Device(other).type

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return f"device({self.type!r})"

    def __str__(self):
        return self.type


# The two devices.  (Upper case: ``backend.cuda`` is the CUDA backend's package.)
CPU = Device("cpu")
CUDA = Device("cuda")


_cuda_status = []  # (usable, text), worked out once


def cuda_status():
    """``(usable, text)``: the GPU's name, or why there is none (no CuPy, no driver, no device)
    in words a user can act on, with the driver's own reason."""
    if not _cuda_status:
        _cuda_status.append(_probe_cuda())
    return _cuda_status[0]


def _probe_cuda():
    if EMULATED_CUDA:
        from .cuda import emulator  # noqa: PLC0415

        ready = emulator.available()
        if not ready:
            return False, f"no CUDA GPU found: MINIGRAD_CUDA_EMULATOR=1, but {ready}"
        return True, ("minigrad's CUDA emulator (MINIGRAD_CUDA_EMULATOR=1): a CuPy stand-in whose kernels run "
                      "on the CPU; no GPU is used")
    if cupy is None:
        if _cupy_import_error and "No module named 'cupy'" not in _cupy_import_error:
            return False, f"no CUDA GPU found: CuPy is installed but cannot load ({_cupy_import_error})"
        return False, ("no CUDA GPU found: CuPy is not installed (pip install -e \".[gpu]\", "
                       "README: GPU)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, a driver older than the CUDA runtime, ...
        return False, f"no CUDA GPU found: {type(e).__name__}: {e}".replace("\n", " ")
    if count == 0:
        return False, "no CUDA GPU found: the driver reports 0 devices"
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return True, f"{name} (compute capability {props['major']}.{props['minor']}, {count} device(s))"


def cuda_available():
    """True when CuPy imports and sees at least one GPU, or under MINIGRAD_CUDA_EMULATOR=1 (the
    emulated device) when the emulator can run here."""
    return cuda_status()[0]


def special(xp):
    """The special functions (erf) of an array module: ``cupyx.scipy.special`` for CuPy, the
    stand-in's copy on the emulated device (NumPy has none: reference.py's _erf)."""
    if EMULATED_CUDA and xp is cupy:
        return cupy.special
    return importlib.import_module("cupyx.scipy.special")


_default_device = []  # set_default_device, else $MINIGRAD_DEVICE, else cpu


def default_device():
    """Where new tensors and parameters go when no device is named."""
    if not _default_device:
        _default_device.append(Device(_env.setting("MINIGRAD_DEVICE", "cpu")))
    return _default_device[0]


def set_default_device(device):
    """Make ``device`` ("cpu" or "cuda") the default for tensor creation (minigrad.tensor,
    zeros, randn, ...) and new layers, as PyTorch's torch.set_default_device.  The environment
    variable MINIGRAD_DEVICE sets it for a whole run."""
    device = Device(device)
    device.xp  # a clear NoCUDAError now rather than at the first tensor
    _default_device[:] = [device]


def array_module(array):
    """numpy or cupy, whichever owns ``array`` (the one array-module switch)."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def device_of(array):
    return CUDA if (cupy is not None and isinstance(array, cupy.ndarray)) else CPU


def to_device(array, device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    device = Device(device)
    if device.type == "cpu":
        return cupy.asnumpy(array) if device_of(array) is CUDA else array
    return device.xp.asarray(array)


# ----------------------------------------------------------------------------------------
# The kernel table: which module runs the kernels for an array.
_TABLES = {"cpu": "cpu_kernels", "reference": "reference", "cuda": "cuda"}
_loaded_tables = {}
_cpu_choice = {"name": _env.setting("MINIGRAD_CPU_KERNELS", "cpu"), "table": None}


def kernels(array):
    """The kernel table for ``array``'s device: ``backend.cuda`` for a CuPy array; for a NumPy
    array the one chosen by set_cpu_kernels (at import: MINIGRAD_CPU_KERNELS): ``cpu`` (the
    default: reference + numba), ``reference`` (pure NumPy) or ``cuda`` (our CUDA C kernels,
    run by the CPU emulator).  Called by every op, so it only looks things up."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return _loaded_tables.get("cuda") or _load_table("cuda")
    table = _cpu_choice["table"]
    if table is None:
        table = _cpu_choice["table"] = _load_table(_cpu_choice["name"])
    return table


def set_cpu_kernels(name):
    """Choose the kernel table for NumPy arrays: "cpu", "reference" or "cuda" (see kernels);
    returns the previous choice.  MINIGRAD_CPU_KERNELS sets it when minigrad is imported."""
    if name not in _TABLES:
        raise ValueError(f"set_cpu_kernels: expected one of {', '.join(_TABLES)}, got {name!r}")
    previous = _cpu_choice["name"]
    _cpu_choice.update(name=name, table=None)
    return previous


def _load_table(name):
    if name not in _TABLES:
        raise ValueError(f"MINIGRAD_CPU_KERNELS={name!r}: expected one of {', '.join(_TABLES)}")
    try:
        table = importlib.import_module(f"{__name__}.{_TABLES[name]}")
    except ImportError as e:
        if name != "cuda":
            raise
        raise RuntimeError(
            f"the CUDA kernel table (minigrad.backend.cuda) could not be imported: {e}"
        ) from e
    _loaded_tables[name] = table
    return table


def set_matmul(impl="cublas", variant="regblock"):
    """Choose the GPU matrix product: ``"cublas"`` (cuBLAS through cupy.matmul, the default)
    or ``"own"``, the project's SGEMM ladder, at rung ``"naive"``, ``"tiled"`` or
    ``"regblock"`` (docs/kernels.md).  The CPU always uses NumPy's BLAS.  (The choice lives in
    backend.cuda, which reads it; importing that module needs no GPU.)"""
    from . import cuda as cuda_kernels

    cuda_kernels.set_matmul(impl, variant)


def get_matmul():
    """(impl, variant) as chosen by set_matmul."""
    from . import cuda as cuda_kernels

    return cuda_kernels.get_matmul()


def check_indices_on_device(indices, low, high, op):
    """For an index array on the GPU: make sure ``low <= indices < high`` without reading it
    back (which would make the host wait for the GPU).  A kernel checks every index and, on a
    bad one, stops with an error naming ``op`` (one of backend.cuda.INDEX_CHECKS), which comes
    out of the next synchronisation (``.item()``, ``.numpy()``, ``cuda.synchronize()``), as
    with PyTorch's device-side asserts.  On the CPU the ops check indices on the host (free)."""
    if indices.size:
        (_loaded_tables.get("cuda") or _load_table("cuda")).check_indices(indices, low, high, op)


def debug_checks():
    """True under MINIGRAD_DEBUG=1: ops then also run the input checks that read values back
    from the GPU (label ranges, ...), which a training step otherwise avoids."""
    return _env.flag("MINIGRAD_DEBUG")


# ----------------------------------------------------------------------------------------
# Random numbers: one seeded generator per device, so manual_seed makes every run repeatable,
# and the counter-based stream of dropout: (seed, offset) for Philox, identical on every device.
_generators = {}
_philox = {"seed": None, "offset": 0}


def manual_seed(seed):
    """Seed every random function of every device (rand, randn, init, dropout, shuffling)."""
    _generators.clear()
    _generators["seed"] = int(seed)
    _philox.update(seed=int(seed) % 2**64, offset=0)
    return int(seed)


def philox_seed_offset(numel):
    """(seed, offset) for ``numel`` counter-based random numbers (kernels' dropout_mask), and
    advance the offset past them (4 numbers per Philox block).  Without manual_seed the seed
    is drawn once from the operating system's entropy."""
    if _philox["seed"] is None:
        _philox["seed"] = int(np.random.SeedSequence().entropy) % 2**64
    seed, offset = _philox["seed"], _philox["offset"]
    _philox["offset"] = offset + (int(numel) + 3) // 4
    return seed, offset


def generator(device=CPU):
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
    return not _env.flag("MINIGRAD_DISABLE_NUMBA")


if EMULATED_CUDA:  # the emulated device (see the top of this file)
    from .cuda.emulator import cupy_standin as cupy  # noqa: E402
