"""all_reduce / broadcast / all_gather / barrier on 2 ranks, on Tensors and raw arrays."""
import numpy as np

import minigrad as mg
import minigrad.distributed as dist
from _common import done, start

rank, world = start()

# all_reduce on a Tensor: in place, every rank gets the sum; the version counter moves
t = mg.tensor([1.0, -2.0, 3.0], dtype=np.float64) * (rank + 1)
version = t._version
assert dist.all_reduce(t) is None
np.testing.assert_array_equal(t.numpy(), np.array([1.0, -2.0, 3.0]) * 3)
assert t._version == version + 1

# mean and max on raw arrays, one of them not contiguous (reduced in a copy, written back)
base = np.arange(12.0).reshape(3, 4) * (rank + 1)
view = base[:, ::2]
dist.all_reduce(view, op="mean")
np.testing.assert_array_equal(view, np.arange(12.0).reshape(3, 4)[:, ::2] * 1.5)
np.testing.assert_array_equal(base[:, 1::2], (np.arange(12.0).reshape(3, 4) * (rank + 1))[:, 1::2])
ints = np.array([rank, -rank, 7], dtype=np.int64)
dist.all_reduce(ints, op=dist.ReduceOp.MAX)
np.testing.assert_array_equal(ints, [1, 0, 7])

# non-blocking: a Work whose wait() delivers the result
f32 = np.full(1000, rank + 1, dtype=np.float32)
work = dist.all_reduce(f32, async_op=True)
assert work.wait() is True and work.is_completed()
np.testing.assert_array_equal(f32, np.full(1000, 3, dtype=np.float32))

# broadcast from rank 1, and a boolean array from rank 0
b = mg.tensor([10.0, 20.0]) * (rank + 1)
dist.broadcast(b, src=1)
np.testing.assert_array_equal(b.numpy(), [20.0, 40.0])
flags = np.array([rank == 0, rank == 1])
dist.broadcast(flags, src=0)
np.testing.assert_array_equal(flags, [True, False])
scalar = mg.tensor(np.array(5 * rank + 1, dtype=np.int64))   # 0-d, like BatchNorm's step count
dist.broadcast(scalar, src=1)
assert scalar.item() == 6 and scalar.shape == ()

# all_gather into Tensors and into arrays
outs = [mg.zeros(2, 3) for _ in range(world)]
dist.all_gather(outs, mg.full((2, 3), float(rank)))
for r, o in enumerate(outs):
    np.testing.assert_array_equal(o.numpy(), np.full((2, 3), float(r)))
arrays = [np.empty(2, dtype=np.int32) for _ in range(world)]
dist.all_gather(arrays, np.array([rank, 10 * rank], dtype=np.int32), async_op=True).wait()
np.testing.assert_array_equal(np.stack(arrays), [[0, 0], [1, 10]])

dist.barrier()

# bad calls raise before anything is sent (so both ranks stay in step)
for call, error in [
    (lambda: dist.all_reduce(np.ones(2), op="median"), ValueError),
    (lambda: dist.all_reduce(np.ones(2, dtype=np.int64), op="mean"), TypeError),
    (lambda: dist.all_reduce([1.0, 2.0]), TypeError),
    (lambda: dist.broadcast(np.ones(2), src=2), ValueError),
    (lambda: dist.all_gather([np.empty(2)], np.ones(2)), ValueError),
    (lambda: dist.all_gather([np.empty(3), np.empty(3)], np.ones(2)), ValueError),
    (lambda: dist.init_process_group("mpi"), RuntimeError),
]:
    try:
        call()
    except error as e:
        assert str(e), "errors must say what was wrong"
    else:
        raise AssertionError(f"expected {error.__name__}")

done("collectives")
dist.destroy_process_group()
assert not dist.is_initialized()
