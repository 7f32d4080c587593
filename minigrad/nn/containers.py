"""Containers: Sequential (a pipeline of modules) and ModuleList (a list of registered modules)."""
import operator
from collections import OrderedDict

from .module import Module


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
