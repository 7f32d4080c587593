"""The MPI engine: collectives on host arrays through mpi4py (``pip install -e ".[distributed]"`` from a clone).

Every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ``Iallgather``,
``Ibarrier``) and returned as a ``Work`` whose ``wait`` polls ``Request.Test`` against the
timeout.  Polling is also what moves the bytes: without an asynchronous progress thread, MPI
advances a request only while some rank is inside an MPI call, which is why
DistributedDataParallel tests its requests each time a gradient becomes ready.

GPU (CuPy) arrays are staged through host memory: copied down, reduced, copied back when the
work completes.  (A CUDA-aware MPI could take device pointers directly; the PyPI mpich is not
one, so minigrad does not assume it.  Use backend="nccl" for GPUs.)

The engine talks on its own duplicate of ``MPI.COMM_WORLD``, so a user's own mpi4py messages
can never be mistaken for minigrad's.
"""
import json

import numpy as np

from .. import backend
from .group import Work, report


def import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            "minigrad.distributed needs mpi4py and an MPI library: "
            'pip install -e ".[distributed]" in a clone of minigrad   (or: pip install mpi4py mpich)'
        ) from e
    return MPI


class MPIEngine:
    """Collectives over an MPI communicator on host (NumPy) arrays."""

    def __init__(self, MPI, comm, timeout):
        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = timeout
        self.ops = {"sum": MPI.SUM, "max": MPI.MAX}

    @classmethod
    def from_world(cls, timeout):
        """An engine on a private duplicate of COMM_WORLD (the ranks ``mpiexec`` started)."""
        MPI = import_mpi()
        engine = cls(MPI, MPI.COMM_WORLD, timeout)
        comm, request = MPI.COMM_WORLD.Idup()
        engine._work("creating minigrad's communicator (MPI_Comm_idup)", request).wait()
        engine.comm = comm
        return engine

    # -- failure -----------------------------------------------------------------------------
    def fail(self, message):
        report(self.rank, self.size, message)
        self.abort()

    def abort(self):
        self.MPI.COMM_WORLD.Abort(1)

    def close(self):
        if self.comm != self.MPI.COMM_WORLD:
            self.comm.Free()

    # -- collectives (arrays are C-contiguous; collectives.py sees to that) ---------------------
    def all_reduce(self, array, op):
        buf, keep = self._host(array)
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.ops[op])
        return self._work(f"all_reduce({op}) of {array.size:,} {array.dtype} values", request,
                          keep, back=(buf, array))

    def broadcast(self, array, src):
        buf, keep = self._host(array)
        request = self.comm.Ibcast(buf, root=src)
        return self._work(f"broadcast from rank {src} of {array.size:,} {array.dtype} values",
                          request, keep, back=(buf, array))

    def all_gather(self, send, recv):
        send_buf, keep_send = self._host(send)
        recv_buf, keep_recv = self._host(recv)
        request = self.comm.Iallgather(send_buf, recv_buf)
        return self._work(f"all_gather of {send.size:,} {send.dtype} values per rank", request,
                          keep_send + keep_recv, back=(recv_buf, recv))

    def barrier(self):
        return self._work("barrier", self.comm.Ibarrier())

    def all_gather_json(self, value):
        """Every rank's ``value`` (anything JSON can hold), as a list indexed by rank."""
        data = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
        lengths = np.empty(self.size, dtype=np.int64)
        self.all_gather(np.array([data.size], dtype=np.int64), lengths).wait()
        padded = np.zeros(int(lengths.max()), dtype=np.uint8)
        padded[:data.size] = data
        out = np.empty((self.size, padded.size), dtype=np.uint8)
        self.all_gather(padded, out).wait()
        return [json.loads(out[r, :lengths[r]].tobytes()) for r in range(self.size)]

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _host(array):
        """A host buffer for ``array`` and what must stay alive until the request completes."""
        if isinstance(array, np.ndarray):
            return array, (array,)
        host = backend.to_device(array, backend.CPU)  # a CuPy array: stage through the host
        return host, (array, host)

    def _work(self, what, request, keep=(), back=None):
        work = Work(self, what, request.Test)
        work.keep = keep  # MPI reads and writes these buffers until the request completes
        if back is not None and back[0] is not back[1]:
            host, device = back
            work.add_done_callback(lambda: device.set(host))
        return work

