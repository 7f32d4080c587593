"""The kernel tables a test can run NumPy arrays through (MINIGRAD_CPU_KERNELS): numba
("cpu"), the readable "reference", and the CUDA C ("cuda") under its CPU emulator, which is
skipped, with the reason, where the emulator cannot run."""
import pytest


def emulator_problem():
    """None when the CUDA C emulator runs here, else why not."""
    try:
        from minigrad.backend.cuda import emulator
    except Exception as e:  # noqa: BLE001  (any failure to import means: no emulator)
        return f"the CUDA emulator is not available: {type(e).__name__}: {e}"
    ready = emulator.available()
    return None if ready is True else f"the CUDA emulator cannot run here: {ready}"


EMULATOR_PROBLEM = emulator_problem()
NEEDS_EMULATOR = pytest.mark.skipif(EMULATOR_PROBLEM is not None, reason=str(EMULATOR_PROBLEM))
TABLES = ["cpu", "reference", pytest.param("cuda", marks=NEEDS_EMULATOR)]
