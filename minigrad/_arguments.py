"""Constructor arguments checked against the signature before ``__init__`` runs.

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

__all__ = ["CheckedArguments", "check_arguments", "check_probability"]


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
