"""Containers: Sequential (a pipeline of modules), ModuleList and ModuleDict (modules registered
by position or by name), ParameterList (parameters registered by position)."""
import operator
from collections import OrderedDict

from ..tensor import Tensor
from .module import Module
from .parameter import Parameter


def _index(i, n, what):
    i = operator.index(i)
    if not -n <= i < n:
        raise IndexError(f"{what}: index {i} is out of range for {n} modules")
    return i + n if i < 0 else i


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain Python list hides them).
    The modules are named "0", "1", ..."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return type(self)(mods[idx])
        return mods[_index(idx, len(mods), type(self).__name__)]

    def __setitem__(self, idx, module):
        i = _index(idx, len(self), type(self).__name__)
        self.add_module(str(i), module)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it in your module's forward")


class Sequential(ModuleList):
    """Modules applied one after another: ``Sequential(Linear(784, 128), ReLU(), Linear(128, 10))``.

    Also ``Sequential(OrderedDict([("fc1", Linear(...)), ...]))`` for named layers.
    Indexable (a slice is a Sequential), iterable, ``len``, ``append``."""

    def __init__(self, *modules):
        Module.__init__(self)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not an nn.Module")
                self.add_module(str(i), m)
        self._refresh()

    def _refresh(self):
        # the forward loop runs over a cached tuple: no dict walk per call
        self.__dict__["_layers"] = tuple(m for m in self._modules.values() if m is not None)

    def add_module(self, name, module):
        super().add_module(name, module)
        if "_layers" in self.__dict__:
            self._refresh()

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if isinstance(value, Module) or name in self._modules:
            self._refresh()

    def __delattr__(self, name):
        super().__delattr__(name)
        self._refresh()

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    def __setitem__(self, idx, module):
        name = list(self._modules)[_index(idx, len(self), "Sequential")]
        self.add_module(name, module)

    def __delitem__(self, idx):
        names = list(self._modules)
        if isinstance(idx, slice):
            for name in names[idx]:
                delattr(self, name)
        else:
            delattr(self, names[_index(idx, len(names), "Sequential")])

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected an nn.Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        for layer in self._layers:
            x = layer(x)
        return x


class ModuleDict(Module):
    """A dict of modules whose parameters are registered, keyed by name (PyTorch's
    ``nn.ModuleDict``): ``ModuleDict({"conv": Conv2d(...), "act": ReLU()})``, then
    ``self.layers["conv"]``.  Insertion-ordered; ``keys()``, ``values()``, ``items()``,
    ``update()``, ``pop()``, ``in``, ``len``."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _check_key(self, key):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict: keys must be strings, got {type(key).__name__}")
        return key

    def _check_new_key(self, key):
        if key not in self._modules and hasattr(type(self), key):
            raise KeyError(f"ModuleDict: {key!r} is the name of a ModuleDict attribute; choose another key")
        return self._check_key(key)

    def __getitem__(self, key):
        try:
            return self._modules[self._check_key(key)]
        except KeyError:
            raise KeyError(f"ModuleDict has no module {key!r} (it has {list(self._modules)})") from None

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: the value for {key!r} must be an nn.Module, got {type(module).__name__}")
        self.add_module(self._check_new_key(key), module)

    def __delitem__(self, key):
        self[key]  # (the KeyError above for a missing key)
        delattr(self, key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        """Add (or replace) modules from a dict, a ModuleDict or an iterable of (name, module)."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: expected a mapping or (name, module) pairs, got {pair!r}")
            self[pair[0]] = pair[1]

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

    def clear(self):
        for key in list(self._modules):
            del self[key]

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); pick its modules by name in your forward")


class ParameterList(Module):
    """A list of parameters registered with their module (a plain list hides them from
    ``parameters()``, the optimizer and ``state_dict``): PyTorch's ``nn.ParameterList``.  They
    are named "0", "1", ...; a tensor that is not a Parameter is made one (as in PyTorch)."""

    def __init__(self, values=None):
        super().__init__()
        if values is not None:
            self.extend(values)

    @staticmethod
    def _as_parameter(value):
        if isinstance(value, Parameter):
            return value
        if isinstance(value, Tensor):
            return Parameter(value)
        raise TypeError(f"ParameterList: expected a Parameter or a Tensor, got {type(value).__name__}")

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __getitem__(self, idx):
        params = list(self._parameters.values())
        if isinstance(idx, slice):
            return type(self)(params[idx])
        return params[_index(idx, len(params), "ParameterList")]

    def __setitem__(self, idx, value):
        setattr(self, str(_index(idx, len(self), "ParameterList")), self._as_parameter(value))

    def append(self, value):
        setattr(self, str(len(self)), self._as_parameter(value))
        return self

    def extend(self, values):
        for v in values:
            self.append(v)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ParameterList has no forward(); use its parameters in your module's forward")

    def extra_repr(self):
        return ", ".join(f"({i}): {tuple(p.shape)} {p.dtype}" for i, p in enumerate(self))
