"""PyTorch's ``torch.backends`` switches, for scripts that set or ask them.

    torch.backends.cudnn.benchmark = True          # runs, and changes nothing here
    torch.backends.mps.is_available()              # False

minigrad uses neither cuDNN (its convolutions are im2col + a matrix product, and its own CUDA C
on the GPU) nor Apple's MPS, and its matrix products do not use TF32.  So these are plain
attributes a script may set; they change nothing and report what is true here.  (Not to be
confused with ``minigrad.backend``, where minigrad's arrays and kernels live.)
"""
from . import backend


class cudnn:
    """cuDNN's switches (minigrad does not use cuDNN)."""

    enabled = True
    benchmark = False
    deterministic = False
    allow_tf32 = False

    @staticmethod
    def is_available():
        return False


class mps:
    """Apple's Metal GPUs (not a minigrad device)."""

    @staticmethod
    def is_available():
        return False

    @staticmethod
    def is_built():
        return False


class cuda:
    """CUDA's switches: ``cuda.matmul.allow_tf32`` (matrix products never use TF32 here)."""

    class matmul:
        allow_tf32 = False

    @staticmethod
    def is_built():
        """True when CuPy, minigrad's way to the GPU, is installed."""
        return backend.cupy is not None
