"""The C allocator under NumPy's arrays: keep freed memory for the next step.

A training step allocates the same large arrays every time (the MNIST CNN: an 18 MB column
matrix for its second convolution, 11 MB activations, their gradients) and frees them before
the next step.  glibc's malloc, as it comes, hands blocks above its mmap threshold (128 KB,
raised at run time up to 32 MB) to the kernel on every free and gives the top of the heap back
once more than twice that threshold is free.  Whether a step's big arrays then land in
fresh mappings, whose every page the kernel zeroes on first touch, depends on what else happens
to sit on the heap: a script training the MNIST CNN on one fixed batch paid 14,000 page
faults per step and 61 ms instead of 28 ms; examples/mnist_cnn.py (a data loader, new
batches) ran at 34 ms a step either way (docs/benchmarks.md, "The allocator").  Speed should
not hang on that.

``keep_freed_memory()`` sets the two thresholds so that blocks under 256 MB come from the heap
and freed memory goes back to the system only beyond 1 GB free: after the first step every
array lands in memory that is already mapped.  The price is that a process keeps its peak
heap (up to 1 GB more) until it ends.  minigrad calls it once, when it is imported;
``MINIGRAD_SYSTEM_MALLOC=1`` leaves malloc as it was.  Other C libraries (musl, macOS) have no
such setting: nothing is changed there.
"""
import ctypes

from .. import _env

MMAP_THRESHOLD = 256 << 20   # blocks below this come from the heap, never from a fresh mmap
TRIM_THRESHOLD = 1 << 30     # the heap is given back only when this much of its top is free
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc malloc.h)

setting = None  # what keep_freed_memory() did, in words (None: nothing)


def keep_freed_memory():
    """Set glibc malloc's thresholds (above); returns the setting in words, or None where
    there is no glibc (or the call was refused).  Safe to call more than once."""
    global setting
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return None
    setting = (f"glibc malloc: mmap threshold {MMAP_THRESHOLD >> 20} MB, trim threshold {TRIM_THRESHOLD >> 20} MB"
               if ok else None)
    return setting


def configure():
    """What minigrad does at import: keep freed memory unless MINIGRAD_SYSTEM_MALLOC is set."""
    if not _env.flag("MINIGRAD_SYSTEM_MALLOC"):
        keep_freed_memory()
