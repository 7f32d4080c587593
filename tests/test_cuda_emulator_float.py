"""The emulator's floating point against a GPU's, as CuPy compiles for it (docs/emulator.md,
"Floating point"): multiply-adds contracted into FMAs (NVRTC's default, -fmad=true) except
through the _rn intrinsics, and float32 denormals flushed to zero (CuPy always passes
-ftz=true) while float64 keeps them.

Each case uses numbers whose result tells the two behaviours apart exactly:

* a = 1 + 2^-12 in float32: a * a = 1 + 2^-11 + 2^-24 exactly, which rounds (a tie, to even)
  to 1 + 2^-11. So a * a - (1 + 2^-11) is 2^-24 when fused (one rounding, of the exact
  result) and 0 when the product is rounded first. In float64 the same with a = 1 + 2^-27:
  2^-54 fused, 0 unfused.
* 2^-126 is float32's smallest normal number: half of it is a denormal, which a GPU flushes to
  zero (keeping the sign) under -ftz=true, and a denormal input counts as zero.
"""
import platform

import numpy as np
import pytest

from minigrad.backend.cuda import emulator

pytestmark = pytest.mark.skipif(not emulator.available(), reason=str(emulator.available()))

SOURCE = r"""
#define MG_ELEMENTWISE(name, T, expr)                                                        \
    extern "C" __global__ void name(const T* a, const T* b, const T* c, T* out, long long n) { \
        long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;                      \
        if (i < n) out[i] = expr;                                                            \
    }
MG_ELEMENTWISE(muladd_f32, float, a[i] * b[i] + c[i])
MG_ELEMENTWISE(muladd_f64, double, a[i] * b[i] + c[i])
MG_ELEMENTWISE(mul_rn_add_f32, float, __fmul_rn(a[i], b[i]) + c[i])
MG_ELEMENTWISE(mul_rn_add_f64, double, __dmul_rn(a[i], b[i]) + c[i])
MG_ELEMENTWISE(mul_add_rn_f32, float, __fadd_rn(a[i] * b[i], c[i]))
MG_ELEMENTWISE(mul_add_rn_f64, double, __dadd_rn(a[i] * b[i], c[i]))
MG_ELEMENTWISE(fma_rn_f32, float, __fmaf_rn(a[i], b[i], c[i]))
MG_ELEMENTWISE(fma_rn_f64, double, __fma_rn(a[i], b[i], c[i]))

extern "C" __global__ void scale_f32(const float* x, float* y, float s, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * s;
}
extern "C" __global__ void scale_f64(const double* x, double* y, double s, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * s;
}
// float arithmetic in a kernel that also takes a double: the one switch of the CPU follows
// the double, so this kernel keeps float denormals (a GPU would flush them)
extern "C" __global__ void scale_mixed(const float* x, float* y, double s, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * static_cast<float>(s);
}
extern "C" __global__ void fault_f32(float* x) {
    float* nowhere = nullptr;
    x[0] = x[0] * 0.5f;
    nowhere[threadIdx.x] = x[0];
}
"""

# dtype -> (a, c, the fused result a * a + c)
FMA_CASES = {np.float32: (1 + 2.0 ** -12, -(1 + 2.0 ** -11), 2.0 ** -24),
             np.float64: (1 + 2.0 ** -27, -(1 + 2.0 ** -26), 2.0 ** -54)}


@pytest.fixture(scope="module")
def module():
    return emulator.Module(SOURCE)


def _contraction_off():
    """Why g++ does not contract here (then the emulator cannot show it), or None."""
    flags = emulator._get_toolchain().flags
    if "-O0" in flags:
        return "MINIGRAD_EMU_DEBUG=1 builds at -O0, where g++ contracts nothing"
    if platform.machine() in ("x86_64", "AMD64") and "-mfma" not in flags:
        return "this x86-64 CPU has no FMA instructions"
    return None


def _launch(module, name, dtype, a, b, c):
    args = [np.full(4, v, dtype) for v in (a, b, c)]
    out = np.full(4, np.nan, dtype)
    module.get_function(f"{name}_{'f32' if dtype == np.float32 else 'f64'}")((1,), (4,), (*args, out, np.int64(4)))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multiply_add_is_fused_as_nvrtc_fuses_it(module, dtype):
    reason = _contraction_off()
    if reason:
        pytest.skip(reason)
    a, c, fused = FMA_CASES[dtype]
    assert fused != 0 and dtype(a) * dtype(a) + dtype(c) == 0  # NumPy rounds the product first
    np.testing.assert_array_equal(_launch(module, "muladd", dtype, a, a, c), dtype(fused))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["mul_rn_add", "mul_add_rn"])
def test_rn_intrinsics_are_never_fused(module, dtype, name):
    a, c, _ = FMA_CASES[dtype]
    np.testing.assert_array_equal(_launch(module, name, dtype, a, a, c), dtype(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_explicit_fma_is_fused(module, dtype):
    a, c, fused = FMA_CASES[dtype]
    np.testing.assert_array_equal(_launch(module, "fma_rn", dtype, a, a, c), dtype(fused))


def _scale(module, name, dtype, x, s, scalar=None):
    x = np.asarray(x, dtype)
    y = np.full_like(x, np.nan)
    module.get_function(name)((1,), (32,), (x, y, (scalar or dtype)(s), np.int64(x.size)))
    return y


TINY32 = 2.0 ** -126  # float32's smallest normal number


def test_float32_kernels_flush_denormals_to_zero(module):
    # results: a denormal product becomes a zero of its sign; a normal one is untouched
    y = _scale(module, "scale_f32", np.float32, [TINY32, -TINY32, 2 * TINY32], 0.5)
    np.testing.assert_array_equal(y, np.float32([0, 0, TINY32]))
    assert np.signbit(y).tolist() == [False, True, False]
    # inputs: a denormal counts as zero
    y = _scale(module, "scale_f32", np.float32, [TINY32 / 16, -TINY32 / 16], 2.0)
    assert y.tolist() == [0, 0] and np.signbit(y).tolist() == [False, True]


def test_float64_kernels_keep_denormals(module):
    tiny64 = 2.0 ** -1022
    y = _scale(module, "scale_f64", np.float64, [tiny64, TINY32 / 2], 0.5)
    assert y[0] == tiny64 / 2 and 0 < y[0] < tiny64  # a float64 denormal
    assert y[1] == TINY32 / 4


def test_a_kernel_with_a_double_parameter_keeps_float_denormals(module):
    """The documented difference: one switch for both precisions, set by the double."""
    y = _scale(module, "scale_mixed", np.float32, [TINY32], 0.5, scalar=np.float64)
    assert y[0] == np.float32(TINY32 / 2) and y[0] > 0


def _numpy_keeps_denormals():
    x = np.full(8, TINY32, np.float32)
    return bool(np.all((x * np.float32(0.5)) > 0))


def test_the_caller_keeps_its_denormals_after_a_launch(module):
    assert _numpy_keeps_denormals()
    _scale(module, "scale_f32", np.float32, [TINY32], 0.5)
    assert _numpy_keeps_denormals()  # the launch restored the CPU's mode
    with pytest.raises(emulator.KernelError):
        module.get_function("fault_f32")((1,), (1,), (np.ones(1, np.float32),))
    assert _numpy_keeps_denormals()  # also when the kernel faulted
