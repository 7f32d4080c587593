"""The stand-in's array: CuPy's ``ndarray`` behaviour, with a NumPy array as its device memory.

The class is deliberately NOT a NumPy array, and it refuses what CuPy refuses:

* ``numpy.asarray(x)`` / ``numpy.array(x)`` raise CuPy's ``TypeError`` ("Implicit conversion to
  a NumPy array is not allowed..."): host code must ask for the data (``x.get()``,
  ``cupy.asnumpy(x)``), which is a transfer, and counted;
* a NumPy array (or a list) handed to a ufunc, an operator, a routine or ``x[...] = value``
  raises ``TypeError: Unsupported type <class 'numpy.ndarray'>``: CuPy never uploads host data
  behind your back (only ``asarray``/``array`` do, and an index given as a list or NumPy array);
* reductions (``x.sum()``, ``x.max()``) return 0-d device arrays, never host numbers;
* integer-array indexing and ``take`` wrap out-of-range indices around (``x[[5]]`` of a length-3
  array is ``x[2]``), as CuPy does; Python ints out of range raise ``IndexError``;
* ``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``, ``x.tolist()``, printing, and boolean-mask
  indexing (the host must learn the result's size) work as in CuPy, and are counted as
  downloads or synchronisations (transfers.py).

Stricter than CuPy, on purpose: fresh ``empty`` memory holds NaN (or -1), as a GPU's holds
garbage, so a kernel that forgets to write an element cannot pass for a lucky zero; writing
into a broadcast view raises (on a GPU it is a data race); ``ufunc.at`` is left out (float
atomics, whose order and so whose result varies from run to run: minigrad must not use them).
"""
import numpy as np

from . import transfers

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")


def _unsupported(value):
    """CuPy's error for a host array where device data is needed (cupy/_core/_kernel.pyx)."""
    return TypeError(f"Unsupported type {type(value)}")


def _poisoned(a):
    """Fresh device memory: NaN for floats, -1 for integers, never a helpful zero."""
    if a.size:
        a.fill(np.nan if a.dtype.kind in "fc" else (True if a.dtype.kind == "b" else -1))
    return a


# ---------------------------------------------------------------------------------------------
# Crossing between the stand-in and NumPy: the storage in, device arrays out
# ---------------------------------------------------------------------------------------------


def unwrap(value):
    """The NumPy storage behind device arrays in an argument (lists and tuples looked into);
    host arrays are refused, as CuPy refuses them; scalars, dtypes, shapes, None pass."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        raise _unsupported(value)
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v) for v in value)
    return value


def wrap(result):
    """NumPy results as device arrays; a NumPy scalar (a full reduction) becomes a 0-d array."""
    if isinstance(result, np.ndarray):
        return ndarray._of(result)
    if isinstance(result, np.generic):
        return ndarray._of(np.asarray(result))
    if isinstance(result, (tuple, list)):
        return type(result)(wrap(r) for r in result)
    return result


def call(fn, args, kwargs):
    """Run NumPy's ``fn`` on the storage of the arguments, return device arrays (``out=``, when
    given, is returned itself, as NumPy and CuPy do)."""
    with np.errstate(all="ignore"):  # a GPU raises no floating-point warnings: inf and NaN just flow
        result = fn(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
    out = kwargs.get("out")
    return out if isinstance(out, ndarray) else wrap(result)


def upload(obj, dtype=None, order="K"):
    """Host data (NumPy array, list, scalar) as new device memory: one counted upload."""
    transfers.note("upload", f"{type(obj).__name__} to the device")
    return ndarray._of(np.array(obj, dtype=dtype, order=order, copy=True))


def index(key, shape):
    """A CuPy index as NumPy's: device index arrays give their storage; lists and NumPy arrays
    are uploaded (counted); a boolean mask makes the host wait for the number of selected
    elements (a counted sync); integer arrays wrap around their axis as in CuPy."""
    items = key if isinstance(key, tuple) else (key,)
    converted = []
    for i in items:
        if isinstance(i, ndarray):
            i = i._a
        elif isinstance(i, (np.ndarray, list)):
            transfers.note("upload", "index array from the host")
            i = np.asarray(i)
            if i.size == 0 and i.dtype.kind == "f":
                i = i.astype(np.intp)
        converted.append(i)
    consumed = sum(i.ndim if _is_mask(i) else (0 if i is None or i is Ellipsis else 1) for i in converted)
    out, axis = [], 0
    for i in converted:
        if i is Ellipsis:
            axis += len(shape) - consumed
        elif _is_mask(i):
            transfers.note("sync", "boolean mask indexing: the host reads how many are selected")
            axis += i.ndim
        elif isinstance(i, np.ndarray) and i.dtype.kind in "iu":
            if axis < len(shape) and shape[axis]:
                i = i % shape[axis]  # CuPy wraps an out-of-range index around
            axis += 1
        elif i is not None:
            axis += 1
        out.append(i)
    return tuple(out) if isinstance(key, tuple) else out[0]


def _is_mask(i):
    return isinstance(i, np.ndarray) and i.dtype.kind == "b"


def value(v):
    """The right-hand side of ``x[...] = v``: a device array or a scalar (CuPy refuses host arrays
    and lists there: convert them with asarray first)."""
    if isinstance(v, ndarray):
        return v._a
    if isinstance(v, (np.ndarray, list, tuple)):
        raise _unsupported(v)
    return v


# ---------------------------------------------------------------------------------------------
# The array
# ---------------------------------------------------------------------------------------------


class _MemoryPointer:
    """``x.data``: CuPy's MemoryPointer; ``.ptr`` is the address of the first element."""

    __slots__ = ("ptr",)

    def __init__(self, ptr):
        self.ptr = ptr


class _Flags:
    """``x.flags``: CuPy's three (no ``writeable``: device memory always is)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, flags):
        self.c_contiguous, self.f_contiguous, self.owndata = flags.c_contiguous, flags.f_contiguous, flags.owndata

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]

    def __repr__(self):
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


class ndarray:  # noqa: N801  (CuPy's name)
    """An array on the emulated device (``cupy.ndarray``).  ``ndarray(shape, dtype)`` allocates
    uninitialised memory (here: NaN / -1)."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100  # NumPy defers its operators to ours (CuPy's value)
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in allocates its own memory (memptr/strides not supported)")
        self._a = _poisoned(np.empty(shape, dtype=dtype, order=order))

    @classmethod
    def _of(cls, a):
        x = object.__new__(cls)
        x._a = a
        return x

    # -- attributes --------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    strides = property(lambda self: self._a.strides)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a.flags))
    data = property(lambda self: _MemoryPointer(self._a.ctypes.data))
    T = property(lambda self: self if self.ndim < 2 else ndarray._of(self._a.T))
    real = property(lambda self: ndarray._of(self._a.real))
    imag = property(lambda self: ndarray._of(self._a.imag))

    @shape.setter
    def shape(self, new_shape):
        self._a.shape = new_shape

    @property
    def base(self):
        base = self._a.base
        return ndarray._of(base) if isinstance(base, np.ndarray) else None

    @property
    def device(self):
        from .cuda import Device  # noqa: PLC0415  (cuda.py imports this module)

        return Device(0)

    # -- no implicit conversion to the host ------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_ufunc__(self, ufunc_, method, *inputs, **kwargs):
        """NumPy's ufuncs on device arrays run as the stand-in's (as CuPy's do); host arrays
        among the inputs raise."""
        ours = UFUNCS.get(ufunc_.__name__)
        if method != "__call__" or ours is None:
            return NotImplemented
        out = kwargs.get("out")
        if isinstance(out, tuple):
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        return ours(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """``numpy.concatenate(device arrays)`` and friends run as the stand-in's routine of the
        same name, when there is one (as with CuPy)."""
        from . import routines  # noqa: PLC0415  (routines imports this module)

        ours = getattr(routines, func.__name__, None)
        if ours is None or not callable(ours):
            return NotImplemented
        return ours(*args, **kwargs)

    # -- transfers to the host: allowed, counted ----------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        """Copy to the host: a NumPy array (or into ``out``)."""
        transfers.note("download", "get")
        if out is not None:
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy the host array ``arr`` (same shape and dtype) into this array."""
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype or arr.shape != self.shape:
            raise ValueError(f"set: a {arr.dtype} array of shape {arr.shape} into a {self.dtype} array of shape {self.shape}")
        transfers.note("upload", "set")
        np.copyto(self._a, arr)

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        transfers.note("download", "item")
        return self._a.item()

    def tolist(self):
        transfers.note("download", "tolist")
        return self._a.tolist()

    def _host_scalar(self, what):
        transfers.note("download", what)
        return self._a

    def __float__(self):
        return float(self._host_scalar("float()"))

    def __int__(self):
        return int(self._host_scalar("int()"))

    def __complex__(self):
        return complex(self._host_scalar("complex()"))

    def __bool__(self):
        if self.size > 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        return bool(self._host_scalar("bool()"))

    def __repr__(self):
        return repr(self._host_scalar("repr"))

    def __str__(self):
        return str(self._host_scalar("str"))

    def __format__(self, spec):
        return format(self._host_scalar("format")[()] if self.ndim == 0 else self._a, spec)

    def __reduce__(self):
        return routines_array, (self.get(),)

    # -- container ------------------------------------------------------------------------------
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key):
        return wrap(self._a[index(key, self.shape)])

    def __setitem__(self, key, v):
        self._a[index(key, self.shape)] = value(v)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # -- methods that need CuPy's own behaviour -----------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dtype = np.dtype(dtype)
        if not copy and dtype == self.dtype and (order in ("K", "A") or self.flags[f"{order}_CONTIGUOUS"]):
            return self
        return ndarray._of(self._a.astype(dtype, order=order))

    def copy(self, order="C"):
        return ndarray._of(self._a.copy(order=order))

    def take(self, indices, axis=None, out=None):
        return routines_take(self, indices, axis, out)

    def nonzero(self):
        transfers.note("sync", "nonzero: the host reads how many are nonzero")
        return wrap(self._a.nonzero())

    def fill(self, v):
        self._a.fill(value(v))

    def __matmul__(self, other):
        return routines_matmul(self, other)

    def __rmatmul__(self, other):
        return routines_matmul(other, self)


def _method(name):
    """A NumPy method of the same name, on the storage, with device arrays in and out."""
    np_method = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        return call(np_method, (self,) + args, kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"As numpy.ndarray.{name} (cupy.ndarray.{name})."
    return method


for _name in ("reshape", "transpose", "ravel", "flatten", "squeeze", "swapaxes", "view", "diagonal",
              "repeat", "clip", "round", "conj", "dot", "cumsum", "cumprod", "sort", "argsort",
              "sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "any", "all"):
    setattr(ndarray, _name, _method(_name))


# ---------------------------------------------------------------------------------------------
# Universal functions (elementwise, with broadcasting)
# ---------------------------------------------------------------------------------------------


class ufunc:  # noqa: N801  (CuPy's name)
    """A CuPy universal function: NumPy's, run on device arrays and scalars only."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args, **kwargs):
        for a in args:
            if isinstance(a, (np.ndarray, list, tuple)):
                raise _unsupported(a)
        return call(self._u, args, kwargs)

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


UFUNCS = {u.__name__: ufunc(u) for u in (
    np.add, np.subtract, np.multiply, np.divide, np.floor_divide, np.power, np.remainder, np.fmod,
    np.negative, np.positive, np.absolute, np.sign, np.reciprocal, np.square, np.sqrt, np.cbrt,
    np.exp, np.exp2, np.expm1, np.log, np.log2, np.log10, np.log1p, np.logaddexp,
    np.sin, np.cos, np.tan, np.arcsin, np.arccos, np.arctan, np.arctan2, np.hypot,
    np.sinh, np.cosh, np.tanh, np.arcsinh, np.arccosh, np.arctanh,
    np.maximum, np.minimum, np.fmax, np.fmin, np.floor, np.ceil, np.trunc, np.rint,
    np.isnan, np.isinf, np.isfinite, np.signbit, np.copysign, np.nextafter,
    np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal,
    np.logical_and, np.logical_or, np.logical_xor, np.logical_not,
    np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert, np.left_shift, np.right_shift,
)}


def _binary(name, reflected=False, inplace=False):
    u = UFUNCS[name]
    if inplace:
        def op(self, other):
            return u(self, other, out=self)
    elif reflected:
        def op(self, other):
            return u(other, self)
    else:
        def op(self, other):
            return u(self, other)
    return op


for _op, _u in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "divide"),
                ("floordiv", "floor_divide"), ("pow", "power"), ("mod", "remainder"),
                ("and", "bitwise_and"), ("or", "bitwise_or"), ("xor", "bitwise_xor"),
                ("lshift", "left_shift"), ("rshift", "right_shift")):
    setattr(ndarray, f"__{_op}__", _binary(_u))
    setattr(ndarray, f"__r{_op}__", _binary(_u, reflected=True))
    setattr(ndarray, f"__i{_op}__", _binary(_u, inplace=True))
for _op, _u in (("eq", "equal"), ("ne", "not_equal"), ("lt", "less"), ("le", "less_equal"),
                ("gt", "greater"), ("ge", "greater_equal")):
    setattr(ndarray, f"__{_op}__", _binary(_u))
ndarray.__neg__ = lambda self: UFUNCS["negative"](self)
ndarray.__pos__ = lambda self: self
ndarray.__abs__ = lambda self: UFUNCS["absolute"](self)
ndarray.__invert__ = lambda self: UFUNCS["invert"](self)


# Routines the class needs (defined in routines.py, which imports this module).
def routines_take(a, indices, axis, out):
    from .routines import take  # noqa: PLC0415

    return take(a, indices, axis=axis, out=out)


def routines_matmul(a, b):
    from .routines import matmul  # noqa: PLC0415

    return matmul(a, b)


def routines_array(obj):
    from .routines import array  # noqa: PLC0415

    return array(obj)
