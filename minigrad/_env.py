"""The environment variables minigrad reads, parsed one way, in one place.

A flag is off when unset, empty, "0", "false", "no" or "off" (any case), and on otherwise.

  MINIGRAD_DATA            where the data sets are looked for first (minigrad.data)
  MINIGRAD_CACHE           the cache folder (downloads, compiled emulator modules);
                           default $XDG_CACHE_HOME/minigrad or ~/.cache/minigrad
  MINIGRAD_DEVICE          the default device ("cpu", "cuda")
  MINIGRAD_CPU_KERNELS     the CPU kernel table: "cpu" (numba, default) or "reference"
  MINIGRAD_DISABLE_NUMBA   flag: the numba kernels fall back to NumPy
  MINIGRAD_DEBUG           flag: also run the input checks that read values back from a GPU
  MINIGRAD_CUDA_EMULATOR   flag: device "cuda" is the emulated one (docs/emulator.md)
  MINIGRAD_CUDA_SYNC       flag: synchronise after every CUDA kernel launch (debugging)
  MINIGRAD_EMU_CXX, MINIGRAD_EMU_DEBUG (flag), MINIGRAD_EMU_UCONTEXT (flag),
  MINIGRAD_EMU_CHECK (flag), MINIGRAD_EMU_STACK_KB: the emulator's compiler and checks
  MINIGRAD_DIST_TIMEOUT    seconds a distributed collective waits (minigrad.distributed)
  MINIGRAD_SYSTEM_MALLOC   flag: leave glibc malloc's thresholds as they are (backend/host_memory.py)
"""
import os
from pathlib import Path

_OFF = ("", "0", "false", "no", "off")


def flag(name):
    """True when the environment variable ``name`` is set to anything but an "off" value."""
    return os.environ.get(name, "").strip().lower() not in _OFF


def setting(name, default=None):
    """The variable's value, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or default


def cache_dir():
    """MINIGRAD_CACHE, or $XDG_CACHE_HOME/minigrad, or ~/.cache/minigrad (not created here)."""
    root = setting("MINIGRAD_CACHE")
    if root:
        return Path(root).expanduser()
    return Path(setting("XDG_CACHE_HOME") or Path.home() / ".cache") / "minigrad"
