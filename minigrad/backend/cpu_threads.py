"""The CPU's cores: the BLAS's thread count, and independent pieces of work run at once.

Most of minigrad's CPU work is parallel inside one call: a large matrix product runs on the
BLAS's threads, a large elementwise kernel on numba's.  Some work is a chain of calls too small
for that, where the parallelism is between chains: the two directions of a bidirectional
recurrent layer share only their input, and each is a loop of small matrix products and gate
kernels (~0.3 ms a step on one core), which a two-thread BLAS splits poorly: forward and
backward of one direction of the MNIST BiLSTM take 25-27 ms on one BLAS thread and 17-18 ms on
two, both directions one after the other 34-37 ms.  ``concurrently`` runs such chains one per
core, each on a one-thread BLAS: both directions then take 26-30 ms, about the time of one.

That needs two things from the libraries:
* a BLAS whose thread count can be set (OpenBLAS, as NumPy's wheels ship it), so that the
  pieces' products do not each ask for every core; with another BLAS the pieces run one after
  another, as before;
* kernels that release the GIL (NumPy's, and numba's declared ``nogil``: the recurrent step
  kernels); others make the threads take turns.  A piece must not call a numba ``parallel``
  kernel: numba's workqueue threading layer cannot be entered from two threads at once (it
  ends the process).
"""
import concurrent.futures
import contextvars
import ctypes
import os
import re
import threading

import numpy as np

_openblas_found = {}


def openblas():
    """(library, symbol prefix, suffix) of the OpenBLAS that NumPy loaded, or None (another BLAS)."""
    if "lib" not in _openblas_found:
        _openblas_found["lib"] = None
        try:
            with open("/proc/self/maps") as f:
                paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", f.read())))
        except OSError:  # not Linux: no /proc (the BLAS's threads are then left alone)
            paths = []
        for path in paths:
            lib = ctypes.CDLL(path)
            for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
                if hasattr(lib, f"{prefix}set_num_threads{suffix}"):
                    _openblas_found["lib"] = (lib, prefix, suffix)
                    break
            if _openblas_found["lib"] is not None:
                break
    return _openblas_found["lib"]


def openblas_call(name, *args, restype=None):
    """Call OpenBLAS's ``openblas_<name>`` (under the prefix and suffix NumPy's build uses)."""
    lib, prefix, suffix = openblas()
    fn = getattr(lib, f"{prefix}{name}{suffix}")
    fn.restype = restype
    return fn(*args)


def blas_threads(n=None):
    """The BLAS's thread count (OpenBLAS only; None elsewhere); with ``n``, set it first."""
    if openblas() is None:
        return None
    if n is not None:
        openblas_call("set_num_threads", ctypes.c_int(int(n)))
    return openblas_call("get_num_threads", restype=ctypes.c_int)


# One region at a time: the BLAS's thread count is one setting for the whole process, so a
# second caller (another thread, or a piece of work that itself calls concurrently) runs its
# pieces one after another instead of changing it under the first.
_region = threading.Lock()
_pool = {}


def _workers(n):
    """A pool of ``n`` threads, kept between calls (starting a thread costs ~180 us on a small
    VM, handing work to a waiting one ~100 us); a forked child makes its own."""
    pool = _pool.get("pool")
    if pool is None or _pool["pid"] != os.getpid() or _pool["size"] < n:
        if pool is not None and _pool["pid"] == os.getpid():
            pool.shutdown(wait=False)  # too small: its idle threads end
        pool = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="minigrad-concurrently")
        _pool.update(pool=pool, pid=os.getpid(), size=n)
    return pool


def concurrently(tasks, like):
    """Run ``tasks`` (callables without arguments) and return their results, in order.

    At once, one thread per task with the BLAS at one thread each, when ``like`` (an array the
    work is on) is a NumPy array, there are at least two tasks and the BLAS has at least two
    threads to hand out; one after another otherwise (a GPU array, one core, a BLAS whose
    threads cannot be set, or another region already running).  Each task sees the caller's
    context (``np.errstate`` included).  The first error raised by a task is raised here, after
    every task has finished."""
    tasks = list(tasks)
    cores = blas_threads() if len(tasks) > 1 and type(like) is np.ndarray else None
    if not cores or cores < 2 or not _region.acquire(blocking=False):
        return [task() for task in tasks]
    try:
        blas_threads(1)
        try:
            width = min(cores, len(tasks))
            # task k runs on thread k % width: thread 0 is the caller, the others the pool's, each
            # in a copy of the caller's context (NumPy's errstate is a context variable)
            futures = [_workers(width - 1).submit(contextvars.copy_context().run, _run_every, tasks, k, width)
                       for k in range(1, width)]
            done = _run_every(tasks, 0, width)
            for f in futures:
                done.update(f.result())
        finally:
            blas_threads(cores)
    finally:
        _region.release()
    for k in range(len(tasks)):
        if done[k][1] is not None:
            raise done[k][1]
    return [done[k][0] for k in range(len(tasks))]


def _run_every(tasks, first, step):
    """{k: (result, error)} for tasks first, first + step, ...: an error stops none of the others."""
    done = {}
    for k in range(first, len(tasks), step):
        try:
            done[k] = (tasks[k](), None)
        except BaseException as e:  # the caller raises the first, once every task has finished
            done[k] = (None, e)
    return done
