"""The CUDA emulator (minigrad/backend/cuda/emulator/__init__.py): CUDA C kernels run on the CPU.

Every kernel below is small, real CUDA C (test_kernels_compile_with_nvcc compiles them all with
nvcc), and every test compares what the emulated kernel computed with NumPy, or checks that a
broken kernel or launch raises a clear error instead of hanging or crashing.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minigrad.backend.cuda import emulator as emu
from tests.bounds import assert_within, sum_error

pytestmark = pytest.mark.skipif(not emu.available(), reason=str(emu.available()))

SOURCES = {}  # name -> CUDA source: every kernel in this file, for the nvcc test


def cuda(name, code):
    SOURCES[name] = code
    return code


def run(code, kernel, grid, block, args, **kwargs):
    emu.Module(code).get_function(kernel)(grid, block, args, **kwargs)


def aligned(n, dtype):
    """A zeroed C-contiguous array of n elements that starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n * itemsize + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + n * itemsize].view(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# Indexing: grid-stride loops, 2-D and 3-D grids
# ---------------------------------------------------------------------------------------------
AXPY = cuda("axpy", r"""
extern "C" __global__ void axpy_f32(const float* __restrict__ x, float* __restrict__ y, float a, long long n) {
    // grid-stride loop: any grid covers any n
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] += a * x[i];
}
""")


@pytest.mark.parametrize("grid, block", [((7,), (128,)), ((1,), (1,)), ((100,), (1024,))])
def test_grid_stride_loop_covers_every_element(rng, grid, block):
    x = rng.standard_normal(10_000).astype(np.float32)
    y = rng.standard_normal(10_000).astype(np.float32)
    product = np.float32(2.5) * x
    expected = y + product
    run(AXPY, "axpy_f32", grid, block, (x, y, np.float32(2.5), np.int64(x.size)))
    # The kernel rounds y + a*x once (a fused multiply-add, as a GPU computes it: docs/emulator.md,
    # "Floating point"); NumPy rounds the product first. Each rounding is at most 2^-24 relative.
    assert np.all(np.abs(y - expected) <= 2.0 ** -23 * (np.abs(product) + np.abs(expected)))


INDICES = cuda("indices", r"""
// every thread writes who it is: (block x, y, z, thread x, y, z) and the launch shape
extern "C" __global__ void whoami(int* out) {
    unsigned bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z;
    unsigned tx = threadIdx.x, ty = threadIdx.y, tz = threadIdx.z;
    unsigned X = gridDim.x * blockDim.x, Y = gridDim.y * blockDim.y;
    unsigned gx = bx * blockDim.x + tx, gy = by * blockDim.y + ty, gz = bz * blockDim.z + tz;
    int* o = out + 8 * ((gz * Y + gy) * X + gx);
    o[0] = bx; o[1] = by; o[2] = bz; o[3] = tx; o[4] = ty; o[5] = tz;
    o[6] = gridDim.x * 100 + gridDim.y * 10 + gridDim.z;
    o[7] = blockDim.x * 100 + blockDim.y * 10 + blockDim.z;
}
""")


@pytest.mark.parametrize("grid, block", [((3, 2), (4, 5)), ((2, 3, 2), (3, 2, 4)), ((5,), (7,))])
def test_two_and_three_dimensional_grids(grid, block):
    g = grid + (1,) * (3 - len(grid))
    b = block + (1,) * (3 - len(block))
    shape = (g[2] * b[2], g[1] * b[1], g[0] * b[0])
    out = np.full(shape + (8,), -1, np.int32)
    run(INDICES, "whoami", grid, block, (out,))
    gz, gy, gx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    for k, coord in enumerate([gx // b[0], gy // b[1], gz // b[2], gx % b[0], gy % b[1], gz % b[2]]):
        np.testing.assert_array_equal(out[..., k], coord)
    assert (out[..., 6] == g[0] * 100 + g[1] * 10 + g[2]).all()
    assert (out[..., 7] == b[0] * 100 + b[1] * 10 + b[2]).all()


def test_a_zero_grid_dimension_launches_one_block_as_cupy_does():
    out = np.zeros(8, np.int32)
    run(INDICES, "whoami", (0,), (1,), (out,))
    assert out[6] == 111 and out[7] == 111


# ---------------------------------------------------------------------------------------------
# Shared memory and __syncthreads
# ---------------------------------------------------------------------------------------------
TRANSPOSE = cuda("transpose", r"""
#define TILE 32
#define ROWS 8
// out (cols x rows) = in (rows x cols)^T through a 32 x 33 shared tile (the +1 avoids bank
// conflicts on a GPU); block (32, 8): each thread moves 4 elements in and 4 out.
extern "C" __global__ void transpose_f32(const float* in, float* out, int rows, int cols) {
    __shared__ float tile[TILE][TILE + 1];
    int x = blockIdx.x * TILE + threadIdx.x;
    int y = blockIdx.y * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS)
        if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * cols + x];
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x;
    y = blockIdx.x * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS)
        if (x < rows && y + j < cols) out[(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
}
""")


@pytest.mark.parametrize("rows, cols", [(70, 45), (32, 32), (1, 100), (33, 1)])
def test_tiled_transpose(rng, rows, cols):
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    out = np.zeros((cols, rows), np.float32)
    run(TRANSPOSE, "transpose_f32", ((cols + 31) // 32, (rows + 31) // 32), (32, 8),
        (a, out, np.int32(rows), np.int32(cols)))
    np.testing.assert_array_equal(out, a.T)


BLOCK_REDUCE = cuda("block_reduce", r"""
// one block of 256 per chunk: shared-memory tree reduction with __syncthreads. Threads past the
// end return early: a thread that exited counts as arrived at later barriers (Volta and later).
extern "C" __global__ void chunk_sums(const double* x, double* out, int n) {
    __shared__ double s[256];
    int t = threadIdx.x;
    int i = blockIdx.x * 256 + t;
    s[t] = 0.0;
    __syncthreads();
    if (i >= n) return;
    s[t] = x[i];
    __syncthreads();
    for (int k = 128; k > 0; k >>= 1) {
        if (t < k && i + k < n) s[t] += s[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}
""")


def test_block_reduction_with_syncthreads_and_early_exit(rng):
    x = rng.standard_normal(1000)
    out = np.zeros(4)
    run(BLOCK_REDUCE, "chunk_sums", (4,), (256,), (x, out, np.int32(x.size)))
    chunks = np.split(x, [256, 512, 768])  # a tree of partial sums there, NumPy's pairwise sum here
    assert_within(out, [c.sum() for c in chunks], [sum_error(np.abs(c).sum(), 256) for c in chunks])


SYNC_REDUCE = cuda("sync_reduce", r"""
extern "C" __global__ void barrier_votes(const int* flags, int* out) {
    int f = flags[blockIdx.x * blockDim.x + threadIdx.x];
    int count = __syncthreads_count(f);
    int all = __syncthreads_and(f);
    int any = __syncthreads_or(f);
    if (threadIdx.x == 0) { out[3 * blockIdx.x] = count; out[3 * blockIdx.x + 1] = all; out[3 * blockIdx.x + 2] = any; }
}
""")


def test_syncthreads_count_and_or():
    flags = np.zeros((3, 100), np.int32)
    flags[0, ::3] = 7   # some
    flags[1] = 1        # all
    out = np.zeros(9, np.int32)
    run(SYNC_REDUCE, "barrier_votes", (3,), (100,), (flags, out))
    np.testing.assert_array_equal(out.reshape(3, 3), [[34, 0, 1], [100, 1, 1], [0, 0, 0]])


DYNAMIC_SHARED = cuda("dynamic_shared", r"""
extern __shared__ float stage[];   // file scope, the standard spelling
extern "C" __global__ void reverse_blocks(const float* x, float* y) {
    int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    stage[t] = x[base + t];
    __syncthreads();
    y[base + t] = stage[blockDim.x - 1 - t];
}
// function scope, raw bytes carved into two arrays; a second extern array aliases the first
extern "C" __global__ void carve(const double* x, const int* k, double* y, int n) {
    extern __shared__ __align__(16) unsigned char raw[];
    extern __shared__ int alias[];
    double* values = reinterpret_cast<double*>(raw);
    int* keys = reinterpret_cast<int*>(values + n);
    int t = threadIdx.x;
    values[t] = x[t];
    keys[t] = k[t];
    __syncthreads();
    y[t] = values[keys[t]] + (alias == reinterpret_cast<int*>(raw) ? 1000.0 : 0.0);
}
""")


def test_dynamic_shared_memory(rng):
    x = rng.standard_normal(3 * 64).astype(np.float32)
    y = np.zeros_like(x)
    run(DYNAMIC_SHARED, "reverse_blocks", (3,), (64,), (x, y), shared_mem=64 * 4)
    np.testing.assert_array_equal(y, x.reshape(3, 64)[:, ::-1].ravel())


def test_dynamic_shared_arrays_share_one_aligned_buffer(rng):
    n = 40
    x = rng.standard_normal(n)
    keys = rng.permutation(n).astype(np.int32)
    y = np.zeros(n)
    run(DYNAMIC_SHARED, "carve", (1,), (n,), (x, keys, y, np.int32(n)), shared_mem=n * 12)
    np.testing.assert_array_equal(y, x[keys] + 1000.0)


DECLARATIONS = cuda("declarations", r"""
// the forms a shared or global declaration can take, and a kernel declared before it is defined
extern "C" __global__ void declared_first(float* out);
__device__ int launches;                                   // lives as long as the module
extern "C" __global__ void count_launches() { if (threadIdx.x == 0 && blockIdx.x == 0) launches += 1; }
extern "C" __global__ void read_launches(int* out) { out[0] = launches; }
extern "C" __global__ void declared_first(float* out) {
    __shared__ alignas(16) float a[8], *p;                 // two declarators, a standard attribute
    __shared__ __align__(16) double b[4];
    volatile extern __shared__ __align__(16) int dyn_ints[];
    static __shared__ int c;
    int t = threadIdx.x;
    if (t == 0) { p = a; c = 5; }
    a[t] = t;
    if (t < 4) b[t] = 2.0 * t;
    dyn_ints[t] = 10 * t;
    __syncthreads();
    out[t] = p[7 - t] + (t < 4 ? b[t] : 0.0) + c + dyn_ints[7 - t] + ((reinterpret_cast<size_t>(a) % 16 == 0) ? 0.5f : 0.0f);
}
""")


def test_declaration_forms():
    mod = emu.Module(DECLARATIONS)
    out = np.zeros(8, np.float32)
    mod.get_function("declared_first")((1,), (8,), (out,), shared_mem=32)
    t = np.arange(8)
    np.testing.assert_array_equal(out, (7 - t) + np.where(t < 4, 2.0 * t, 0) + 5 + 10 * (7 - t) + 0.5)
    count, read = mod.get_function("count_launches"), mod.get_function("read_launches")
    launches = np.zeros(1, np.int32)
    read((1,), (1,), (launches,))
    before = launches[0]
    for _ in range(3):
        count((2,), (4,), ())
    read((1,), (1,), (launches,))
    assert launches[0] == before + 3


UNINITIALISED = cuda("uninitialised", r"""
extern "C" __global__ void half_written(float* out) {
    __shared__ float s[32];
    if (blockIdx.x == 0 || threadIdx.x < 16) s[threadIdx.x] = (float)blockIdx.x;
    __syncthreads();
    out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
}
""")


def test_shared_memory_starts_as_garbage_in_every_block():
    out = np.zeros((2, 32), np.float32)
    run(UNINITIALISED, "half_written", (2,), (32,), (out,))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[1, :16], 1.0)
    assert np.isnan(out[1, 16:]).all()  # not block 0's leftovers: a GPU guarantees nothing either


# ---------------------------------------------------------------------------------------------
# Warp collectives
# ---------------------------------------------------------------------------------------------
SHUFFLES = cuda("shuffles", r"""
extern "C" __global__ void shuffles(const float* x, float* out, int width) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = x[i];
    float* o = out + 6 * i;
    o[0] = __shfl_sync(0xffffffffu, v, 3, width);
    o[1] = __shfl_up_sync(0xffffffffu, v, 2, width);
    o[2] = __shfl_down_sync(0xffffffffu, v, 5, width);
    o[3] = __shfl_xor_sync(0xffffffffu, v, 6, width);
    o[4] = __shfl_sync(0xffffffffu, v, (threadIdx.x * 7) % 32, width);
    double d = __shfl_xor_sync(0xffffffffu, (double)v * 2.0, 1, width);   // 8-byte values too
    o[5] = (float)d;
}
extern "C" __global__ void warp_sums(const float* x, float* out) {
    float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x % 32 == 0) out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = v;
}
extern "C" __global__ void butterfly_max(const long long* x, long long* out) {
    long long v = x[threadIdx.x];
    for (int mask = 1; mask < 32; mask <<= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, mask));
    out[threadIdx.x] = v;   // every lane ends with the warp's maximum
}
""")


def expected_shuffles(x, width):
    """CUDA's shuffle semantics, written from the programming guide independently of the emulator."""
    out = np.zeros((x.size, 6), np.float32)
    for i in range(x.size):
        lane, warp = i % 32, i - i % 32
        seg = lane - lane % width

        def get(src):
            return x[warp + src]
        out[i, 0] = get(seg + 3 % width)
        out[i, 1] = get(lane - 2) if lane - seg >= 2 else x[i]
        out[i, 2] = get(lane + 5) if lane - seg + 5 < width else x[i]
        out[i, 3] = get(lane ^ 6) if (lane ^ 6) < seg + width else x[i]
        out[i, 4] = get(seg + ((lane * 7) % 32) % width)
        out[i, 5] = np.float32(get(lane ^ 1) * 2.0) if (lane ^ 1) < seg + width else x[i] * 2
    return out


@pytest.mark.parametrize("width", [32, 16, 8, 4, 1])
def test_shuffle_variants_and_widths(rng, width):
    x = rng.standard_normal(64).astype(np.float32)
    out = np.zeros((64, 6), np.float32)
    run(SHUFFLES, "shuffles", (1,), (64,), (x, out, np.int32(width)))
    np.testing.assert_array_equal(out, expected_shuffles(x, width))


def test_warp_shuffle_reduction(rng):
    x = rng.standard_normal(2 * 96).astype(np.float32)
    out = np.zeros(6, np.float32)
    run(SHUFFLES, "warp_sums", (2,), (96,), (x, out))
    np.testing.assert_allclose(out, x.reshape(6, 32).sum(axis=1), rtol=1e-5, atol=1e-6)


def test_xor_butterfly_gives_every_lane_the_maximum(rng):
    x = rng.integers(-2**40, 2**40, 32)
    out = np.zeros(32, np.int64)
    run(SHUFFLES, "butterfly_max", (1,), (32,), (x, out))
    np.testing.assert_array_equal(out, np.full(32, x.max()))


VOTES = cuda("votes", r"""
extern "C" __global__ void votes(const int* p, unsigned* out) {
    int i = threadIdx.x;
    unsigned* o = out + 8 * i;
    o[0] = __ballot_sync(0xffffffffu, p[i] > 0);
    o[1] = __any_sync(0xffffffffu, p[i] > 5);
    o[2] = __all_sync(0xffffffffu, p[i] >= 0);
    o[3] = __match_any_sync(0xffffffffu, p[i]);
    int pred;
    o[4] = __match_all_sync(0xffffffffu, p[i] / 100, &pred);
    o[5] = pred;
    o[6] = __reduce_add_sync(0xffffffffu, (unsigned)p[i]);
    o[7] = (unsigned)__reduce_min_sync(0xffffffffu, p[i] - 3);
}
// only the even lanes take part: the mask says so, and the odd lanes never call
extern "C" __global__ void even_lanes(const int* p, int* out) {
    int i = threadIdx.x;
    out[i] = -1;
    if (i % 2 == 0) out[i] = __reduce_max_sync(0x55555555u, p[i]);
}
template <int A, int B> struct Both { static const bool value = A && B; };
extern "C" __global__ void bit_reductions(const unsigned* x, unsigned* out) {
    unsigned v = x[threadIdx.x];
    unsigned* o = out + 4 * threadIdx.x;
    o[0] = __reduce_and_sync(0xffffffffu, v);
    o[1] = __reduce_or_sync(0xffffffffu, v);
    o[2] = __reduce_xor_sync(0xffffffffu, v);
    o[3] = __ballot_sync(0xffffffffu, Both<1, 1>::value && (v & 1u));   // a comma inside the argument
}
extern "C" __global__ void active_lanes(unsigned* out, int mode) {
    int t = threadIdx.x;
    out[t] = 0;
    if (mode == 1 && t >= 5) return;           // the lanes that returned are not active
    if (mode == 2 && t % 2 == 0) return;
    out[t] = __activemask();
}
""")


def test_votes_matches_and_reductions():
    p = np.array([(i * 37) % 7 for i in range(64)], np.int32)
    p[32:] = 2  # warp 1: all equal
    out = np.zeros((64, 8), np.uint32)
    run(VOTES, "votes", (1,), (64,), (p, out))
    for w in range(2):
        q = p[32 * w: 32 * (w + 1)]
        o = out[32 * w: 32 * (w + 1)]
        bits = lambda m: sum(1 << k for k in range(32) if m[k])  # noqa: E731
        assert (o[:, 0] == bits(q > 0)).all()
        assert (o[:, 1] == int((q > 5).any())).all() and (o[:, 2] == 1).all()
        np.testing.assert_array_equal(o[:, 3], [bits(q == q[k]) for k in range(32)])
        assert (o[:, 4] == 0xffffffff).all() and (o[:, 5] == 1).all()  # p // 100 == 0 everywhere
        assert (o[:, 6] == q.sum()).all()
        assert (o[:, 7].view(np.int32) == (q - 3).min()).all()
    assert (out[32:, 3] == 0xffffffff).all()


def test_bitwise_warp_reductions(rng):
    x = rng.integers(0, 2**32, 32, dtype=np.uint64).astype(np.uint32)
    out = np.zeros((32, 4), np.uint32)
    run(VOTES, "bit_reductions", (1,), (32,), (x, out))
    odd = sum(1 << k for k in range(32) if x[k] & 1)
    expected = [np.bitwise_and.reduce(x), np.bitwise_or.reduce(x), np.bitwise_xor.reduce(x), odd]
    np.testing.assert_array_equal(out, np.tile(np.array(expected, np.uint32), (32, 1)))


def test_partial_masks_leave_the_other_lanes_alone():
    p = np.arange(32, dtype=np.int32)[::-1].copy()
    out = np.zeros(32, np.int32)
    run(VOTES, "even_lanes", (1,), (32,), (p, out))
    np.testing.assert_array_equal(out[1::2], -1)
    np.testing.assert_array_equal(out[0::2], 31)  # the maximum over the even lanes is p[0]


def test_activemask_reports_the_lanes_that_take_the_same_path():
    out = np.zeros(40, np.uint32)
    run(VOTES, "active_lanes", (1,), (40,), (out, np.int32(0)))
    np.testing.assert_array_equal(out, [0xffffffff] * 32 + [0xff] * 8)   # a partial warp
    run(VOTES, "active_lanes", (1,), (40,), (out, np.int32(1)))
    np.testing.assert_array_equal(out, [0x1f] * 5 + [0] * 35)
    run(VOTES, "active_lanes", (1,), (40,), (out, np.int32(2)))
    np.testing.assert_array_equal(out, [0, 0xaaaaaaaa] * 16 + [0, 0xaa] * 4)


# ---------------------------------------------------------------------------------------------
# Atomics
# ---------------------------------------------------------------------------------------------
ATOMICS = cuda("atomics", r"""
extern "C" __global__ void histograms(const int* bins, int n, int* hi, unsigned* hu,
                                      unsigned long long* hull, float* hf, double* hd) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int b = bins[i];
        atomicAdd(hi + b, 1);
        atomicAdd(hu + b, 2u);
        atomicAdd(hull + b, 1ull << 40);
        atomicAdd(hf + b, 0.5f);
        atomicAdd(hd + b, 0.25);
    }
}
extern "C" __global__ void extremes(const int* x, int n, int* mm, unsigned* bits, float* fmax_out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicMax(mm, x[i]);
    atomicMin(mm + 1, x[i]);
    atomicOr(bits, 1u << (x[i] & 31));
    atomicAnd(bits + 1, ~(1u << (x[i] & 31)));
    atomicXor(bits + 2, (unsigned)x[i]);
    atomicInc(bits + 3, 9u);                   // counts 0..9 then wraps to 0
    atomicExch(bits + 4, 77u);
    // float max through a compare-and-swap loop, the classic pattern
    int* address = reinterpret_cast<int*>(fmax_out);
    int old = *address, assumed;
    do {
        assumed = old;
        float seen = __int_as_float(assumed);
        if (seen >= (float)x[i]) break;
        old = atomicCAS(address, assumed, __float_as_int((float)x[i]));
    } while (old != assumed);
}
""")


def test_atomic_histograms_for_every_type(rng):
    bins = rng.integers(0, 10, 5000).astype(np.int32)
    hi, hu = np.zeros(10, np.int32), np.zeros(10, np.uint32)
    hull, hf, hd = np.zeros(10, np.uint64), np.zeros(10, np.float32), np.zeros(10)
    run(ATOMICS, "histograms", (5,), (128,), (bins, np.int32(bins.size), hi, hu, hull, hf, hd))
    counts = np.bincount(bins, minlength=10)
    np.testing.assert_array_equal(hi, counts)
    np.testing.assert_array_equal(hu, 2 * counts)
    np.testing.assert_array_equal(hull, counts.astype(np.uint64) << np.uint64(40))
    np.testing.assert_array_equal(hf, 0.5 * counts)
    np.testing.assert_array_equal(hd, 0.25 * counts)


def test_atomic_min_max_bitwise_inc_exch_cas(rng):
    x = rng.integers(-1000, 1000, 300).astype(np.int32)
    mm = np.array([np.iinfo(np.int32).min, np.iinfo(np.int32).max], np.int32)
    bits = np.array([0, 0xffffffff, 0, 0, 0], np.uint32)
    fmax = np.array([-np.inf], np.float32)
    run(ATOMICS, "extremes", (3,), (128,), (x, np.int32(x.size), mm, bits, fmax))
    assert mm.tolist() == [x.max(), x.min()]
    present = np.bitwise_or.reduce(np.uint32(1) << (x & 31).astype(np.uint32))
    assert bits[0] == present and bits[1] == (0xffffffff & ~present)
    assert bits[2] == np.bitwise_xor.reduce(x.view(np.uint32))
    assert bits[3] == x.size % 10 and bits[4] == 77
    assert fmax[0] == x.max()


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------
TEMPLATES = cuda("templates", r"""
// the kernels' pattern: one template, extern "C" instantiations named _f32 / _f64
template <typename T>
__device__ __forceinline__ T softplus(T x) { return x > T(20) ? x : log1p(exp(x)); }

template <typename T>
__device__ void softplus_kernel(const T* __restrict__ x, T* __restrict__ y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = softplus(x[i]);
}
extern "C" __global__ void softplus_f32(const float* x, float* y, long long n) { softplus_kernel<float>(x, y, n); }
extern "C" __global__ void softplus_f64(const double* x, double* y, long long n) { softplus_kernel<double>(x, y, n); }

// a __global__ template, instantiated through name_expressions as with cupy.RawModule
template <typename T, int SCALE>
__global__ void scaled_copy(const T* x, T* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * T(SCALE);
}
""")


@pytest.mark.parametrize("suffix, dtype, rtol", [("f32", np.float32, 1e-6), ("f64", np.float64, 1e-15)])
def test_template_with_extern_c_instantiations(rng, suffix, dtype, rtol):
    x = (rng.standard_normal(1000) * 10).astype(dtype)
    y = np.zeros_like(x)
    run(TEMPLATES, f"softplus_{suffix}", (4,), (256,), (x, y, np.int64(x.size)))
    np.testing.assert_allclose(y, np.where(x > 20, x, np.log1p(np.exp(x))), rtol=rtol)


def test_name_expressions_instantiate_template_kernels(rng):
    mod = emu.Module(TEMPLATES, name_expressions=["scaled_copy<float, 3>", "scaled_copy<double, -2>"])
    x = rng.standard_normal(50)
    y = np.zeros(50)
    mod.get_function("scaled_copy<double, -2>")((1,), (64,), (x, y, np.int32(50)))
    np.testing.assert_array_equal(y, -2 * x)
    with pytest.raises(ValueError, match=r"scaled_copy.*template.*name_expressions"):
        mod.get_function("scaled_copy")


# ---------------------------------------------------------------------------------------------
# Intrinsics and math against NumPy
# ---------------------------------------------------------------------------------------------
INTRINSICS = cuda("intrinsics", r"""
extern "C" __global__ void int_intrinsics(const unsigned* a, const unsigned* b, unsigned* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned x = a[i], y = b[i];
    unsigned* o = out + 10 * i;
    o[0] = __umulhi(x, y);
    o[1] = (unsigned)__mulhi((int)x, (int)y);
    o[2] = __popc(x);
    o[3] = __clz((int)x);
    o[4] = __ffs((int)x);
    o[5] = __brev(x);
    o[6] = __byte_perm(x, y, 0x5140u);
    o[7] = __funnelshift_l(x, y, y & 63u);
    o[8] = __funnelshift_r(x, y, y & 63u);
    o[9] = (unsigned)(__umul64hi((unsigned long long)x << 20, (unsigned long long)y << 30) & 0xffffffffu);
}
extern "C" __global__ void float_intrinsics(const float* a, float* out, int* iout, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = a[i];
    float* o = out + 8 * i;
    o[0] = __uint_as_float(__float_as_uint(x) ^ 0x80000000u);   // -x, by bits
    o[1] = max(x, 0.0f);                                       // fmaxf: NaN -> 0
    o[2] = __saturatef(x);
    o[3] = rsqrtf(fabsf(x));
    o[4] = (float)erfinv(erf((double)x * 0.25));
    o[5] = __expf(x * 0.1f) - expf(x * 0.1f);
    o[6] = (float)__longlong_as_double(__double_as_longlong((double)x));
    o[7] = normcdff(x);
    iout[2 * i] = __float2int_rn(x * 1e9f);                     // saturates, NaN -> 0
    iout[2 * i + 1] = __float2int_rz(x);
}
""")


def test_integer_intrinsics(rng):
    a = rng.integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    a[:3] = [0, 1, 0x80000000]
    out = np.zeros((200, 10), np.uint32)
    run(INTRINSICS, "int_intrinsics", (1,), (256,), (a, b, out, np.int32(200)))
    for k in range(200):
        x, y = int(a[k]), int(b[k])
        sx, sy = x - (x >> 31 << 32), y - (y >> 31 << 32)
        s = y & 63
        both = (y << 32) | x
        expected = [
            (x * y) >> 32, ((sx * sy) >> 32) & 0xffffffff, bin(x).count("1"),
            32 - x.bit_length(), (x & -x).bit_length(), int(f"{x:032b}"[::-1], 2),
            int.from_bytes(bytes(both.to_bytes(8, "little")[(0x5140 >> (4 * j)) & 7] for j in range(4)), "little"),
            ((both << (s & 31)) >> 32) & 0xffffffff, (both >> (s & 31)) & 0xffffffff,
            (((x << 20) * (y << 30)) >> 64) & 0xffffffff,
        ]
        assert out[k].tolist() == expected, k


def test_float_intrinsics_and_math(rng):
    a = (rng.standard_normal(100) * 3).astype(np.float32)
    a[:4] = [np.nan, 5.0, -7.5, 0.5]
    out = np.zeros((100, 8), np.float32)
    iout = np.zeros((100, 2), np.int32)
    run(INTRINSICS, "float_intrinsics", (1,), (128,), (a, out, iout, np.int32(100)))
    ok = ~np.isnan(a)
    np.testing.assert_array_equal(out[ok, 0], -a[ok])
    np.testing.assert_array_equal(out[:, 1], np.fmax(a, 0))            # NaN dropped, as CUDA's max
    np.testing.assert_array_equal(out[:, 2], np.where(ok, np.clip(a, 0, 1), 0))
    np.testing.assert_allclose(out[ok, 3], 1 / np.sqrt(np.abs(a[ok])), rtol=1e-6)
    np.testing.assert_allclose(out[ok, 4], a[ok] * 0.25, rtol=1e-6)
    np.testing.assert_array_equal(out[ok, 5], 0)                         # exact here, approximate on a GPU
    np.testing.assert_array_equal(out[ok, 6], a[ok])
    from math import erf, sqrt
    np.testing.assert_allclose(out[ok, 7], [0.5 * (1 + erf(v / sqrt(2))) for v in a[ok]], rtol=1e-6, atol=1e-7)
    big = np.clip(np.rint((a * np.float32(1e9)).astype(np.float64)), -2**31, 2**31 - 1)
    np.testing.assert_array_equal(iout[ok, 0], big[ok])
    assert iout[0, 0] == 0 and iout[0, 1] == 0                           # NaN -> 0
    np.testing.assert_array_equal(iout[ok, 1], np.trunc(a[ok]))


MATH = cuda("math", r"""
#include <math_constants.h>
// CUDA's math functions, in float and double from one template
template <typename T>
__device__ void math_kernel(const T* __restrict__ x, T* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T v = __ldg(x + i);
    T r[11] = {exp(v), log(fabs(v)), tanh(v), erf(v), erfc(v), log1p(fabs(v)), expm1(v),
               fma(v, v, T(1)), sqrt(fabs(v)), fmax(v, T(0)), fmin(v, T(0))};
    #pragma unroll
    for (int k = 0; k < 11; ++k) out[11 * i + k] = r[k];
}
extern "C" __global__ void math_f32(const float* x, float* out, int n) { math_kernel<float>(x, out, n); }
extern "C" __global__ void math_f64(const double* x, double* out, int n) { math_kernel<double>(x, out, n); }
extern "C" __global__ void fast_f32(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    float r[10] = {__expf(v), __logf(fabsf(v)), __fdividef(v, 3.0f), rsqrtf(fabsf(v)), fmaf(v, 2.0f, 1.0f),
                   erff(v), erfcf(v), tanhf(v), log1pf(fabsf(v)), expm1f(v)};
    for (int k = 0; k < 10; ++k) out[10 * i + k] = r[k];
    __threadfence();
}
extern "C" __global__ void infinities(float* f, double* d) {
    f[0] = CUDART_INF_F; f[1] = -INFINITY; f[2] = CUDART_NAN_F;
    d[0] = CUDART_INF; d[1] = CUDART_PI; d[2] = -CUDART_INF;
}
""")


@pytest.mark.parametrize("name, dtype, rtol", [("math_f32", np.float32, 2e-6), ("math_f64", np.float64, 1e-14)])
def test_math_functions_in_float_and_double(rng, name, dtype, rtol):
    from math import erf, erfc
    x = (rng.standard_normal(100) * 2).astype(dtype)
    out = np.zeros((100, 11), dtype)
    run(MATH, name, (1,), (128,), (x, out, np.int32(100)))
    erfs = np.array([erf(v) for v in x]), np.array([erfc(v) for v in x])
    expected = [np.exp(x), np.log(np.abs(x)), np.tanh(x), erfs[0], erfs[1], np.log1p(np.abs(x)), np.expm1(x),
                x * x + 1, np.sqrt(np.abs(x)), np.fmax(x, 0), np.fmin(x, 0)]
    for k, e in enumerate(expected):
        np.testing.assert_allclose(out[:, k], e.astype(dtype), rtol=rtol, atol=rtol * 1e-2, err_msg=str(k))


def test_fast_intrinsics_and_float_functions(rng):
    from math import erf, erfc
    x = (rng.standard_normal(100) * 2).astype(np.float32)
    out = np.zeros((100, 10), np.float32)
    run(MATH, "fast_f32", (1,), (128,), (x, out, np.int32(100)))
    x64 = x.astype(np.float64)
    expected = [np.exp(x64), np.log(np.abs(x64)), x64 / 3, 1 / np.sqrt(np.abs(x64)), 2 * x64 + 1,
                [erf(v) for v in x64], [erfc(v) for v in x64], np.tanh(x64), np.log1p(np.abs(x64)), np.expm1(x64)]
    for k, e in enumerate(expected):
        np.testing.assert_allclose(out[:, k], e, rtol=2e-6, atol=1e-7, err_msg=str(k))


def test_infinity_and_math_constants():
    f, d = np.zeros(3, np.float32), np.zeros(3)
    run(MATH, "infinities", (1,), (1,), (f, d))
    assert f[0] == np.inf and f[1] == -np.inf and np.isnan(f[2])
    assert d.tolist() == [np.inf, np.pi, -np.inf]


VECTORS = cuda("vectors", r"""
// sizes and alignments of CUDA's vector types, and the make_* helpers
extern "C" __global__ void vector_layouts(int* out) {
    int k = 0;
#define LAYOUT(T) out[k++] = (int)sizeof(T); out[k++] = (int)alignof(T);
    LAYOUT(char2) LAYOUT(char4) LAYOUT(short2) LAYOUT(int2) LAYOUT(int3) LAYOUT(int4) LAYOUT(uint2) LAYOUT(uint4)
    LAYOUT(float2) LAYOUT(float3) LAYOUT(float4) LAYOUT(double2) LAYOUT(longlong2) LAYOUT(ulonglong2) LAYOUT(dim3)
#undef LAYOUT
}
extern "C" __global__ void vector_math(const float4* a, const double2* b, float4* c, double2* d, int2* e, uint4* f) {
    int i = threadIdx.x;
    float4 u = __ldg(a + i);
    double2 w = b[i];
    c[i] = make_float4(u.w, u.z, u.y, u.x);
    d[i] = make_double2(w.x + w.y, w.x - w.y);
    e[i] = make_int2(i, -i);
    f[i] = make_uint4(i, 2 * i, 3 * i, 4 * i);
}
""")


def test_vector_types_have_cudas_layout():
    out = np.zeros(30, np.int32)
    run(VECTORS, "vector_layouts", (1,), (1,), (out,))
    # (sizeof, alignof) from the CUDA C++ Programming Guide's table of vector types
    assert out.reshape(15, 2).tolist() == [[2, 2], [4, 4], [4, 4], [8, 8], [12, 4], [16, 16], [8, 8], [16, 16],
                                           [8, 8], [12, 4], [16, 16], [16, 16], [16, 16], [16, 16], [12, 4]]


def test_vector_loads_stores_and_make_helpers(rng):
    a = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal((8, 2))
    c, d = np.zeros_like(a), np.zeros_like(b)
    e, f = np.zeros((8, 2), np.int32), np.zeros((8, 4), np.uint32)
    run(VECTORS, "vector_math", (1,), (8,), (a, b, c, d, e, f))  # float4* takes float32 data, as in CuPy
    np.testing.assert_array_equal(c, a[:, ::-1])
    np.testing.assert_array_equal(d, np.stack([b[:, 0] + b[:, 1], b[:, 0] - b[:, 1]], axis=1))
    np.testing.assert_array_equal(e, np.stack([np.arange(8), -np.arange(8)], axis=1))
    np.testing.assert_array_equal(f, np.arange(8)[:, None] * np.arange(1, 5))


# ---------------------------------------------------------------------------------------------
# Arguments: what is accepted, what raises
# ---------------------------------------------------------------------------------------------
ARGS = cuda("args", r"""
struct Affine { float scale; float shift; int n; };
extern "C" __global__ void args_kernel(const float* x, float* y, int n, double a, long long b, bool flip,
                                       unsigned char c, Affine t, const int* maybe) {
    int i = threadIdx.x;
    if (i >= n) return;
    float v = flip ? -x[i] : x[i];
    y[i] = (float)(v * a + b + c) * t.scale + t.shift + (float)t.n + (maybe == nullptr ? 0.5f : (float)maybe[i]);
}
""")
AFFINE = np.dtype([("scale", "<f4"), ("shift", "<f4"), ("n", "<i4")])


def args_kernel():
    return emu.Module(ARGS).get_function("args_kernel")


def good_args(x, y):
    affine = np.array((2.0, 1.0, 3), dtype=AFFINE)[()]
    return [x, y, np.int32(x.size), 1.5, 4, True, np.uint8(7), affine, None]


def test_scalars_structs_bools_and_null_pointers_as_cupy_passes_them(rng):
    x = rng.standard_normal(16).astype(np.float32)
    y = np.zeros_like(x)
    args_kernel()((1,), (32,), tuple(good_args(x, y)))
    np.testing.assert_allclose(y, (-x * 1.5 + 4 + 7) * 2 + 1 + 3 + 0.5, rtol=1e-6)
    args = good_args(x, y)
    args[8] = np.arange(16, dtype=np.int32)
    args_kernel()((1,), (32,), tuple(args))
    np.testing.assert_allclose(y, (-x * 1.5 + 4 + 7) * 2 + 1 + 3 + np.arange(16), rtol=1e-6)


@pytest.mark.parametrize("index, value, error, message", [
    (2, 16, TypeError, r"argument 2 \(int n\) takes 4 bytes \(integer\), but got a Python int.*int64.*numpy.int32"),
    (2, np.int64(16), TypeError, r"argument 2 \(int n\).*numpy.int64"),
    (2, np.float32(16), TypeError, r"argument 2 \(int n\).*float32"),
    (3, np.float32(1.5), TypeError, r"argument 3 \(double a\) takes 8 bytes \(floating point\).*float32"),
    (4, np.float64(4), TypeError, r"argument 4 \(long long int b\).*float64"),
    (5, np.int32(1), TypeError, r"argument 5 \(bool flip\)"),
    (7, np.float32(0), TypeError, r"argument 7 \(Affine t\) takes 12 bytes"),
    (0, np.float32(1), TypeError, r"argument 0 \(const float\* x\) takes an array"),
    (2, np.zeros(1, np.int32), TypeError, r"argument 2 \(int n\) is passed by value, but got an array"),
    (0, np.zeros(16, np.float64), TypeError, r"argument 0 \(const float\* x\) got a float64 array"),
    (8, np.zeros(16, np.int64), TypeError, r"argument 8 \(const int\* maybe\) got a int64 array"),
    (0, np.zeros((16, 2), np.float32)[:, 0], ValueError, r"argument 0 .*not C-contiguous.*CuPy would pass"),
    (0, np.zeros((4, 4), np.float32).T, ValueError, r"argument 0 .*not C-contiguous"),
    (2, "16", TypeError, r"argument 2 \(int n\): cannot pass a str"),
])
def test_wrong_arguments_raise_naming_kernel_and_argument(index, value, error, message):
    x = np.zeros(16, np.float32)
    args = good_args(x, x.copy())
    args[index] = value
    with pytest.raises(error, match=r"kernel 'args_kernel' " + message):
        args_kernel()((1,), (32,), tuple(args))


def test_a_read_only_array_needs_a_const_parameter():
    x = np.zeros(16, np.float32)
    y = np.zeros(16, np.float32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match=r"argument 1 \(float\* y\) points to non-const memory.*read-only"):
        args_kernel()((1,), (32,), tuple(good_args(x, y)))
    x.flags.writeable = False  # fine for `const float* x`
    args_kernel()((1,), (32,), tuple(good_args(x, np.zeros(16, np.float32))))


def test_argument_count_and_launch_shape_checks():
    fn = args_kernel()
    x = np.zeros(16, np.float32)
    with pytest.raises(TypeError, match=r"takes 9 arguments \(const float\* x, float\* y, int n.*but 2 were given"):
        fn((1,), (32,), (x, x))
    with pytest.raises(TypeError, match=r"grid must be a tuple"):
        fn(1, (32,), tuple(good_args(x, x.copy())))
    with pytest.raises(TypeError, match=r"args must be a tuple"):
        fn((1,), (32,), x)
    for block, message in [((1025,), "block dimension x is 1025"), ((32, 33), "1056 threads"), ((1, 1, 65), "dimension z is 65")]:
        with pytest.raises(ValueError, match=message):
            fn((1,), block, tuple(good_args(x, x.copy())))
    with pytest.raises(ValueError, match=r"grid dimension y is 65536"):
        fn((1, 65536), (32,), tuple(good_args(x, x.copy())))


LIMITS = cuda("limits", r"""
extern "C" __global__ void __launch_bounds__(128) bounded(float* x) { x[threadIdx.x] = 1.0f; }
extern "C" __global__ void big_tiles(float* out, int n) {
    __shared__ float a[4096];                      // 16 KB static
    __shared__ float b[4096], c[2048];             // 24 KB more, two declarators
    extern __shared__ float dyn[];
    int t = threadIdx.x;
    a[t] = 1.0f; b[t] = 2.0f; c[t] = 3.0f;
    if (n > 0) dyn[t] = 4.0f;
    __syncthreads();
    out[t] = a[t] + b[t] + c[t] + (n > 0 ? dyn[t] : 0.0f);
}
""")


def test_launch_bounds_are_enforced():
    fn = emu.Module(LIMITS).get_function("bounded")
    assert fn.max_threads_per_block == 128
    fn((1,), (128,), (np.zeros(128, np.float32),))
    with pytest.raises(ValueError, match=r"256 threads, more than the 128.*__launch_bounds__"):
        fn((1,), (256,), (np.zeros(256, np.float32),))


def test_shared_memory_limits_static_plus_dynamic():
    fn = emu.Module(LIMITS).get_function("big_tiles")
    out = np.zeros(32, np.float32)
    fn((1,), (32,), (out, np.int32(0)))                     # 40 KB static: fits 48 KB
    np.testing.assert_array_equal(out, 6)
    with pytest.raises(emu.ResourceError, match=r"big_tiles.*49152.*'a' 16384 bytes.*'c' 8192 bytes.*\+ 16384 dynamic"):
        fn((1,), (32,), (out, np.int32(1)), shared_mem=16384)
    with pytest.raises(ValueError, match=r"49153 bytes of dynamic shared memory.*max_dynamic_shared_size_bytes"):
        fn((1,), (32,), (out, np.int32(1)), shared_mem=49153)
    fn.max_dynamic_shared_size_bytes = 100_000              # opting in, as with cudaFuncSetAttribute
    fn((1,), (32,), (out, np.int32(1)), shared_mem=100_000)
    np.testing.assert_array_equal(out, 10)
    with pytest.raises(ValueError, match=r"max_dynamic_shared_size_bytes must be an int from 0 to 232448"):
        fn.max_dynamic_shared_size_bytes = 300_000


# ---------------------------------------------------------------------------------------------
# Broken kernels: they raise, they never hang or crash the interpreter
# ---------------------------------------------------------------------------------------------
BROKEN = cuda("broken", r"""
extern "C" __global__ void split_barrier(float* x) {
    if (threadIdx.x < 16) __syncthreads();
    else __syncthreads();
    x[threadIdx.x] = 1.0f;
}
extern "C" __global__ void shuffle_in_branch(float* x) {
    float v = x[threadIdx.x];
    if (threadIdx.x < 16) v += __shfl_down_sync(0xffffffffu, v, 1);
    __syncthreads();
    x[threadIdx.x] = v;
}
extern "C" __global__ void two_shuffles(float* x) {
    float v = x[threadIdx.x];
    if (threadIdx.x % 2) v = __shfl_xor_sync(0xffffffffu, v, 1);
    else v = __shfl_xor_sync(0xffffffffu, v, 1);
    x[threadIdx.x] = v;
}
extern "C" __global__ void reads_exited_lane(float* x, int n) {
    if (threadIdx.x >= n) return;
    float v = x[threadIdx.x];
    v += __shfl_down_sync(0xffffffffu, v, 16);
    x[threadIdx.x] = v;
}
extern "C" __global__ void wrong_mask(float* x) {
    x[threadIdx.x] = __shfl_sync(0x0000ffffu, x[threadIdx.x], 0);
}
extern "C" __global__ void null_write(float* x) { float* p = nullptr; p[threadIdx.x] = x[0]; }
extern "C" __global__ void divide(const int* a, int* out, int d) { out[threadIdx.x] = a[threadIdx.x] / d; }
extern "C" __global__ void checked(const int* a) { assert(a[threadIdx.x] < 5); }
__device__ int deep(int n) {
    volatile char pad[512];
    pad[0] = (char)n;
    return n == 0 ? 0 : deep(n - 1) + pad[0];
}
extern "C" __global__ void recurse(int* out, int n) { out[threadIdx.x] = deep(n); }
extern "C" __global__ void read_past(const float* x, float* y, int n) { y[threadIdx.x] = x[threadIdx.x + n]; }
extern "C" __global__ void write_past(float* y, int n) { y[n + (int)threadIdx.x] = 1.0f; }
extern "C" __global__ void in_place(float* a, float* b, int n) { if (threadIdx.x < n) b[threadIdx.x] = a[threadIdx.x] * 2.0f; }
extern "C" __global__ void twice_vec4(const float* x, float* y, int n, int* misaligned) {
    // float4 loads need 16-byte aligned pointers, as in vectorised elementwise kernels
    if ((reinterpret_cast<size_t>(x) | reinterpret_cast<size_t>(y)) % 16 != 0) { atomicAdd(misaligned, 1); return; }
    int i = threadIdx.x;
    if (4 * i + 3 < n) {
        float4 v = reinterpret_cast<const float4*>(x)[i];
        reinterpret_cast<float4*>(y)[i] = make_float4(2 * v.x, 2 * v.y, 2 * v.z, 2 * v.w);
    } else {
        for (int k = 4 * i; k < n && k < 4 * i + 4; ++k) y[k] = 2 * x[k];
    }
}
extern "C" __global__ void dynamic_overrun(float* y) {
    extern __shared__ float buffer[];
    buffer[threadIdx.x * 1024] = 1.0f;
    y[0] = buffer[0];
}
""")


def broken(name):
    return emu.Module(BROKEN).get_function(name)


@pytest.mark.parametrize("kernel, message", [
    # a barrier inside an if/else: two different __syncthreads()
    ("split_barrier", r"split_barrier.*different barriers.*threads 0-15 \(16\): wait at __syncthreads\(\) \(kernel.cu:3\)"
                      r".*threads 16-31 \(16\): wait at __syncthreads\(\) \(kernel.cu:4\)"),
    # a full-mask shuffle that only half the warp reaches
    ("shuffle_in_branch", r"shuffle_in_branch', block \(0, 0, 0\): deadlock.*threads 0-15 \(16\): wait at __shfl_down_sync"
                          r".*kernel.cu:9.*threads 16-31 \(16\): wait at __syncthreads\(\)"),
    # the two halves of the warp at two different shuffles
    ("two_shuffles", r"warp 0 meet at different warp collectives.*threads 0, 2, 4, 6, 8, 10, 12, 14, \.\.\. \(16\): wait "
                     r"at __shfl_xor_sync.*kernel.cu:16.*threads 1, 3, .* \(16\): .*kernel.cu:15"),
])
def test_barriers_that_cannot_complete_raise_instead_of_hanging(kernel, message):
    with pytest.raises(emu.DeadlockError, match="(?s)" + message):
        broken(kernel)((1,), (32,), (np.zeros(32, np.float32),))


def test_reading_a_lane_that_exited_or_does_not_exist_raises():
    x = np.arange(32, dtype=np.float32)
    broken("reads_exited_lane")((1,), (32,), (x, np.int32(32)))  # all lanes live: fine
    lane = np.arange(32)
    np.testing.assert_array_equal(x, lane + np.where(lane < 16, lane + 16, lane))  # lanes 16-31 get their own value
    with pytest.raises(emu.KernelError, match=r"lane 4 of warp 0 reads lane 20 in __shfl_down_sync.*lane 20 has exited"):
        broken("reads_exited_lane")((1,), (32,), (np.zeros(32, np.float32), np.int32(20)))
    with pytest.raises(emu.KernelError, match=r"reads lane 16 .*does not exist \(the block is smaller\)"):
        broken("reads_exited_lane")((1,), (16,), (np.zeros(16, np.float32), np.int32(16)))


def test_a_lane_outside_its_own_mask_raises():
    with pytest.raises(emu.KernelError, match=r"thread \(16, 0, 0\).*mask 0x0000ffff, which does not include the calling lane 16"):
        broken("wrong_mask")((1,), (32,), (np.zeros(32, np.float32),))


def test_faults_become_errors_naming_kernel_block_and_thread():
    with pytest.raises(emu.KernelError, match=r"null_write', block \(0, 0, 0\), thread \(0, 0, 0\): illegal memory write.*null"):
        broken("null_write")((1,), (4,), (np.zeros(4, np.float32),))
    with pytest.raises(emu.KernelError, match=r"divide.*integer division by zero"):
        broken("divide")((1,), (4,), (np.ones(4, np.int32), np.zeros(4, np.int32), np.int32(0)))
    with pytest.raises(emu.KernelError, match=r"checked.*thread \(3, 0, 0\): assertion failed: a\[threadIdx.x\] < 5 \(kernel.cu:30\)"):
        broken("checked")((1,), (8,), (np.array([0, 1, 2, 9, 0, 0, 0, 0], np.int32),))
    with pytest.raises(emu.KernelError, match=r"recurse.*stack overflow.*64 KB.*MINIGRAD_EMU_STACK_KB"):
        broken("recurse")((1,), (2,), (np.zeros(2, np.int32), np.int32(10_000)))
    with pytest.raises(emu.KernelError, match=r"dynamic_overrun.*past the end of dynamic shared memory: .*shared_mem=64 bytes"):
        broken("dynamic_overrun")((1,), (32,), (np.zeros(1, np.float32),), shared_mem=64)
    # the emulator is still usable afterwards
    out = np.zeros(2, np.int32)
    broken("recurse")((1,), (2,), (out, np.int32(10)))
    np.testing.assert_array_equal(out, 55)


def test_more_stack_on_request(monkeypatch):
    monkeypatch.setenv("MINIGRAD_EMU_STACK_KB", "4096")
    out = np.zeros(2, np.int32)
    broken("recurse")((1,), (2,), (out, np.int32(1000)))
    np.testing.assert_array_equal(out, sum((k + 128) % 256 - 128 for k in range(1001)))  # sum of (char)k


def test_bounds_checking_mode_names_the_argument(monkeypatch):
    monkeypatch.setenv("MINIGRAD_EMU_CHECK", "1")
    x = aligned(64, np.float32)                             # 256 bytes: x[64] is on the guard page
    x[:] = np.arange(64)
    y = np.zeros(64, np.float32)
    broken("read_past")((1,), (64,), (x, y, np.int32(0)))  # in bounds: fine, results copied back
    np.testing.assert_array_equal(y, x)
    with pytest.raises(emu.KernelError, match=r"read_past.*thread \(63, 0, 0\): out-of-bounds read 0 bytes past the end of "
                                              r"argument 0 'x' \(float32 array of shape \(64,\)\)"):
        broken("read_past")((1,), (64,), (x, y, np.int32(1)))
    with pytest.raises(emu.KernelError, match=r"out-of-bounds write 8000 bytes before the start of argument 0 'y'"):
        broken("write_past")((1,), (1,), (aligned(10, np.float32), np.int32(-2000)))
    with pytest.raises(emu.KernelError, match=r"write_past' wrote 4 bytes past the end of argument 0 'y' \(float32 array of "
                                              r"shape \(10,\)\) \(found by MINIGRAD_EMU_CHECK\)"):
        broken("write_past")((1,), (1,), (aligned(10, np.float32), np.int32(10)))
    a = np.arange(8, dtype=np.float32)
    broken("in_place")((1,), (8,), (a, a, np.int32(8)))     # the same array twice shares one copy
    np.testing.assert_array_equal(a, 2 * np.arange(8))


def test_bounds_checking_keeps_vector_alignment(monkeypatch):
    monkeypatch.setenv("MINIGRAD_EMU_CHECK", "1")
    x, y = aligned(22, np.float32), aligned(22, np.float32)  # 88 bytes: not a whole number of float4s
    x[:] = np.arange(22)
    misaligned = np.zeros(1, np.int32)
    broken("twice_vec4")((1,), (8,), (x, y, np.int32(22), misaligned))
    assert misaligned[0] == 0
    np.testing.assert_array_equal(y, 2 * np.arange(22))


def test_printf_from_a_kernel(capfd):
    run(cuda("printf", r"""
extern "C" __global__ void hello(int k) { printf("block %d thread %d k=%d\n", blockIdx.x, threadIdx.x, k); }
"""), "hello", (2,), (2,), (np.int32(7),))
    assert capfd.readouterr().out.splitlines() == [f"block {b} thread {t} k=7" for b in range(2) for t in range(2)]


def test_launches_from_two_python_threads(rng):
    import threading
    fn = emu.Module(BLOCK_REDUCE).get_function("chunk_sums")
    inputs = [rng.standard_normal(4096) for _ in range(8)]
    outputs = [np.zeros(16) for _ in inputs]

    def work(k):
        for i in range(k, len(inputs), 2):
            fn((16,), (256,), (inputs[i], outputs[i], np.int32(4096)))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, out in zip(inputs, outputs):
        rows = x.reshape(16, 256)
        assert_within(out, rows.sum(axis=1), sum_error(np.abs(rows).sum(axis=1), 256))


def test_raw_kernel_and_parameter_introspection():
    fn = emu.RawKernel(AXPY, "axpy_f32")
    assert [str(p) for p in fn.parameters] == ["const float* x", "float* y", "float a", "long long int n"]
    assert repr(fn) == "<emulated kernel axpy_f32(const float* x, float* y, float a, long long int n)>"
    assert fn.max_threads_per_block == 1024 and fn.max_dynamic_shared_size_bytes == 48 * 1024


# ---------------------------------------------------------------------------------------------
# Building: errors, the cache, the compiler
# ---------------------------------------------------------------------------------------------
def test_compile_error_shows_the_message_and_line():
    with pytest.raises(emu.CompileError, match=r"(?s)kernel.cu:3:\d+: error: .*not_declared.*x\[i\] = not_declared"):
        emu.Module('extern "C" __global__ void k(float* x) {\n'
                   '    int i = threadIdx.x;\n'
                   '    x[i] = not_declared;\n'
                   '}\n')


GUARDED_ASM = cuda("guarded_asm", r"""
extern "C" __global__ void lane_id(unsigned* out) {
    unsigned id;
#if defined(__CUDA_ARCH__)
    asm("mov.u32 %0, %%laneid;" : "=r"(id));
#else
    id = threadIdx.x % 32;
#endif
    out[threadIdx.x] = id;
}
""")


def test_inline_ptx_is_refused_with_a_way_out():
    with pytest.raises(emu.CompileError, match=r"kernel.cu:3: inline assembly \(asm\) is PTX.*__CUDA_ARCH__"):
        emu.Module('extern "C" __global__ void lane(unsigned* out) {\n'
                   '    unsigned id;\n'
                   '    asm("mov.u32 %0, %%laneid;" : "=r"(id));\n'
                   '    out[threadIdx.x] = id;\n'
                   '}\n')
    out = np.zeros(40, np.uint32)
    run(GUARDED_ASM, "lane_id", (1,), (40,), (out,))
    np.testing.assert_array_equal(out, np.arange(40) % 32)


def test_kernels_are_found_by_name_when_they_are_extern_c_as_in_cupy():
    mod = emu.Module('__global__ void mangled(float* x) { x[0] = 1.0f; }\n'
                     'extern "C" __global__ void plain(float* x) { x[0] = 2.0f; }\n'
                     'extern "C" {\n__global__ void in_block(float* x) { x[0] = 3.0f; }\n}\n'
                     'namespace ops { extern "C" __global__ void in_namespace(float* x) { x[0] = 4.0f; } }\n')
    assert mod.kernel_names == ("plain", "in_block", "in_namespace")
    x = np.zeros(1, np.float32)
    for name, value in [("plain", 2), ("in_block", 3), ("in_namespace", 4)]:
        mod.get_function(name)((1,), (1,), (x,))
        assert x[0] == value
    with pytest.raises(ValueError, match=r"'mangled' is a __global__ function without extern \"C\""):
        mod.get_function("mangled")
    with pytest.raises(ValueError, match=r"no kernel named 'nope'; its kernels are \['in_block', 'in_namespace', 'plain'\]"):
        mod.get_function("nope")


def test_options_include_paths_and_defines_and_the_cache_follows_the_header(tmp_path):
    header = tmp_path / "scale.cuh"
    header.write_text("#define FACTOR 3.0f\n")
    code = ('#include "scale.cuh"\n'
            'extern "C" __global__ void times(float* x) { x[threadIdx.x] *= FACTOR * OFFSET; }\n')
    x = np.ones(4, np.float32)
    emu.Module(code, options=("-I", str(tmp_path), "-DOFFSET=2", "--use_fast_math")).get_function("times")((1,), (4,), (x,))
    np.testing.assert_array_equal(x, 6)
    header.write_text("#define FACTOR 5.0f\n")   # same source and options, changed header: rebuilt
    emu.Module(code, options=("-I", str(tmp_path), "-DOFFSET=2", "--use_fast_math")).get_function("times")((1,), (4,), (x,))
    np.testing.assert_array_equal(x, 60)
    same = emu.Module(code, options=(f"-I{tmp_path}", "--define-macro=OFFSET=2"))  # other spellings of the options
    assert same._lib is emu.Module(code, options=(f"-I{tmp_path}", "--define-macro=OFFSET=2"))._lib  # loaded once


ROOT = str(pathlib.Path(__file__).resolve().parents[1])


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT, **env})


def test_two_processes_compiling_the_same_module_at_once(tmp_path):
    script = """
        import numpy as np
        from minigrad.backend.cuda import emulator as emu
        x = np.arange(100, dtype=np.float32); y = np.zeros(100, np.float32)
        emu.Module(%r).get_function("axpy_f32")((1,), (128,), (x, y, np.float32(2), np.int64(100)))
        print(int(y.sum()))
    """ % AXPY
    env = {**os.environ, "PYTHONPATH": ROOT, "MINIGRAD_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [o.strip() for o, _ in outs] == ["9900", "9900"], outs
    assert len(list((tmp_path / "emulator").glob("*.so"))) == 1
    assert not [p for p in (tmp_path / "emulator").iterdir() if p.is_dir()]  # no temporary left behind


SPIN = cuda("spin", r"""
extern "C" __global__ void spin(volatile int* flag) {
    if (blockIdx.x == 1) *flag = 1;
    else while (*flag == 0) {}          // waits for block 1, which runs after block 0: forever
}
""")


def test_ctrl_c_stops_a_kernel_that_never_finishes():
    """A block that spins until another block sets a flag never finishes here (blocks run one
    after another): Ctrl-C must still get the user out, with KeyboardInterrupt."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import signal
        import numpy as np
        from minigrad.backend.cuda import emulator as emu
        spin = emu.Module(%r).get_function("spin")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # outside the launch, Ctrl-C does nothing
        print("launching", flush=True)
        try:
            spin((2,), (1,), (np.zeros(1, np.int32),))
        except KeyboardInterrupt as e:
            print("interrupted:", e, flush=True)
    """ % SPIN)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.stdout.readline().strip() == "launching"
    for _ in range(100):  # the first Ctrl-C in the launch asks the scheduler to stop, a thread that
        time.sleep(0.2)   # never yields needs a second one
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "interrupted: kernel 'spin', block (0, 0, 0): interrupted" in out, err


def _assert_chunk_sums_in_a_fresh_process(**env):
    """BLOCK_REDUCE's chunk sums of 0..999 computed in a new Python with ``env`` set: the
    same numbers whatever the emulator's build or scheduling mode."""
    result = run_python("""
        import numpy as np
        from minigrad.backend.cuda import emulator as emu
        x = np.arange(1000.0); out = np.zeros(4)
        emu.Module(%r).get_function("chunk_sums")((4,), (256,), (x, out, np.int32(1000)))
        print(*out)
    """ % BLOCK_REDUCE, **env)
    sums = [float(c.sum()) for c in np.split(np.arange(1000.0), [256, 512, 768])]
    assert [float(v) for v in result.stdout.split()] == sums, result.stderr


def test_portable_ucontext_fibers_give_the_same_results(tmp_path):
    _assert_chunk_sums_in_a_fresh_process(MINIGRAD_EMU_UCONTEXT="1", MINIGRAD_CACHE=str(tmp_path))


def test_debug_builds_run_the_same_and_keep_the_source_for_gdb(tmp_path):
    _assert_chunk_sums_in_a_fresh_process(MINIGRAD_EMU_DEBUG="1", MINIGRAD_CACHE=str(tmp_path))
    [copy] = (tmp_path / "emulator").glob("*-src/kernel.cu")
    assert copy.read_text() == BLOCK_REDUCE


def test_without_a_compiler_available_says_why():
    result = run_python("""
        from minigrad.backend.cuda import emulator as emu
        a = emu.available()
        print(bool(a), a)
        try:
            emu.Module('extern "C" __global__ void k() {}')
        except emu.EmulatorError as e:
            print("raised:", e)
    """, MINIGRAD_EMU_CXX="/nonexistent/g++")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("False the CUDA emulator cannot build its runtime here") and "/nonexistent/g++" in lines[0]
    assert lines[1].startswith("raised: the CUDA emulator cannot build its runtime here")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_kernels_compile_with_nvcc(tmp_path):
    """Every kernel in this file is real CUDA: nvcc compiles them all, as one translation unit with
    each source in a namespace of its own (a .cu file each would take nvcc ten times as long)."""
    unit = "#include <cassert>\n#include <cstdio>\n#include <math_constants.h>\n"
    for name, code in SOURCES.items():
        body = code.replace("#include <math_constants.h>", "")
        unit += f'namespace {name}_source {{\n#line 1 "{name}.cu"\n{body}\n}}\n#undef TILE\n#undef ROWS\n'
    (tmp_path / "all.cu").write_text(unit)
    result = subprocess.run(["nvcc", "-arch=sm_90", "-std=c++17", "-c", "-x", "cu", "all.cu", "-o", "all.o"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(SOURCES) >= 15
