"""What the benchmarks share: machine details, clocks, interleaved timing, statistics, tables,
the MNIST arrays and the training-step loop.

Timing rules (why the numbers can be trusted, and how far):

* every contender runs once before it is timed (warm-up: numba compilation, cuBLAS handles,
  CUDA module loading, first-touch page faults);
* contenders are interleaved: round r times a, b, c, then b, c, a, ... so that a slow spell of
  a shared machine hits every contender alike (and none always runs right after the same one);
* every sample starts on a settled machine: ``settle`` seconds of sleep before it (0.2 s by
  default) let the previous contender's idle threads stop spinning (OpenBLAS's worker spins
  ~0.1 s after each product, an OpenMP pool a while after each parallel region) instead of
  taking a core from the next contender;
* one sample runs a call ``inner`` times back to back, ``inner`` chosen so a sample lasts at
  least ``min_sample`` seconds (a 5 us kernel is not timed with a 1 us-resolution clock);
* the GPU is timed with CUDA events recorded on the stream around the calls, after a
  synchronisation (the host clock would time the launch, not the kernel), and the sample
  ends with a synchronisation on the end event;
* we report the median and the spread (interquartile range over the median): ratios of
  medians are what compare contenders; a spread above ~10% says the machine was busy.
"""
import contextlib
import ctypes
import datetime
import importlib.util
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

from minigrad.backend import cpu_threads
from minigrad.backend.cpu_threads import blas_threads  # noqa: F401  (the benchmarks' thread settings)


# ----------------------------------------------------------------------------------------
# The machine
def prepare_process():
    """What every benchmark does first: import minigrad, which keeps freed memory for reuse
    (minigrad/backend/host_memory.py; MINIGRAD_SYSTEM_MALLOC=1 times malloc as it comes).
    Two frameworks timed in turn in one process would otherwise push each other's large
    temporaries into fresh mmaps, and each step would pay thousands of page faults."""
    import minigrad  # noqa: F401


def machine_info():
    """A dict of what the numbers depend on: CPU, cores, BLAS (and its thread/core settings),
    library versions and thread counts, the GPU and its driver when there is one."""
    import minigrad as mg
    from minigrad import diagnostics
    from minigrad.backend import cpu_kernels, host_memory

    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": diagnostics._cpu_name(),
        "cores": os.cpu_count(),
        "simd": _simd(),
        "caches": _caches(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas_line(diagnostics._blas_name() or "unknown"),
        "minigrad": mg.__version__,
    }
    env = {k: v for k, v in sorted(os.environ.items())
           if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "NUMBA_", "MINIGRAD_CPU", "MINIGRAD_DISABLE"))}
    if env:
        info["env"] = env
    try:
        import numba

        try:  # the layer numba's pool started with (it can differ from the one configured)
            layer = numba.threading_layer()
        except ValueError:  # not started yet: the one it will start with
            layer = numba.config.THREADING_LAYER
        info["numba"] = f"{numba.__version__} ({numba.get_num_threads()} threads, layer {layer}" + \
                        ("" if cpu_kernels.use_numba() else ", disabled") + ")"
    except ImportError:
        info["numba"] = "not installed"
    try:
        import torch

        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = "not installed"
    info["allocator"] = host_memory.setting or "as the process started"
    usable, gpu = mg.backend.cuda_status()
    info["gpu"] = gpu if usable else f"none ({gpu})"
    if usable:
        xp = gpu_module()
        info["cupy"] = getattr(xp, "__version__", xp.__name__)
        for key, name in (("cuda_runtime", "runtimeGetVersion"), ("cuda_driver", "driverGetVersion")):
            try:
                v = getattr(xp.cuda.runtime, name)()
            except Exception as e:  # a stand-in for CuPy may not have it
                info[key] = f"unknown ({type(e).__name__})"
                continue
            info[key] = f"{v // 1000}.{(v % 1000) // 10}"
    return info


def _simd():
    """The widest vector instruction sets the CPU reports (what the BLAS and numba can use)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    return " ".join(name for name in ("avx512f", "avx2", "fma", "neon") if name in flags) or "none listed"


def _caches():
    """Cache sizes of CPU 0 (L1d, L2, L3) from sysfs: a benchmark meant to stream from memory
    must use inputs larger than the last level."""
    found = []
    for index in range(8):
        base = f"/sys/devices/system/cpu/cpu0/cache/index{index}/"
        try:
            with open(base + "level") as f:
                level = f.read().strip()
            with open(base + "type") as f:
                kind = f.read().strip()
            with open(base + "size") as f:
                size = f.read().strip()
        except OSError:
            break
        if kind != "Instruction":
            found.append(f"L{level} {size}")
    return ", ".join(found) or "unknown"


# ----------------------------------------------------------------------------------------
# Thread pools: the BLAS (OpenBLAS as NumPy ships it: minigrad/backend/cpu_threads.py), numba, PyTorch
def _blas_line(name):
    if cpu_threads.openblas() is None:
        return name
    core = cpu_threads.openblas_call("get_corename", restype=ctypes.c_char_p).decode()
    return f"{name} ({core} kernels, {blas_threads()} threads)"


@contextlib.contextmanager
def thread_settings(blas=None, numba=None, torch=None):
    """Run the block with these thread counts (None: leave that pool alone), then restore.
    A pool whose library is absent (no OpenBLAS symbols, no PyTorch) is left alone too."""
    before = {}
    if blas is not None and cpu_threads.openblas() is not None:
        before["blas"] = blas_threads()
        blas_threads(blas)
    if numba is not None:
        import numba as nb

        # set_num_threads starts numba's thread pool: the kernel table first, which picks the
        # pool's layer (cpu_kernels.py: workqueue; started before it, numba takes OpenMP, and a
        # two-thread GPT step measured 100-140 ms instead of 48-69)
        from minigrad.backend import cpu_kernels  # noqa: F401

        before["numba"] = nb.get_num_threads()
        nb.set_num_threads(numba)
    if torch is not None and importlib.util.find_spec("torch") is not None:
        import torch as th

        before["torch"] = th.get_num_threads()
        th.set_num_threads(torch)
    try:
        yield
    finally:
        if "blas" in before:
            blas_threads(before["blas"])
        if "numba" in before:
            import numba as nb

            nb.set_num_threads(before["numba"])
        if "torch" in before:
            import torch as th

            th.set_num_threads(before["torch"])


def parse_threads(spec):
    """'2' -> every pool at 2 threads; 'blas=2,numba=1,torch=2' -> each as given."""
    if spec.isdigit():
        n = int(spec)
        return {"blas": n, "numba": n, "torch": n}
    settings = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        if name not in ("blas", "numba", "torch") or not value.isdigit():
            raise ValueError(f"thread setting {spec!r}: expected N or blas=N,numba=N,torch=N")
        settings[name] = int(value)
    return settings


def machine_line(info):
    """One or two lines of ``machine_info()`` for a terminal or a Markdown header."""
    line = (f"{info['cpu']}, {info['cores']} cores ({info['simd']}; {info['caches']}), BLAS {info['blas']}; "
            f"Python {info['python']}, "
            f"numpy {info['numpy']}, numba {info['numba']}, torch {info['torch']}; GPU: {info['gpu']}")
    if "cupy" in info:
        line += f" (cupy {info['cupy']}, CUDA runtime {info['cuda_runtime']}, driver {info['cuda_driver']})"
    if "env" in info:
        line += "; " + " ".join(f"{k}={v}" for k, v in info["env"].items())
    line += f"; allocator: {info['allocator']}"
    return line + f"; {info['date']}"


def machine():
    """The machine in one line (kept for scripts that print it above their table)."""
    return machine_line(machine_info())


# ----------------------------------------------------------------------------------------
# Devices and clocks
def cuda_usable():
    """True when minigrad sees a real CUDA GPU (the CPU emulator of our CUDA C does not count:
    it checks kernels, it is not a device to time)."""
    import minigrad as mg

    return mg.cuda_available() and not mg.backend.EMULATED_CUDA


def gpu_module():
    """The CuPy module minigrad's device "cuda" runs on: CuPy itself, or under
    MINIGRAD_CUDA_EMULATOR=1 the emulator's stand-in with CuPy's API (so the GPU code of the
    benchmarks runs there too, slowly)."""
    from minigrad import backend

    return backend.CUDA.xp


def cpu_clock(fn, inner):
    """Seconds per call of ``fn`` on the host clock, over ``inner`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def process_clock(fn, inner):
    """Seconds per call of ``fn`` in CPU time of this process (all its threads).  On a machine
    shared with other work, and with every pool at one thread, this leaves out the time the
    other processes take from us; with more threads it also counts threads that spin while
    they wait, so compare like with like."""
    start = time.process_time()
    for _ in range(inner):
        fn()
    return (time.process_time() - start) / inner


CLOCKS = {"wall": cpu_clock, "process": process_clock}


def cupy_clock(fn, inner):
    """Seconds per call of GPU work ``fn`` queues on CuPy's current stream: CUDA events
    around the calls, after a device synchronisation (nothing earlier is still queued)."""
    cupy = gpu_module()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    cupy.cuda.Device().synchronize()
    start.record()
    for _ in range(inner):
        fn()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) * 1e-3 / inner


def torch_cuda_clock(fn, inner):
    """As cupy_clock, for work PyTorch queues on its current stream."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(inner):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e-3 / inner


def synchronize(device):
    """Wait for everything queued on ``device`` (nothing to do on the CPU)."""
    if device == "cuda":
        gpu_module().cuda.Device().synchronize()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:
            pass


# ----------------------------------------------------------------------------------------
# Interleaved timing and statistics
def calibrate(sample, min_sample):
    """How many calls make one sample last at least ``min_sample`` seconds (``sample(inner)``
    returns seconds per call); at least 1."""
    per_call = sample(1)
    return max(1, min(1_000_000, math.ceil(min_sample / max(per_call, 1e-9))))


# Seconds of sleep before each sample (the timing rules above); the CLIs' --settle sets it.
SETTLE = 0.2


def interleaved(samplers, repeat, on_sample=None, settle=None):
    """``samplers``: name -> function() returning one sample (seconds per call).  Takes
    ``repeat`` samples of each, in rounds, the order rotated by one every round, each after
    ``settle`` seconds of sleep (default SETTLE); returns name -> list of samples.
    ``on_sample()`` is called after each sample (a progress bar)."""
    settle = SETTLE if settle is None else settle
    names = list(samplers)
    times = {name: [] for name in names}
    for r in range(repeat):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if settle > 0:
                time.sleep(settle)
            times[name].append(samplers[name]())
            if on_sample is not None:
                on_sample()
    return times


def summary(samples):
    """median, min, max, interquartile range and spread (IQR / median) of a list of seconds."""
    samples = sorted(samples)
    median = statistics.median(samples)
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = median
    return {"median": median, "min": samples[0], "max": samples[-1], "q1": q1, "q3": q3,
            "spread": (q3 - q1) / median if median > 0 else 0.0, "samples": samples}


def measure(calls, repeat, min_sample=0.0, warm_up=True, on_sample=None, settle=None):
    """``calls``: name -> (function, clock).  Warm each up (unless done already), choose how
    many calls make one sample last ``min_sample`` seconds, take ``repeat`` interleaved
    samples of each (``settle``: see interleaved); return name -> summary (seconds per call)
    with ``inner`` added."""
    samplers, inners = {}, {}
    for name, (fn, clock) in calls.items():
        if warm_up:
            fn()
        sample = (lambda fn=fn, clock=clock: lambda inner: clock(fn, inner))()
        inners[name] = inner = calibrate(sample, min_sample) if min_sample > 0 else 1
        samplers[name] = (lambda sample=sample, inner=inner: lambda: sample(inner))()
    times = interleaved(samplers, repeat, on_sample, settle)
    return {name: dict(summary(t), inner=inners[name]) for name, t in times.items()}


def timed(fns, repeat):
    """Time each of ``fns`` (a dict name -> function) ``repeat`` times after one warm-up each,
    interleaved, on the host clock (a function that queues GPU work must synchronise before
    it returns); return {name: (median seconds, all times)}."""
    stats = measure({name: (fn, cpu_clock) for name, fn in fns.items()}, repeat)
    return {name: (s["median"], s["samples"]) for name, s in stats.items()}


def ratio_spread(a, b):
    """The ratio of two summaries' medians and its relative spread (the two spreads combined,
    as for a quotient of independent measurements)."""
    return a["median"] / b["median"], math.hypot(a["spread"], b["spread"])


# ----------------------------------------------------------------------------------------
# Output
def table(rows, headers):
    """A Markdown table (pastes straight into docs/benchmarks.md; reads well in a terminal)."""
    widths = [max([len(str(h))] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in rows])


def write(path, text):
    """Write ``text`` to the file ``path``, or to stdout when ``path`` is '-'."""
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w") as f:
            f.write(text)


def progress(total, desc):
    """A progress bar on stderr (tqdm; hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=None)


def fmt_time(seconds):
    """Seconds in the unit that reads best: 12.3 us, 4.56 ms, 1.23 s."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale or unit == "us":
            return f"{seconds / scale:.3g} {unit}"


# ----------------------------------------------------------------------------------------
# Training workloads
def mnist_arrays(limit=None, image_shape=(784,)):
    """Training images (float32 in [0, 1]) and labels: real MNIST when it can be found
    (MINIGRAD_DATA / cache), else random data of the same shape (timing does not depend on
    the values)."""
    x, y, source = mnist_uint8(limit)
    x = x.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(x.reshape((len(x),) + image_shape)), y, source


def mnist_uint8(limit=None):
    """(images uint8 (N, 28, 28), labels int64 (N,), where they came from)."""
    try:
        from minigrad.data import MNIST

        ds = MNIST(train=True, download=False)
        x = np.asarray(ds.data[:limit], dtype=np.uint8)
        y = np.asarray(ds.targets[:limit], dtype=np.int64)
        return x, y, "real MNIST"
    except Exception as exc:  # no files: any data of the right shape times the same
        n = limit or 60000
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n),
                f"random data ({type(exc).__name__})")


def train_steps(model, optimizer, batches, cross_entropy):
    """One pass of training steps; the same code drives minigrad and PyTorch (same API)."""
    for xb, yb in batches:
        loss = cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
