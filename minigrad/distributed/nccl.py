"""The NCCL engine: collectives on GPU (CuPy) arrays through ``cupy.cuda.nccl``.

One process per GPU.  Start-up, over MPI (the host engine):

1. each rank sends its host name; a rank's *local rank* is how many lower ranks share its
   host, and it takes GPU ``local_rank`` of that host (so ``mpiexec -n 8`` on two 4-GPU nodes
   uses every GPU once);
2. rank 0 asks NCCL for a unique id (128 bytes) and broadcasts it; every rank then joins the
   NCCL communicator with it (``ncclCommInitRank``).

Collectives run on a side stream, so they overlap the kernels still queued on the compute
stream: the side stream first waits for an event recorded on the current stream (the inputs
are ready once the work queued so far is done), NCCL runs, and an event recorded after it tells
``Work.is_completed`` (``cudaEventQuery``, never blocking) when the result is there.
``Work.wait`` does not block the host either: it makes the compute stream wait for that event,
so DistributedDataParallel's backward ends without a host synchronisation.  The
arrays are kept alive by the Work until then, so CuPy's memory pool cannot hand them out while
NCCL still writes them.

Unverified here: this file has never run on a GPU.  Its error paths are tested, and its calls
into CuPy (names, argument order, stream and event order) are tested against fakes written from
CuPy's documented signatures; whether NCCL then moves the right bytes is not.
``ncclCommInitRank`` itself blocks without a timeout; an NCCL error raised asynchronously (a
peer died) is reported by ``check_async_error`` while a Work is polled, and aborts the job.
"""
import numpy as np

from .group import DistributedError, Work, report

UNIQUE_ID_BYTES = 128


def import_nccl():
    """CuPy and its NCCL bindings, or a clear error saying what is missing."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a CUDA installation that CuPy cannot load
        raise DistributedError(
            "init_process_group('nccl') needs CuPy with NCCL and an NVIDIA GPU "
            f"(pip install -e \".[gpu]\" in a clone); CuPy could not be imported: {e}. "
            "On CPUs use init_process_group('mpi')."
        ) from e
    try:
        from cupy.cuda import nccl
    except Exception as e:
        nccl = None
        reason = str(e)
    else:
        reason = "this CuPy was built without NCCL"
    if nccl is None or not getattr(nccl, "available", True):
        raise DistributedError(
            f"init_process_group('nccl'): CuPy's NCCL bindings are unavailable ({reason}); "
            "install NCCL for your CUDA version (pip install nvidia-nccl-cu12) or use 'mpi'"
        )
    return cupy, nccl


class NCCLEngine:
    """Collectives over an NCCL communicator, one GPU per rank, on a side stream."""

    def __init__(self, host, timeout):
        cupy, nccl = import_nccl()
        self.cupy, self.nccl, self.host = cupy, nccl, host
        self.rank, self.size, self.timeout = host.rank, host.size, timeout
        self.comm = None
        names = host.all_gather_json(host.MPI.Get_processor_name())
        local_rank, local_size = names[:self.rank].count(names[self.rank]), names.count(names[self.rank])
        gpus = cupy.cuda.runtime.getDeviceCount()
        if local_size > gpus:
            raise DistributedError(
                f"init_process_group('nccl'): {local_size} ranks run on host {names[self.rank]!r} "
                f"but it has {gpus} GPU(s); NCCL needs one GPU per rank (launch fewer ranks per host)"
            )
        self.device = cupy.cuda.Device(local_rank)
        self.device.use()
        uid = np.zeros(UNIQUE_ID_BYTES, dtype=np.int8)
        if self.rank == 0:
            uid[:] = nccl.get_unique_id()
        host.broadcast(uid, 0).wait()
        self.comm = nccl.NcclCommunicator(self.size, tuple(int(b) for b in uid), self.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.types = {np.dtype(k): getattr(nccl, v) for k, v in (
            ("int8", "NCCL_INT8"), ("uint8", "NCCL_UINT8"), ("int32", "NCCL_INT32"),
            ("uint32", "NCCL_UINT32"), ("int64", "NCCL_INT64"), ("uint64", "NCCL_UINT64"),
            ("float16", "NCCL_FLOAT16"), ("float32", "NCCL_FLOAT32"), ("float64", "NCCL_FLOAT64"))}
        self.ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX}

    # -- failure -----------------------------------------------------------------------------
    def fail(self, message):
        report(self.rank, self.size, message)
        self.abort()
        self.host.abort()

    def abort(self):
        if self.comm is not None:
            try:
                self.comm.abort()  # unblocks kernels waiting for a dead peer
            except Exception:
                pass

    def close(self):
        if self.comm is not None:
            self.comm.destroy()
            self.comm = None

    # -- collectives -------------------------------------------------------------------------
    def all_reduce(self, array, op):
        self._check(array, "all_reduce")
        return self._launch(f"all_reduce({op}) of {array.size:,} {array.dtype} values", (array,),
                            lambda s: self.comm.allReduce(array.data.ptr, array.data.ptr, array.size,
                                                          self._type(array), self.ops[op], s))

    def broadcast(self, array, src):
        self._check(array, "broadcast")
        raw = array.reshape(-1).view(np.uint8)  # any dtype moves as bytes (0-d arrays too)
        return self._launch(f"broadcast from rank {src} of {array.size:,} {array.dtype} values",
                            (array,), lambda s: self.comm.bcast(raw.data.ptr, raw.size,
                                                                self.nccl.NCCL_UINT8, src, s))

    def all_gather(self, send, recv):
        self._check(send, "all_gather")
        self._check(recv, "all_gather")
        raw_send, raw_recv = send.reshape(-1).view(np.uint8), recv.reshape(-1).view(np.uint8)
        return self._launch(f"all_gather of {send.size:,} {send.dtype} values per rank", (send, recv),
                            lambda s: self.comm.allGather(raw_send.data.ptr, raw_recv.data.ptr,
                                                          raw_send.size, self.nccl.NCCL_UINT8, s))

    def barrier(self):
        """Every rank's GPU work queued so far is finished, then the hosts meet (over MPI)."""
        self.cupy.cuda.get_current_stream().synchronize()
        self.stream.synchronize()
        return self.host.barrier()

    # -- helpers -------------------------------------------------------------------------------
    def _check(self, array, what):
        if not isinstance(array, self.cupy.ndarray):
            raise DistributedError(
                f"{what}: the nccl backend works on GPU tensors, got a {type(array).__name__} on "
                "the CPU; move it with .to('cuda'), or use init_process_group('mpi') for CPU tensors"
            )
        if array.device.id != self.device.id:
            raise DistributedError(
                f"{what}: the array is on GPU {array.device.id} but this rank's NCCL communicator "
                f"uses GPU {self.device.id}"
            )

    def _type(self, array):
        try:
            return self.types[array.dtype]
        except KeyError:
            raise DistributedError(f"all_reduce: NCCL cannot reduce dtype {array.dtype}") from None

    def _launch(self, what, arrays, call):
        cuda = self.cupy.cuda
        inputs_ready = cuda.Event(disable_timing=True)
        inputs_ready.record(cuda.get_current_stream())
        self.stream.wait_event(inputs_ready)
        call(self.stream.ptr)
        done = cuda.Event(disable_timing=True)
        done.record(self.stream)

        def order():  # Work.wait: the compute stream waits for the collective, the host does not
            self._check_async_error(what)
            cuda.get_current_stream().wait_event(done)

        work = Work(self, what, lambda: self._finished(done, what), order=order)
        work.keep = arrays
        # results are used on the compute stream next: order it after the collective
        work.add_done_callback(lambda: cuda.get_current_stream().wait_event(done))
        return work

    def _check_async_error(self, what):
        try:
            self.comm.check_async_error()
        except Exception as e:  # a peer failed or the network broke: NCCL will not recover
            self.fail(f"NCCL reported an error during {what}: {e}")

    def _finished(self, event, what):
        self._check_async_error(what)
        return event.done
