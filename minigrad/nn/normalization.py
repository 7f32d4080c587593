"""Normalization layers: BatchNorm1d over (N, C) or (N, C, L), BatchNorm2d over (N, C, H, W),
BatchNorm3d over (N, C, D, H, W), LayerNorm over the last axes of each sample, GroupNorm over
groups of channels of each sample."""
import numbers

import numpy as np

from ..autograd import no_grad
from ..ops import batch_norm, group_norm, layer_norm
from ..tensor import Tensor
from . import init
from .layers import _empty
from .module import Module
from .parameter import Parameter


def _per_channel_affine(module, channels, device, dtype):
    """``weight`` and ``bias`` Parameters of shape (channels,) when ``module.affine`` (their
    values come from reset_parameters), else both registered as None."""
    for name in ("weight", "bias"):
        if module.affine:
            setattr(module, name, Parameter(_empty((channels,), device, dtype)))
        else:
            module.register_parameter(name, None)


class _BatchNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel.

    In training mode the batch statistics are used (biased variance) and the running
    statistics are updated in place: running = (1 - momentum) * running + momentum * batch
    (unbiased variance for running_var); with momentum=None a cumulative average over
    num_batches_tracked batches is kept instead.  In eval mode the running statistics are used
    (or the batch statistics when track_running_stats=False).  The buffers running_mean,
    running_var and num_batches_tracked are in the state dict.
    """

    _ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive integer, got {num_features!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        _per_channel_affine(self, self.num_features, device, dtype)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(_empty((self.num_features,), device, dtype)))
            self.register_buffer("running_var", Tensor(_empty((self.num_features,), device, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64), device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            with no_grad():
                init.zeros_(self.running_mean)
                init.ones_(self.running_var)
                self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        if x.ndim not in self._ndims:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{d}-D' for d in self._ndims)} "
                             f"input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): input of shape {x.shape} "
                             f"has {x.shape[1]} channels")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array[...] += 1
            self.num_batches_tracked._version += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / self._batches_tracked()
        use_batch_stats = self.training or not self.track_running_stats
        return batch_norm(
            x,
            self.running_mean if (not self.training or self.track_running_stats) else None,
            self.running_var if (not self.training or self.track_running_stats) else None,
            self.weight, self.bias, use_batch_stats, momentum, self.eps,
        )

    def _batches_tracked(self):
        """num_batches_tracked (just incremented) as a Python number.  Reading the buffer would
        make the host wait for a GPU at every training step, so forward keeps a host copy and
        reads the buffer only when something else has written it since (a load_state_dict,
        reset_running_stats, a move to another device: its version or identity changed)."""
        t = self.num_batches_tracked
        seen = self.__dict__.get("_tracked_on_host")
        if seen is not None and seen[0] == (id(t), t._version - 1):
            count = seen[1] + 1
        else:
            count = int(t.item())
        self.__dict__["_tracked_on_host"] = ((id(t), t._version), count)
        return count

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L): statistics per feature C over the batch
    (and the positions L)."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W): statistics per channel C over N, H and W."""

    _ndims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization over (N, C, D, H, W): statistics per channel C over N, D, H and W."""

    _ndims = (5,)


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axes, which must have
    shape ``normalized_shape``: every sample (every row of a sequence) on its own, the same in
    training and evaluation (no running statistics).  weight starts at 1 and bias at 0
    (``elementwise_affine=False``: neither; ``bias=False``: no bias), as in PyTorch."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
        if not shape or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a tuple of them, "
                             f"got {normalized_shape!r}")
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps, self.elementwise_affine = float(eps), bool(elementwise_affine)
        self.weight = Parameter(_empty(self.normalized_shape, device, dtype)) if elementwise_affine else None
        self.bias = Parameter(_empty(self.normalized_shape, device, dtype)) if elementwise_affine and bias else None
        for name in ("weight", "bias"):
            if getattr(self, name) is None:
                self.register_parameter(name, None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """y = group_norm(x, num_groups, weight, bias, eps) over (N, C, ...): each sample's channels
    are split into ``num_groups`` groups, each normalized over its channels and positions
    (independent of the batch, the same in training and evaluation); then a per-channel affine
    map, weight starting at 1 and bias at 0 (``affine=False``: neither), as in PyTorch."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        for name, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"GroupNorm: {name} must be a positive integer, got {value!r}")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = float(eps), bool(affine)
        _per_channel_affine(self, self.num_channels, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected an input (N, "
                             f"{self.num_channels}, ...), got shape {x.shape}")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
