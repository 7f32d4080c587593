"""Neural-network building blocks (PyTorch's ``torch.nn``): Module, Parameter, layers,
containers, losses, ``init`` and the functional interface ``F``."""
from . import init, utils  # noqa: F401
from .module import Module  # noqa: F401
from .parameter import Parameter  # noqa: F401
from . import functional  # noqa: F401
from .containers import ModuleDict, ModuleList, ParameterList, Sequential  # noqa: F401
from .layers import (  # noqa: F401
    GELU, Dense, Dropout, Dropout1d, Dropout2d, Dropout3d, Flatten, Identity, LeakyReLU, Linear, LogSoftmax,
    ReLU, Sigmoid, SiLU, Softmax, Tanh, Upsample,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss  # noqa: F401
from .conv import Conv1d, Conv2d  # noqa: F401
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm  # noqa: F401
from .parallel import DistributedDataParallel  # noqa: F401  (nn.parallel: data parallel over processes)
from .sparse import Embedding  # noqa: F401
from .attention import MultiheadAttention  # noqa: F401
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell  # noqa: F401
