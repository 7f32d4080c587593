"""The CUDA emulator (minigrad/backend/cuda_emulator.py): CUDA C kernels run on the CPU.

Every kernel below is small, real CUDA C (test_kernels_compile_with_nvcc proves it), and every
test compares what the emulated kernel computed with NumPy.
"""
import numpy as np
import pytest

from minigrad.backend import cuda_emulator as emu

pytestmark = pytest.mark.skipif(not emu.available(), reason=str(emu.available()))

ELEMENTWISE = r"""
extern "C" __global__ void axpy_f32(const float* __restrict__ x, float* __restrict__ y, float a, long long n) {
    // grid-stride loop: any grid covers any n
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] += a * x[i];
}
"""

BLOCK_REDUCE = r"""
// one block per row of 256: shared-memory tree reduction with __syncthreads
extern "C" __global__ void row_sum_256(const float* x, float* out, int n) {
    __shared__ float s[256];
    int t = threadIdx.x;
    int i = blockIdx.x * 256 + t;
    s[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int k = 128; k > 0; k >>= 1) {
        if (t < k) s[t] += s[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}
"""

WARP_REDUCE = r"""
extern "C" __global__ void warp_sums(const float* x, float* out) {
    float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x % 32 == 0) out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = v;
}
"""

DYNAMIC_SHARED = r"""
extern __shared__ float stage[];   // file scope, standard spelling
extern "C" __global__ void reverse_block(const float* x, float* y) {
    int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    stage[t] = x[base + t];
    __syncthreads();
    y[base + t] = stage[blockDim.x - 1 - t];
}
"""


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def test_grid_stride_elementwise(rng):
    fn = emu.Module(ELEMENTWISE).get_function("axpy_f32")
    x = rng.standard_normal(10_000).astype(np.float32)
    y = rng.standard_normal(10_000).astype(np.float32)
    expected = y + np.float32(2.5) * x
    fn((7,), (128,), (x, y, np.float32(2.5), np.int64(x.size)))  # 896 threads for 10000 elements
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_block_reduction_with_syncthreads(rng):
    fn = emu.Module(BLOCK_REDUCE).get_function("row_sum_256")
    x = rng.standard_normal(1000).astype(np.float32)
    out = np.zeros(4, np.float32)
    fn((4,), (256,), (x, out, np.int32(x.size)))
    padded = np.concatenate([x, np.zeros(24, np.float32)]).reshape(4, 256)
    np.testing.assert_allclose(out, padded.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_warp_shuffle_reduction(rng):
    fn = emu.Module(WARP_REDUCE).get_function("warp_sums")
    x = rng.standard_normal(2 * 96).astype(np.float32)
    out = np.zeros(6, np.float32)
    fn((2,), (96,), (x, out))
    np.testing.assert_allclose(out, x.reshape(6, 32).sum(axis=1), rtol=1e-5, atol=1e-6)


def test_dynamic_shared_memory(rng):
    fn = emu.Module(DYNAMIC_SHARED).get_function("reverse_block")
    x = rng.standard_normal(3 * 64).astype(np.float32)
    y = np.zeros_like(x)
    fn((3,), (64,), (x, y), shared_mem=64 * 4)
    np.testing.assert_array_equal(y, x.reshape(3, 64)[:, ::-1].ravel())


def test_barrier_in_divergent_code_raises_instead_of_hanging():
    fn = emu.Module(r"""
extern "C" __global__ void split_barrier(float* x) {
    if (threadIdx.x < 16) __syncthreads();
    else __syncthreads();
    x[threadIdx.x] = 1.0f;
}
""").get_function("split_barrier")
    with pytest.raises(emu.DeadlockError, match=r"(?s)split_barrier.*threads 0-15.*kernel.cu:3.*threads 16-31.*kernel.cu:4"):
        fn((1,), (32,), (np.zeros(32, np.float32),))


def test_wrong_scalar_size_raises():
    fn = emu.Module(ELEMENTWISE).get_function("axpy_f32")
    x = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match=r"axpy_f32.*argument 2 \(float a\).*float64"):
        fn((1,), (4,), (x, x.copy(), 2.5, np.int64(4)))   # a Python float is a double for CuPy


def test_compile_error_shows_the_message_and_line():
    with pytest.raises(emu.CompileError, match=r"(?s)kernel.cu:3:.*not_declared"):
        emu.Module('extern "C" __global__ void k(float* x) {\n'
                   '    int i = threadIdx.x;\n'
                   '    x[i] = not_declared;\n'
                   '}\n')
