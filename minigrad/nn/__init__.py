"""Neural-network building blocks (PyTorch's ``torch.nn``): Module, Parameter, layers,
containers, losses, ``init`` and the functional interface ``F``."""
from . import init  # noqa: F401
from .module import Module  # noqa: F401
from .parameter import Parameter  # noqa: F401
