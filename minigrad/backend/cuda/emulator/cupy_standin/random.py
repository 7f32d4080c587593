"""``cupy.random.default_rng`` of the stand-in: a Generator with exactly CuPy 14's methods.

CuPy's ``Generator`` (cupy/random/_generator_api.pyx) is not NumPy's: it has ``random``,
``uniform``, ``integers``, ``standard_normal``, ``standard_exponential``, ``exponential``,
``gamma``, ``standard_gamma``, ``beta``, ``binomial``, ``chisquare``, ``dirichlet``, ``f``,
``geometric``, ``hypergeometric``, ``logseries``, ``poisson`` and ``power``, and NOT
``normal``, ``choice``, ``permutation``, ``shuffle``, ``lognormal``, ...  Code that calls one of
those works on NumPy and fails on the first GPU; here it fails with an AttributeError at once.
The numbers come from NumPy's generator (they are not CuPy's XORWOW stream), always as device
arrays (0-d when ``size`` is None, never host numbers).
"""
import numpy as np

from .core import ndarray, wrap


def _param(x, name):
    """A distribution parameter: a device array or a scalar (CuPy refuses host arrays)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (np.ndarray, list, tuple)):
        raise TypeError(f"{name} is required to be a cupy.ndarray or a scalar")
    return x


def _out(values, out):
    if out is None:
        return wrap(np.asarray(values))
    out._a[...] = values
    return out


class Generator:
    """CuPy 14's ``cupy.random.Generator`` (its methods and signatures), on NumPy's generator."""

    def __init__(self, bit_generator):
        self.bit_generator = bit_generator
        self._rng = np.random.default_rng(bit_generator)

    def random(self, size=None, dtype=np.float64, out=None):
        return _out(self._rng.random(size, dtype=np.dtype(dtype).type), out)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return wrap(np.asarray(self._rng.uniform(_param(low, "low"), _param(high, "high"), size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        low = int(low)  # CuPy reads the bounds on the host (a device array here is a download)
        high = None if high is None else int(high)
        return wrap(np.asarray(self._rng.integers(low, high, size, dtype=dtype, endpoint=endpoint)))

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        dtype = np.dtype(dtype)
        if dtype.char not in "fd":
            raise TypeError(f"Unsupported dtype {dtype.name} for standard_normal")
        return _out(self._rng.standard_normal(size, dtype=dtype.type), out)

    def standard_exponential(self, size=None, dtype=np.float64, method="inv", out=None):
        if method == "zig":
            raise NotImplementedError("Ziggurat method is not supported")
        return _out(self._rng.standard_exponential(size, dtype=np.dtype(dtype).type, method="inv"), out)

    def exponential(self, scale=1.0, size=None):
        return self.standard_exponential(size) * scale

    def standard_gamma(self, shape, size=None, dtype=np.float64, out=None):
        return _out(self._rng.standard_gamma(_param(shape, "shape"), size).astype(dtype), out)

    def gamma(self, shape, scale=1.0, size=None):
        return wrap(np.asarray(self._rng.gamma(_param(shape, "shape"), _param(scale, "scale"), size)))

    def beta(self, a, b, size=None, dtype=np.float64):
        return wrap(np.asarray(self._rng.beta(_param(a, "a"), _param(b, "b"), size)).astype(dtype))

    def binomial(self, n, p, size=None):
        return wrap(np.asarray(self._rng.binomial(_param(n, "n"), _param(p, "p"), size)))

    def chisquare(self, df, size=None):
        return wrap(np.asarray(self._rng.chisquare(_param(df, "df"), size)))

    def dirichlet(self, alpha, size=None):
        return wrap(np.asarray(self._rng.dirichlet(_param(alpha, "alpha"), size)))

    def f(self, dfnum, dfden, size=None):
        return wrap(np.asarray(self._rng.f(_param(dfnum, "dfnum"), _param(dfden, "dfden"), size)))

    def geometric(self, p, size=None):
        return wrap(np.asarray(self._rng.geometric(_param(p, "p"), size)))

    def hypergeometric(self, ngood, nbad, nsample, size=None):
        return wrap(np.asarray(self._rng.hypergeometric(_param(ngood, "ngood"), _param(nbad, "nbad"),
                                                        _param(nsample, "nsample"), size)))

    def logseries(self, p, size=None):
        return wrap(np.asarray(self._rng.logseries(_param(p, "p"), size)))

    def poisson(self, lam=1.0, size=None):
        return wrap(np.asarray(self._rng.poisson(_param(lam, "lam"), size)))

    def power(self, a, size=None):
        return wrap(np.asarray(self._rng.power(_param(a, "a"), size)))


def default_rng(seed=None):
    """A Generator seeded with ``seed`` (an int, or None for fresh entropy)."""
    return Generator(seed)
