"""Fit the float32 erf that minigrad's numba GELU kernels use (cpu_kernels.ERF32).

NumPy has no erf, and numba's ``math.erf`` is a scalar libm call that LLVM cannot vectorise,
so a float32 GELU spent most of its time in it.  This script fits a rational function that
vectorises (multiplies, adds, one divide), evaluated in float64 and rounded to float32:

    erf(x) ~= x * P(s) / Q(s),   s = x^2 / XMAX^2,   |x| <= XMAX
    erf(x)  = sign(x)            |x| >  XMAX  (there 1 - erf(x) < 2^-25, below float32's spacing near 1)

P and Q have degree 5 (Q(0) = 1).  The fit minimises the relative error on Chebyshev nodes
in s by the Sanathanan-Koerner iteration: each round solves the linear least-squares problem
P(s_i) - f_i Q(s_i) ~ 0 weighted by 1 / Q_prev(s_i), which converges to the rational
least-squares fit (f_i = erf(x_i) / x_i, computed in float64 with math.erf).

    python tools/fit_erf.py            # prints the coefficients and the float32 error

tests/test_ops_activation.py checks that the coefficients in cpu_kernels, and a fresh fit, have
relative error below 2^-25 (so the float32 result is within one ulp), and the float32 error on a
dense grid.  It does not compare the coefficients digit by digit: the least-squares solve rounds
differently on another CPU's LAPACK (~3e-11 relative), giving a different but equally good fit.
"""
import math

import numpy as np

XMAX = 3.9           # float32 erf(x) is 1 beyond ~3.92
DEGREE = 5
NODES = 4000


def fit(degree=DEGREE, xmax=XMAX, nodes=NODES, rounds=8):
    """(p, q): coefficients in increasing powers of s = x^2 / xmax^2, q[0] = 1."""
    s = 0.5 * (1 - np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes))   # Chebyshev nodes on [0, 1]
    x = xmax * np.sqrt(s)
    f = np.array([math.erf(v) / v if v else 2 / math.sqrt(math.pi) for v in x])
    powers = s[:, None] ** np.arange(degree + 1)
    weight = np.ones_like(s)
    for _ in range(rounds):
        # unknowns p0..pd, q1..qd;  P(s) - f (1 + sum q_k s^k) = 0,  all divided by f Q_prev
        a = np.hstack([powers, -f[:, None] * powers[:, 1:]]) * (weight / f)[:, None]
        b = weight                                                         # f * 1 / f
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
        p, q = coef[:degree + 1], np.concatenate([[1.0], coef[degree + 1:]])
        weight = 1 / (powers @ q)
    return p, q


def erf32(x, p, q, xmax=XMAX):
    """The approximation as the numba kernel computes it: a float32 input widened to float64,
    Horner's rule for P and Q, the result rounded to float32 (the fit's relative error,
    ~2e-8, is below float32's 6e-8, so the result is within one float32 ulp of erf)."""
    x = np.asarray(x, np.float32).astype(np.float64)
    s = np.minimum(x * x * (1 / xmax ** 2), 1.0)
    num, den = p[-1], q[-1]
    for k in range(len(p) - 2, -1, -1):
        num, den = num * s + p[k], den * s + q[k]
    return np.where(np.abs(x) > xmax, np.sign(x), x * (num / den)).astype(np.float32)


def max_error(p, q, points=2_000_001, xmax=5.0):
    """(largest absolute error, largest error in float32 ulps of the true value) on a grid."""
    x = np.linspace(-xmax, xmax, points).astype(np.float32)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    err = np.abs(erf32(x, p, q).astype(np.float64) - exact)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    ulp[exact == 0] = np.spacing(np.float32(0))
    return err.max(), (err / ulp).max()


if __name__ == "__main__":
    p, q = fit()
    print("P =", ", ".join(repr(float(c)) for c in p))
    print("Q =", ", ".join(repr(float(c)) for c in q))
    abs_err, ulps = max_error(p, q)
    print(f"float32 evaluation on [-5, 5]: max |error| {abs_err:.2e}, {ulps:.1f} ulp")
