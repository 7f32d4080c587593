"""What minigrad runs on here, and whether it works: ``python -m minigrad`` (version, devices,
a self-test of a few ops) and ``python -m minigrad doctor`` (the whole environment: Python,
NumPy, numba, the BLAS, CuPy, the CUDA runtime and driver, the GPU, and one smoke kernel on
every device).  ``minigrad.doctor()`` prints the same report from Python.
"""
import importlib
import platform
import sys
import traceback

import numpy as np


def _version(module_name):
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # not installed, or broken (a CUDA library that cannot load)
        return None, f"not available ({type(e).__name__}: {e})".replace("\n", " ")[:160]
    return module, getattr(module, "__version__", "unknown version")


def _self_test(device):
    """A few ops forward and backward, checked against hand-computed values, on ``device``."""
    import minigrad as mg

    x = mg.tensor([[1.0, -2.0, 3.0]], device=device, requires_grad=True)
    w = mg.tensor([[0.5], [1.0], [-1.0]], device=device, requires_grad=True)
    y = (x @ w).relu() + x.exp().sum() * 0
    loss = mg.nn.functional.cross_entropy(mg.cat([x, -x]), mg.tensor([2, 1], device=device)) + y.sum()
    loss.backward()
    expected = np.array([[0.0, 0.0, 0.0]])  # relu(1*0.5 - 2 - 3) = 0: only cross-entropy flows to x
    p = np.exp([[1.0, -2.0, 3.0]]) / np.exp([[1.0, -2.0, 3.0]]).sum()
    q = np.exp([[-1.0, 2.0, -3.0]]) / np.exp([[-1.0, 2.0, -3.0]]).sum()
    expected = expected + ((p - [[0, 0, 1]]) - (q - [[0, 1, 0]])) / 2
    if not np.allclose(x.grad.numpy(), expected, atol=1e-5):
        raise AssertionError(f"self-test on {device}: x.grad {x.grad.numpy()} != {expected}")
    return "forward, backward, cross-entropy: ok"


def _lines(full):
    import minigrad as mg
    from . import backend

    yield f"minigrad {mg.__version__}  ({mg.__file__.rsplit('/', 1)[0]})"
    yield f"Python {platform.python_version()} on {platform.platform()}"
    if full:
        yield f"NumPy {np.__version__}"
        blas = _blas_name()
        if blas:
            yield f"BLAS: {blas}"
        numba, text = _version("numba")
        on = backend.numba_enabled() if hasattr(backend, "numba_enabled") else True
        yield f"numba {text}" + ("" if numba is None else ("" if on else " (disabled: MINIGRAD_DISABLE_NUMBA)"))
        yield f"allocator: {backend.host_memory.setting or 'as the process started (MINIGRAD_SYSTEM_MALLOC, or not glibc)'}"
        if backend.EMULATED_CUDA:  # the stand-in is bound to backend.cupy; real CuPy is not imported
            cupy, text = None, "not used: MINIGRAD_CUDA_EMULATOR=1 puts minigrad's CuPy stand-in in its place"
        else:
            cupy, text = _version("cupy")
        yield f"CuPy {text}"
        if cupy is not None:
            for what, call in (("CUDA runtime", lambda: cupy.cuda.runtime.runtimeGetVersion()),
                               ("CUDA driver", lambda: cupy.cuda.runtime.driverGetVersion())):
                try:
                    v = call()
                    yield f"{what} {v // 1000}.{(v % 1000) // 10}"
                except Exception as e:
                    yield f"{what}: unavailable ({type(e).__name__}: {e})".replace("\n", " ")
    yield "devices:"
    yield f"  cpu: {_cpu_name()}"
    usable, text = backend.cuda_status()
    yield f"  cuda: {text}"
    yield "self-test:"
    for device in ["cpu"] + (["cuda"] if usable else []):
        try:
            yield f"  {device}: {_self_test(device)}"
        except Exception:
            yield f"  {device}: FAILED\n" + traceback.format_exc()
            raise SystemExit(1)
    if full:
        yield from _kernel_smoke_tests(usable)


def _kernel_tables(cuda_usable):
    """(label, table, put) for every kernel table: the CPU's, the readable reference, the CUDA C
    one run by the emulator on NumPy arrays, and the CUDA C one on device "cuda" (a GPU, or the
    emulated device) when there is one; ``put`` moves a NumPy array where that table runs."""
    from . import backend

    def on_cuda(a):
        return backend.to_device(a, "cuda")

    yield "cpu", "minigrad.backend.cpu_kernels", np.asarray
    yield "reference", "minigrad.backend.reference", np.asarray
    yield "cuda C, emulated on the CPU", "minigrad.backend.cuda", np.asarray
    if cuda_usable:
        yield f"cuda C on device 'cuda' ({'emulated' if backend.EMULATED_CUDA else 'the GPU'})", \
            "minigrad.backend.cuda", on_cuda


def _kernel_smoke_tests(cuda_usable):
    """One kernel of each table (ReLU, which every table overrides or defines), against NumPy."""
    from . import backend

    x = np.linspace(-2, 2, 1000, dtype=np.float32)
    want = np.maximum(x, 0)
    for label, module_name, put in _kernel_tables(cuda_usable):
        try:
            got = backend.to_device(importlib.import_module(module_name).relu(put(x)), "cpu")
            yield f"  kernels {label}: relu {'ok' if np.array_equal(got, want) else 'WRONG'}"
        except Exception as e:  # no compiler for the emulator, a broken CUDA install, ...
            yield f"  kernels {label}: not available ({type(e).__name__}: {e})".replace("\n", " ")[:300]


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_name():
    try:
        info = np.show_config(mode="dicts")
        blas = info.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:
        return None


def report(full=True, file=None):
    """Print the environment report (``full``) or the short one."""
    file = sys.stdout if file is None else file
    for line in _lines(full):
        print(line, file=file, flush=True)


def doctor():
    """Print what minigrad runs on here and run a smoke test on every device."""
    report(full=True)
