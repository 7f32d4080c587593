"""DistributedDataParallel: one model replica per process, gradients averaged across them.

Data parallelism in one equation.  With the global batch split into equal shards B_1..B_N,
one per rank, the gradient of the mean loss over the whole batch is the mean of the shards'
gradients:

    d/dw (1/|B|) sum_{x in B} L(x)  =  (1/N) sum_r  d/dw (1/|B_r|) sum_{x in B_r} L(x)

so if every rank starts from the same weights, computes its shard's gradient, and the ranks
average their gradients (an all-reduce), every rank takes the same optimizer step as one
process with the whole batch would, and the replicas stay identical.

How it overlaps communication with the backward pass.  The parameters are grouped into
*buckets* of about ``bucket_cap_mb`` megabytes, in reverse order of ``parameters()``, which is
roughly the order backward finishes them (the last layer first).  A post-accumulate hook on each
parameter tells the bucket when that parameter's gradient is final; when all of a bucket's are,
the bucket copies them into one flat buffer and starts a non-blocking all-reduce of it, while
backward goes on computing the earlier layers' gradients.  Buckets are started strictly in order
(bucket k only after bucket k-1), so every rank issues the same collectives in the same order.
When the last parameter's gradient is final, still inside backward, DDP waits for the buckets
still in flight and copies the averages back into ``.grad``: when ``loss.backward()`` returns,
every ``.grad`` holds the average over the ranks (as in PyTorch), so ``optimizer.step()``
needs nothing special.  (With NCCL that wait is the GPU's, not the host's: the compute stream
waits for each collective and the copies are queued behind it, so a step never blocks the host.)

Differences from PyTorch, on purpose:
- ``state_dict()`` and ``load_state_dict()`` are the wrapped module's, without the
  ``module.`` prefix, so a checkpoint saved from the DDP model loads into a plain one (and
  back).  ``named_parameters()`` still says ``module.fc1.weight``, like any container.
- Every parameter that requires grad must get a gradient in every synchronized backward
  (PyTorch's ``find_unused_parameters=False``); otherwise its bucket never starts, and the next
  forward raises an error naming the parameters that got none.
- Buffers (BatchNorm's running statistics) are broadcast from rank 0 at the start of every
  forward that records a graph (grad mode on), PyTorch's ``broadcast_buffers=True``.  Forwards
  under ``no_grad`` communicate nothing, so rank 0 may evaluate on its own.
"""
import contextlib

from .. import backend
from .. import distributed as dist
from ..autograd import is_grad_enabled
from .module import Module


def _flatten(arrays, out=None):
    """One contiguous 1-D buffer holding ``arrays`` one after the other."""
    xp = backend.array_module(arrays[0])
    if out is None:
        out = xp.empty(sum(a.size for a in arrays), dtype=arrays[0].dtype)
    offset = 0
    for a in arrays:
        out[offset:offset + a.size] = a.reshape(-1)
        offset += a.size
    return out


def _unflatten(flat, arrays):
    """Copy consecutive pieces of ``flat`` back into ``arrays`` (in place)."""
    offset = 0
    for a in arrays:
        a[...] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size


def _broadcast_from_rank0(tensors):
    """Overwrite ``tensors`` with rank 0's values: one broadcast per dtype and device."""
    groups = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for same in groups.values():
        flat = _flatten([t.array for t in same])
        dist.broadcast(flat, src=0)
        _unflatten(flat, [t.array for t in same])
        for t in same:
            t._version += 1


class _Bucket:
    """Parameters whose gradients are averaged together, in one flat buffer."""

    def __init__(self, params):
        self.params = params
        xp = params[0].device.xp
        self.flat = xp.empty(sum(p.numel() for p in params), dtype=params[0].dtype)
        self.ready = 0      # how many of its parameters have a final gradient this step
        self.work = None    # the all-reduce in flight

    @property
    def nbytes(self):
        return self.flat.nbytes

    def start(self):
        """Copy the gradients into the flat buffer and start averaging it across ranks."""
        _flatten([p.grad.array for p in self.params], out=self.flat)
        self.work = dist.all_reduce(self.flat, op="mean", async_op=True)
        self.work.add_done_callback(self._unpack)

    def _unpack(self):
        _unflatten(self.flat, [p.grad.array for p in self.params])
        for p in self.params:
            p.grad._version += 1


def _assign_buckets(params, cap_bytes):
    """Reverse parameter order; a bucket closes when the next parameter would take it past the
    cap, or has another dtype or device (a flat buffer holds one of each)."""
    buckets, current, size = [], [], 0
    for p in reversed(params):
        nbytes = p.numel() * p.dtype.itemsize
        if current and (size + nbytes > cap_bytes or (p.dtype, p.device) != (current[0].dtype, current[0].device)):
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(p)
        size += nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` so that backward averages its gradients across all ranks.

    ``bucket_cap_mb``: the size of a bucket of gradients averaged in one all-reduce (MiB).
    ``broadcast_buffers``: broadcast rank 0's buffers at each training forward.

    Call ``minigrad.distributed.init_process_group`` first.  Construction is collective: every
    rank must build the same model (names, shapes and dtypes are checked across ranks), and
    all start from rank 0's parameters and buffers.
    """

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        if not isinstance(bucket_cap_mb, (int, float)) or isinstance(bucket_cap_mb, bool) or bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        dist.group.current("DistributedDataParallel")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True  # False inside no_sync()

        named = list(module.named_parameters())
        self._check_same_model_on_all_ranks(named, list(module.named_buffers()))
        _broadcast_from_rank0([p for _, p in named] + list(module.buffers()))

        params = [p for _, p in named if p.requires_grad]
        self._names = {id(p): name for name, p in named}
        self.buckets = _assign_buckets(params, bucket_cap_mb * 2**20)
        self._bucket_of = {id(p): b for b in self.buckets for p in b.params}
        self._num_params = len(params)
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self._reset_step(sync=False)

    # -- construction --------------------------------------------------------------------------
    @staticmethod
    def _check_same_model_on_all_ranks(named_params, named_buffers):
        mine = [[kind, name, list(t.shape), str(t.dtype), bool(t.requires_grad)]
                for kind, items in (("parameter", named_params), ("buffer", named_buffers))
                for name, t in items]
        everyone = dist.group.current("DistributedDataParallel").host.all_gather_json(mine)

        def describe(entry):
            kind, name, shape, dtype, grad = entry
            return f"{kind} {name!r} {tuple(shape)} {dtype}" + ("" if grad or kind == "buffer" else " (no grad)")

        reference = everyone[0]
        for rank, theirs in enumerate(everyone[1:], start=1):
            for i in range(max(len(reference), len(theirs))):
                a = reference[i] if i < len(reference) else None
                b = theirs[i] if i < len(theirs) else None
                if a != b:
                    raise RuntimeError(
                        "DistributedDataParallel: the ranks built different models. Entry "
                        f"{i} of the parameters and buffers is "
                        f"{describe(a) if a else 'missing'} on rank 0 but "
                        f"{describe(b) if b else 'missing'} on rank {rank}; every rank must "
                        "construct the same model before wrapping it"
                    )

    # -- one step: forward, then hooks during backward -------------------------------------------
    def _reset_step(self, sync):
        # "syncing": averaging this step's gradients as they become final; "off": not (under
        # no_sync, without a recorded forward, or once this step's averaging is done; as in
        # PyTorch, a backward outside a DDP forward, e.g. through .module, is left alone)
        self._state = "syncing" if sync else "off"
        self._ready = set()
        self._next_bucket = 0
        for b in self.buckets:
            b.ready, b.work = 0, None

    def forward(self, *args, **kwargs):
        if self._state == "syncing" and self._ready:
            self._unused_parameters_error()
        recording = is_grad_enabled()
        if recording and self.broadcast_buffers:
            buffers = list(self.module.buffers())
            if buffers:
                _broadcast_from_rank0(buffers)
        self._reset_step(sync=recording and self.require_backward_grad_sync)
        return self.module(*args, **kwargs)

    def _grad_ready(self, param):
        """Post-accumulate hook: ``param.grad`` is final for this backward."""
        if self._state == "off":
            return
        key = id(param)
        if key in self._ready:
            raise RuntimeError(
                f"DistributedDataParallel: parameter {self._names[key]!r} got a second gradient "
                "in one step (a second backward without a forward in between); run forward "
                "again before each backward, or accumulate inside no_sync()"
            )
        self._ready.add(key)
        self._bucket_of[key].ready += 1
        for b in self.buckets[:self._next_bucket]:  # let MPI move the bytes of those in flight
            b.work.is_completed()
        while self._next_bucket < len(self.buckets):
            b = self.buckets[self._next_bucket]
            if b.ready < len(b.params):
                break
            b.start()
            self._next_bucket += 1
        if len(self._ready) == self._num_params:
            # the last gradient of this backward: finish before backward returns
            for b in self.buckets:
                b.work.wait()
            self._state = "off"

    def _unused_parameters_error(self):
        missing = [f"{self._names[id(p)]} {p.shape}" for b in self.buckets for p in b.params
                   if id(p) not in self._ready]
        raise RuntimeError(
            "DistributedDataParallel: the previous backward gave no gradient to "
            f"{len(missing)} parameter(s): {', '.join(missing)}. Their buckets were never "
            "all-reduced, so that step's gradients were not averaged across ranks. Every "
            "parameter that requires grad must take part in the loss; set requires_grad=False "
            "on parameters you do not use"
        )

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside accumulate gradients locally, without
        communicating; the first synchronized backward after averages the accumulated sum."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # -- the wrapped module's state, without a "module." prefix ------------------------------------
    def state_dict(self, prefix="", keep_vars=False):
        return self.module.state_dict(prefix, keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self):
        sizes = ", ".join(f"{b.nbytes / 2**20:.3g}" for b in self.buckets)
        return f"world_size={dist.get_world_size()}, buckets (MiB, in launch order)=[{sizes}]"

