"""PyTorch's ``torch.accelerator``: the accelerator a script should use, if there is one.

    device = mg.accelerator.current_accelerator() if mg.accelerator.is_available() else mg.device("cpu")

minigrad's one accelerator is the CUDA GPU (device "cuda", through CuPy): see ``minigrad.cuda``.
"""
from . import backend, cuda


def is_available():
    """True when a CUDA GPU is usable here (``minigrad.cuda.is_available()``)."""
    return backend.cuda_available()


def current_accelerator(check_available=False):
    """``device("cuda")`` when a GPU is usable here, else None (``check_available`` is
    accepted: minigrad answers for this machine either way)."""
    return backend.CUDA if backend.cuda_available() else None


def device_count():
    """How many GPUs the driver reports (0 without one)."""
    return cuda.device_count()


def synchronize():
    """Wait for the GPU's queued work (``minigrad.cuda.synchronize()``)."""
    cuda.synchronize()
