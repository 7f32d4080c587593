"""Collectives: every rank calls the same function in the same order, and each gets the result.

    all_reduce(t, op)        t <- op over the ranks' t          (in place; "sum", "mean", "max")
    broadcast(t, src)        t <- rank src's t                  (in place)
    all_gather(out, t)       out[r] <- rank r's t, for every r  (out: a list of world_size tensors)
    barrier()                returns once every rank has called it

Each works on Tensors (their ``.array`` is changed in place and their version bumped, like any
in-place op) and on raw NumPy / CuPy arrays.  With ``async_op=True`` a ``Work`` is returned at
once: the result is there after ``work.wait()``, and meanwhile the caller may compute (this is
how DistributedDataParallel overlaps communication with the backward pass).  Without it the
call returns when the result is there.  Either way, a collective that does not complete within
the group's timeout aborts the job (see group.py).
"""
import numpy as np

from .. import backend
from ..tensor import Tensor
from .group import DistributedError, current


class ReduceOp:
    """The reductions ``all_reduce`` knows (plain strings work too: ``op="mean"``)."""

    SUM = "sum"
    MEAN = "mean"   # a sum divided by the world size (floating dtypes only)
    MAX = "max"


_OPS = (ReduceOp.SUM, ReduceOp.MEAN, ReduceOp.MAX)


def _array(what, x):
    """The array behind ``x`` (a Tensor, or a NumPy/CuPy array) and the Tensor, if any."""
    if isinstance(x, Tensor):
        return x.array, x
    if isinstance(x, np.ndarray) or backend.device_of(x) == backend.CUDA:
        return x, None
    raise TypeError(f"{what}: expected a Tensor or a NumPy/CuPy array, got {type(x).__name__}")


def _contiguous(array):
    """A C-contiguous array the engine can use in place: ``array`` itself when it is one,
    otherwise a copy (and a callback that writes the result back)."""
    if array.flags.c_contiguous:
        return array, None
    buf = backend.array_module(array).ascontiguousarray(array)

    def write_back():
        array[...] = buf
    return buf, write_back


def _modified(tensor):
    def bump():
        tensor._version += 1
    return bump


def _start(what, engine_call, array, tensor):
    """Launch ``engine_call(buffer)`` on a contiguous buffer for ``array``; the Work writes
    the result back into ``array`` (if it had to copy) and bumps ``tensor``'s version."""
    buf, write_back = _contiguous(array)
    try:
        work = engine_call(buf)
    except DistributedError:
        raise
    except Exception as e:  # the engine refused (an MPI datatype error, say): say which call
        raise DistributedError(f"{what} of shape {array.shape} {array.dtype}: {e}") from e
    if write_back is not None:
        work.add_done_callback(write_back)
    if tensor is not None:
        work.add_done_callback(_modified(tensor))
    return work


def _finish(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, async_op=False):
    """Reduce ``tensor`` over all ranks, in place: afterwards every rank holds the sum (or the
    mean, or the elementwise max) of the values the ranks passed in."""
    group = current("all_reduce")
    op = str(op).lower()
    if op not in _OPS:
        raise ValueError(f"all_reduce: unknown op {op!r}; expected one of {_OPS}")
    array, t = _array("all_reduce", tensor)
    if array.dtype.kind not in "iuf" or (op == ReduceOp.MEAN and array.dtype.kind != "f"):
        need = "a floating dtype" if op == ReduceOp.MEAN else "a numeric dtype"
        raise TypeError(f"all_reduce(op={op!r}) needs {need}, got {array.dtype} (shape {array.shape})")
    engine_op = ReduceOp.SUM if op == ReduceOp.MEAN else op
    work = _start("all_reduce", lambda buf: group.engine.all_reduce(buf, engine_op), array, None)
    if op == ReduceOp.MEAN:
        work.add_done_callback(lambda: backend.array_module(array).divide(array, group.size, out=array))
    if t is not None:
        work.add_done_callback(_modified(t))
    return _finish(work, async_op)


def broadcast(tensor, src=0, async_op=False):
    """Overwrite ``tensor`` on every rank with rank ``src``'s values, in place."""
    group = current("broadcast")
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < group.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {group.size}), got {src!r}")
    array, t = _array("broadcast", tensor)
    work = _start("broadcast", lambda buf: group.engine.broadcast(buf, int(src)), array, t)
    return _finish(work, async_op)


def all_gather(tensor_list, tensor, async_op=False):
    """Fill ``tensor_list[r]`` with rank r's ``tensor`` on every rank (PyTorch's order of
    arguments: outputs first).  The outputs must match ``tensor`` in shape, dtype and device."""
    group = current("all_gather")
    array, _ = _array("all_gather", tensor)
    outputs = [_array("all_gather (output)", o) for o in tensor_list]
    if len(outputs) != group.size:
        raise ValueError(f"all_gather: tensor_list has {len(outputs)} entries but the world "
                         f"size is {group.size}; give one output per rank")
    for r, (out, _) in enumerate(outputs):
        if (out.shape, out.dtype, backend.device_of(out)) != (array.shape, array.dtype, backend.device_of(array)):
            raise ValueError(
                f"all_gather: output {r} is {out.shape} {out.dtype} on {backend.device_of(out)} but "
                f"the input is {array.shape} {array.dtype} on {backend.device_of(array)}; they must match"
            )
    xp = backend.array_module(array)
    gathered = xp.empty((group.size,) + array.shape, dtype=array.dtype)
    work = _start("all_gather", lambda buf: group.engine.all_gather(xp.ascontiguousarray(array), buf),
                  gathered, None)

    def scatter():
        for r, (out, t) in enumerate(outputs):
            out[...] = gathered[r]
            if t is not None:
                t._version += 1
    work.add_done_callback(scatter)
    return _finish(work, async_op)


def barrier(async_op=False):
    """Return once every rank has entered the barrier."""
    return _finish(current("barrier").engine.barrier(), async_op)
