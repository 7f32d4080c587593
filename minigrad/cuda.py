"""The GPU, PyTorch's ``torch.cuda`` way: ``minigrad.cuda.is_available()``, ``synchronize()``.

    import minigrad as mg
    if mg.cuda.is_available():
        model.to("cuda")        # or: mg.set_default_device("cuda"), or MINIGRAD_DEVICE=cuda

minigrad uses one GPU per process (device "cuda"); several GPUs go through
``minigrad.distributed``, one process each.  With ``MINIGRAD_CUDA_EMULATOR=1`` device "cuda" is
the emulated one (a CuPy stand-in whose kernels run on the CPU: docs/emulator.md), on any machine.
"""
from . import backend


def is_available():
    """True when CuPy imports and the driver reports a GPU (or on the emulated device)."""
    return backend.cuda_available()


def status():
    """The GPU's name, or why there is none (no CuPy, no driver, no device): a sentence."""
    return backend.cuda_status()[1]


def device_count():
    """How many GPUs the driver reports (0 without CuPy or a driver)."""
    if not backend.cuda_available():
        return 0
    return backend.cupy.cuda.runtime.getDeviceCount()


def synchronize():
    """Wait until every kernel queued on the GPU has finished (for timing: kernel launches
    return before the kernels run); a kernel that failed since (a device-side index check)
    raises here.  Raises NoCUDAError without a GPU."""
    backend.CUDA.xp.cuda.get_current_stream().synchronize()
