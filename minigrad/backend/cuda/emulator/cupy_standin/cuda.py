"""``cupy.cuda`` of the stand-in: one emulated device, streams, events, the runtime's queries.

The emulated device runs every kernel to completion before the launch returns, so streams
and events have nothing to wait for; they exist so that code written for a GPU runs unchanged,
and every call that would make the host wait on a GPU (``Stream.synchronize``,
``Device.synchronize``, ``Event.synchronize``, ``runtime.deviceSynchronize``) is counted
(transfers.py) and raises a kernel's pending failure, as CUDA does.
"""
import os
import time

from . import transfers
from .transfers import CUDARuntimeError

#: What the emulated device reports.  One block runs at a time on the CPU, so a small
#: multiprocessor count keeps grid-stride launches to a few blocks (minigrad sizes its grids
#: from it); the compute capability is the H100's, whose limits the emulator checks.
NAME = "minigrad CUDA emulator (kernels run on the CPU)"
MULTIPROCESSOR_COUNT = 1
COMPUTE_CAPABILITY = (9, 0)


def _host_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


class Device:
    """``cupy.cuda.Device(0)``: the one emulated GPU (any other id raises, as CUDA does)."""

    def __init__(self, device=None):
        device = 0 if device is None else int(device)
        if device != 0:
            raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal (the emulator has one device, 0)")
        self.id = 0

    @property
    def attributes(self):
        return {"MultiProcessorCount": MULTIPROCESSOR_COUNT, "MaxThreadsPerBlock": 1024,
                "MaxSharedMemoryPerBlock": 48 * 1024, "WarpSize": 32,
                "ComputeCapabilityMajor": COMPUTE_CAPABILITY[0], "ComputeCapabilityMinor": COMPUTE_CAPABILITY[1]}

    @property
    def compute_capability(self):
        return f"{COMPUTE_CAPABILITY[0]}{COMPUTE_CAPABILITY[1]}"

    @property
    def mem_info(self):
        total = _host_memory()
        return total, total

    def synchronize(self):
        transfers.note("sync", "Device.synchronize")

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __int__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id} (emulated)>"


class Event:
    """``cupy.cuda.Event``: records the host clock when recorded (the work before it is done by
    then, since emulated launches are synchronous)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.disable_timing = disable_timing
        self._time = None

    def record(self, stream=None):
        self._time = time.perf_counter()

    def synchronize(self):
        transfers.note("sync", "Event.synchronize")

    @property
    def done(self):
        """cudaEventQuery: never waits (not counted)."""
        return True

    @property
    def ptr(self):
        return id(self)


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events (cupy.cuda.get_elapsed_time)."""
    if start_event._time is None or end_event._time is None:
        raise CUDARuntimeError("cudaErrorInvalidResourceHandle: the events were not both recorded")
    if start_event.disable_timing or end_event.disable_timing:
        raise CUDARuntimeError("cudaErrorInvalidResourceHandle: an event was created with disable_timing=True")
    return (end_event._time - start_event._time) * 1e3


class Stream:
    """``cupy.cuda.Stream``: ``with stream:`` makes it current; ``Stream.null`` is the default."""

    null = None  # set below
    _current = []

    def __init__(self, null=False, non_blocking=False, ptr=0, priority=0):
        self.ptr = 0 if null else id(self)

    def synchronize(self):
        transfers.note("sync", "Stream.synchronize")

    @property
    def done(self):
        """cudaStreamQuery: never waits (not counted)."""
        return True

    def record(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    def use(self):
        Stream._current[:] = [self]
        return self

    def __enter__(self):
        Stream._current.append(self)
        return self

    def __exit__(self, *exc):
        Stream._current.pop()
        return False

    def __repr__(self):
        return f"<Stream {self.ptr} (emulated device)>"


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return Stream._current[-1] if Stream._current else Stream.null


def get_device_id():
    return 0


def is_available():
    return True


class _Runtime:
    """``cupy.cuda.runtime``: the queries minigrad makes."""

    CUDARuntimeError = CUDARuntimeError
    is_hip = False

    @staticmethod
    def getDeviceCount():  # noqa: N802  (CUDA's names)
        return 1

    @staticmethod
    def getDevice():  # noqa: N802
        return 0

    @staticmethod
    def getDeviceProperties(device):  # noqa: N802
        Device(device)  # an invalid ordinal raises
        return {"name": NAME.encode(), "major": COMPUTE_CAPABILITY[0], "minor": COMPUTE_CAPABILITY[1],
                "multiProcessorCount": MULTIPROCESSOR_COUNT, "totalGlobalMem": _host_memory(),
                "maxThreadsPerBlock": 1024, "sharedMemPerBlock": 48 * 1024, "warpSize": 32}

    @staticmethod
    def runtimeGetVersion():  # noqa: N802
        """0: the emulator is not a CUDA runtime."""
        return 0

    @staticmethod
    def driverGetVersion():  # noqa: N802
        """0: there is no CUDA driver either."""
        return 0

    @staticmethod
    def deviceSynchronize():  # noqa: N802
        transfers.note("sync", "runtime.deviceSynchronize")


runtime = _Runtime()
