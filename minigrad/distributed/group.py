"""The process group: who we are (rank), how many we are (world size), which engine moves the
bytes (MPI or NCCL), and how long anyone may wait for the others (the timeout).

Failure policy.  A data-parallel job is only as alive as its slowest rank: if one rank raises,
dies or stalls, the others would wait for it inside their next collective forever.  So

* every collective is non-blocking underneath, and ``Work.wait`` polls it against a deadline
  (``timeout``); past it, the rank prints what it was waiting for and aborts the whole job;
* an uncaught exception on any rank prints its traceback as usual, then aborts the job
  (``sys.excepthook``), instead of the dying rank blocking in ``MPI_Finalize`` at exit;
* a rank that is killed outright is noticed by ``mpiexec``, which ends the others, and failing
  that by the others' timeouts.

Aborting is ``MPI_Abort``: ``mpiexec`` then kills every rank and exits non-zero.
"""
import datetime
import sys
import time

from .. import _env

#: seconds a collective may take before the job is aborted (PyTorch's NCCL default, 10 min):
#: long enough for one rank to evaluate or save a checkpoint while the others wait.
DEFAULT_TIMEOUT = 600.0
BACKENDS = ("mpi", "nccl")
#: how long Work.wait polls without sleeping (a 100 MB all-reduce over shared memory takes
#: tens of milliseconds; after that, the wait is for a slower rank, not for the bytes)
SPIN_SECONDS = 0.2


class DistributedError(RuntimeError):
    """Misuse of minigrad.distributed (not initialized, bad arguments for a collective)."""


class _State:
    group = None


class ProcessGroup:
    """The ranks of this job and the engine they talk through (one per process)."""

    def __init__(self, backend, engine, host, timeout):
        self.backend = backend   # "mpi" or "nccl"
        self.engine = engine     # runs the collectives on the tensors' device
        self.host = host         # an MPI engine on host memory (bootstrapping, small exchanges)
        self.rank = host.rank
        self.size = host.size
        self.timeout = timeout

    def fail(self, message):
        """Print ``message`` naming this rank, then abort every rank of the job."""
        self.engine.fail(message)


def report(rank, size, message):
    """The last words of a failing rank, on stderr."""
    sys.stderr.write(f"\nminigrad.distributed: rank {rank} of {size}: {message}\n"
                     "Aborting all ranks.\n")
    sys.stderr.flush()
    # mpiexec forwards each rank's output through a pipe; MPI_Abort makes it kill every rank
    # at once, and output still in the pipe can be lost: give it a moment to pass this on
    time.sleep(0.5)


def is_available():
    """True when mpi4py (the [distributed] extra) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_initialized():
    return _State.group is not None


def current(what):
    """The process group, or a clear error naming ``what`` needed it."""
    group = _State.group
    if group is None:
        raise DistributedError(
            f"{what}: the process group is not initialized; call "
            "minigrad.distributed.init_process_group('mpi') first (and launch with mpiexec)"
        )
    return group


def get_rank():
    """This process's index in the job, 0 .. world_size - 1 (rank 0 prints and saves)."""
    return current("get_rank").rank


def get_world_size():
    """The number of processes in the job."""
    return current("get_world_size").size


def _seconds(timeout):
    if timeout is None:
        env = _env.setting("MINIGRAD_DIST_TIMEOUT")
        return float(env) if env else DEFAULT_TIMEOUT
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"init_process_group: timeout must be a positive number of seconds or a "
                         f"datetime.timedelta, got {timeout!r}")
    return float(timeout)


def init_process_group(backend="mpi", timeout=None):
    """Join the job started by the launcher (``mpiexec -n N python train.py``).

    ``backend``: ``"mpi"`` (CPU tensors; GPU tensors are staged through host memory) or
    ``"nccl"`` (GPU tensors, one GPU per rank: rank r uses GPU r mod GPUs-per-node).
    Rank and world size come from MPI (a plain ``python train.py`` is a job of one).
    ``timeout``: seconds (or a ``datetime.timedelta``) any collective may take before the job
    is aborted; default ``$MINIGRAD_DIST_TIMEOUT`` or 600.
    """
    if _State.group is not None:
        raise DistributedError("init_process_group: already initialized "
                               "(call destroy_process_group() first to start again)")
    name = str(backend).lower()
    if name not in BACKENDS:
        raise ValueError(f"init_process_group: unknown backend {backend!r}; expected one of {BACKENDS}")
    seconds = _seconds(timeout)
    if name == "nccl":
        from . import nccl
        nccl.import_nccl()  # no CuPy: say so before starting MPI
    from . import mpi  # mpi4py is imported here, never when minigrad is

    host = mpi.MPIEngine.from_world(seconds)
    engine = nccl.NCCLEngine(host, seconds) if name == "nccl" else host
    group = ProcessGroup(name, engine, host, seconds)
    _State.group = group
    _AbortOnUncaught.install()
    return group


def destroy_process_group():
    """Leave the group (frees the NCCL communicator); MPI itself is finalized at exit."""
    group = _State.group
    if group is None:
        return
    _State.group = None
    _AbortOnUncaught.uninstall()
    if group.engine is not group.host:
        group.engine.close()
    group.host.close()


class _AbortOnUncaught:
    """``sys.excepthook`` while a group exists: the traceback as usual, then abort the job, so
    the other ranks stop at once instead of waiting for this one until their timeout."""

    previous = None

    @classmethod
    def install(cls):
        if cls.previous is None:
            cls.previous = sys.excepthook
            sys.excepthook = cls.hook

    @classmethod
    def uninstall(cls):
        if cls.previous is not None:
            sys.excepthook = cls.previous
            cls.previous = None

    @classmethod
    def hook(cls, exc_type, exc, tb):
        (cls.previous or sys.__excepthook__)(exc_type, exc, tb)
        group = _State.group
        if group is not None and group.size > 1:
            group.fail(f"uncaught {exc_type.__name__} (traceback above)")


class Work:
    """A collective in flight (what the ``async_op=True`` forms return).

    ``is_completed()`` asks without blocking (and lets MPI make progress); ``wait()`` blocks
    until it is done, at most the group's timeout, and then aborts the job with a message
    saying what never completed.  Completion callbacks (copying a result into place, dividing
    a sum into a mean) run once, in order, on the thread that observes completion.

    A collective on a GPU stream (NCCL) gives ``order``: a function that makes the GPU work
    queued from now on wait for the collective.  ``wait()`` then calls it and returns at once,
    as PyTorch's NCCL work does: the host never waits for the GPU, and the callbacks' copies
    are queued behind the collective.
    """

    __slots__ = ("what", "keep", "_engine", "_test", "_callbacks", "_done", "_order")

    def __init__(self, engine, what, test, order=None):
        self._engine = engine  # its timeout, and its fail(message) that aborts the job
        self.what = what
        self.keep = ()         # buffers the engine uses until completion
        self._test = test
        self._order = order
        self._callbacks = []
        self._done = False

    def add_done_callback(self, fn):
        """Run ``fn()`` when the collective completes (at once if it already has)."""
        if self._done:
            fn()
        else:
            self._callbacks.append(fn)
        return self

    def is_completed(self):
        if not self._done and self._test():
            self._done = True
            for fn in self._callbacks:
                fn()
            self._callbacks = None
        return self._done

    def wait(self, timeout=None):
        """Block until done; past ``timeout`` (default: the group's), abort the job.  (A GPU
        collective: order later GPU work after it, without blocking; see the class.)"""
        if self._done:
            return True
        if self._order is not None:
            self._order()
            self._done = True
            for fn in self._callbacks:
                fn()
            self._callbacks = None
            return True
        if self.is_completed():
            return True
        limit = self._engine.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        nap = 1e-5
        while not self.is_completed():
            waited = time.monotonic() - start
            if waited > limit:
                self._engine.fail(
                    f"timed out after {limit:g} s waiting for {self.what}. Another rank has "
                    "stopped, died, or is not running the same collectives in the same order "
                    "(raise the limit with init_process_group(timeout=...) or "
                    "MINIGRAD_DIST_TIMEOUT if it was only slow)"
                )
            # Each test moves the message along (MPI progresses only inside MPI calls), so
            # test back to back while a transfer is plausibly running; a rank still waiting
            # after that waits for a slower rank, and naps so as to leave its core to others.
            if waited > SPIN_SECONDS:
                time.sleep(nap)
                nap = min(2 * nap, 1e-3)
        return True

    def __repr__(self):
        return f"<Work {self.what}: {'done' if self._done else 'in flight'}>"
