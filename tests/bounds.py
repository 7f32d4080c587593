"""Error bounds for comparing floating-point results computed along different paths.

A test that compares minigrad with NumPy (or PyTorch, or the GPU with the CPU) must not
depend on the summation order a BLAS, a reduction kernel or a GPU picks, nor on which libm
evaluates exp or erf: machines differ (AVX2 or AVX-512 kernels, OpenBLAS or MKL, glibc or
another libm, CUDA).  The tolerances follow from the standard bounds (Higham, "Accuracy and
Stability of Numerical Algorithms", ch. 2-3):

  * one rounding errs by at most u |result|, u = 2^-53 (float64) or 2^-24 (float32);
  * a sum of n terms, in any order, errs by at most gamma_n sum |terms|,
    gamma_n = n u / (1 - n u), so two orders differ by at most twice that;
  * a libm-grade function (exp, log, tanh, erf: glibc, NumPy's SIMD code, CUDA's) is within
    4 ulp, so two implementations differ by at most 8 ulp = 16 u of the result.
"""
import numpy as np

LIBM_ULPS = 4  # the documented accuracy of the libm-grade functions minigrad's paths use


def unit_roundoff(dtype):
    """u: half the spacing of 1.0 (2^-53 for float64, 2^-24 for float32)."""
    return float(np.finfo(dtype).eps) / 2


def gamma(n, dtype=np.float64):
    """gamma_n = n u / (1 - n u): the relative bound of n roundings."""
    nu = n * unit_roundoff(dtype)
    return nu / (1 - nu)


def sum_error(abs_sum, n, dtype=np.float64):
    """How far two evaluations of a sum of n terms (in any orders) can be apart, given the
    sum of the terms' absolute values: 2 gamma_n sum |terms|."""
    return 2 * gamma(max(n, 1), dtype) * np.asarray(abs_sum, dtype=np.float64)


def assert_within(got, want, err, what=""):
    """|got - want| <= err elementwise (err broadcasts), with NaN exactly where ``want`` is NaN."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
    err = np.broadcast_to(np.asarray(err, dtype=np.float64), want.shape)
    ok = np.isnan(want) | (got == want) | (np.abs(got - want) <= err)
    if not ok.all():
        i = np.flatnonzero(~ok.ravel())[0]
        raise AssertionError(f"{what}: element {np.unravel_index(i, want.shape)}: got {got.ravel()[i]!r}, "
                             f"want {want.ravel()[i]!r}, allowed error {err.ravel()[i]:.3g} "
                             f"({(~ok).sum()} of {ok.size} elements off)")
