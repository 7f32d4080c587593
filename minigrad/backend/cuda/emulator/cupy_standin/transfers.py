"""Every host transfer and synchronisation on the emulated device, counted where it happens.

On a GPU, a line such as ``loss.item()`` or ``if (x > 0).any():`` makes the host wait until the
GPU has finished everything queued so far: the pipeline drains, and a training step that does it
runs at the speed of its slowest round trip.  The stand-in cannot be slow in the same way, so
it counts instead: every download (``get``, ``asnumpy``, ``item``, ``tolist``, ``float()``,
``bool()``, printing), every upload (``asarray`` of host data, a list or NumPy array used as an
index) and every explicit synchronisation (``Stream.synchronize``, ``Device.synchronize``,
``Event.synchronize``, boolean-mask indexing, whose result size the host must read), each under
the line of code outside the stand-in that caused it::

    from minigrad.backend.cuda.emulator import cupy_standin
    with cupy_standin.counting() as c:
        train_step()
    assert c.total == 0, c          # str(c) lists the lines that transferred or waited

They are also where a kernel's failure reaches the host.  A GPU runs kernels asynchronously: a
kernel that traps (an index out of range, a device-side assert) does not stop the launch line;
the error comes out of the next call that waits for the GPU.  The stand-in does the same: a
failed emulated kernel is kept (``kernel_failed``) and raised as ``CUDARuntimeError`` by the next
transfer or synchronisation.  (A GPU's context is then lost for good and the process must
restart; the stand-in forgets the error once raised, so a test session can go on.)
"""
import collections
import contextlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_active = []  # the open counting() blocks
_failed = []  # a kernel's error, waiting for the next transfer or synchronisation


class CUDARuntimeError(RuntimeError):
    """An error of the (emulated) CUDA runtime, as ``cupy.cuda.runtime.CUDARuntimeError``."""


def kernel_failed(error):
    """Keep a kernel's failure until the host next waits for the device (the first one wins, as
    the first error is the one a GPU reports)."""
    if not _failed:
        _failed.append(error)


class Count:
    """What happened inside a ``counting()`` block: ``sites`` maps (kind, what, where) to how
    many times; kind is "download", "upload" or "sync", where is "file:line in function"."""

    def __init__(self):
        self.sites = collections.Counter()

    @property
    def total(self):
        return sum(self.sites.values())

    def of_kind(self, kind):
        return sum(n for (k, _, _), n in self.sites.items() if k == kind)

    def __str__(self):
        if not self.sites:
            return "no host transfers or synchronisations"
        return "\n".join(f"{n:5d} x {kind} ({what}) at {where}"
                         for (kind, what, where), n in self.sites.most_common())

    __repr__ = __str__


@contextlib.contextmanager
def counting():
    """Count the transfers and synchronisations made inside the block (blocks may nest)."""
    count = Count()
    _active.append(count)
    try:
        yield count
    finally:
        _active.remove(count)


def note(kind, what):
    """Record one transfer or synchronisation of ``kind`` ("download", "upload", "sync"), and
    raise the error of a kernel that failed since the host last waited."""
    if _active:
        where = _caller()
        for count in _active:
            count.sites[(kind, what, where)] += 1
    if _failed:
        raise _failed.pop()


def _caller():
    """The first frame outside the stand-in: the line that asked for the transfer."""
    frame = sys._getframe(2)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _HERE:
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
