"""Argument checks shared by ops and layers: constructor arguments against the signature,
probabilities, positive integers and int-or-tuple sizes (one message for each kind of mistake,
whether it reaches ``nn.Conv2d(...)`` or ``F.conv2d(...)`` first).

Constructor arguments are checked against the signature before ``__init__`` runs.

A PyTorch script may pass an argument that minigrad's class does not have (``nn.ReLU(inplace=True)``
before it had one, ``optim.Adam(..., foreach=True)``, ``DataLoader(..., prefetch_factor=4)``).
Python's own message then names whichever ``__init__`` happened to be called (for ReLU:
``Module.__init__``) and not what is accepted.  The classes users construct from PyTorch code
(Module, Optimizer, LR schedulers, Dataset, DataLoader, transforms) inherit ``CheckedArguments``,
whose ``__new__`` binds the arguments to the class's ``__init__`` signature first and otherwise
raises a TypeError naming the class, the argument and every argument the class accepts.
"""
import functools
import inspect
import numbers

__all__ = ["CheckedArguments", "check_arguments", "check_probability", "positive_int", "sizes"]


class CheckedArguments:
    """Mixin: ``cls(*args, **kwargs)`` checks the arguments against ``cls.__init__`` first."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        if args or kwargs:
            check_arguments(cls, args, kwargs)
        return super().__new__(cls)


@functools.lru_cache(maxsize=None)
def _signature(cls):
    return inspect.signature(cls.__init__)


def check_arguments(cls, args, kwargs):
    """Raise TypeError, naming the class, the argument and the accepted ones, unless ``args``
    and ``kwargs`` fit ``cls.__init__``."""
    sig = _signature(cls)
    try:
        sig.bind(None, *args, **kwargs)  # None stands for self
    except TypeError as e:
        params = list(sig.parameters.values())[1:]
        accepted = (f"takes ({', '.join(str(p) for p in params)})" if params
                    else "takes no arguments")
        raise TypeError(f"{cls.__name__}: {e}; {cls.__name__} {accepted} (what minigrad leaves out "
                        "of PyTorch's arguments: docs/differences.md)") from None


def check_probability(p, op="dropout"):
    """``p`` must be a number in [0, 1] (a dropout probability); ValueError naming ``op``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability p must be a number in [0, 1], got {p!r}")


def positive_int(value, name, op):
    """``value`` as an int >= 1 (a channel count, groups); ValueError naming ``op`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive integer, got {value!r}")
    return int(value)


def sizes(value, n, name, op, minimum):
    """An int (the same along each of n axes) or a sequence of n ints, each >= minimum, as an
    n-tuple: a kernel size, stride, padding or dilation."""
    if isinstance(value, numbers.Integral):
        each = (value,) * n
    else:
        each = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(each) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in each):
        raise TypeError(f"{op}: {name} must be an int or a {'pair' if n == 2 else f'{n}-tuple'} of ints, "
                        f"got {value!r}")
    if any(v < minimum for v in each):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in each)
