"""Utilities for models (PyTorch's ``torch.nn.utils``): gradient clipping, and ``rnn``, the
tools for batches of sequences of different lengths (padding and packing)."""
from . import rnn  # noqa: F401
from .clip_grad import clip_grad_norm_, clip_grad_value_  # noqa: F401
