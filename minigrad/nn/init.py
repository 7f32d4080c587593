"""Weight initialisation (PyTorch's ``torch.nn.init``), in place, from the seeded generator.

Every function fills its tensor in place (without recording anything on the tape), bumps its
version counter and returns it.  Random values come from ``minigrad.backend.generator()``, so
``minigrad.manual_seed(s)`` makes every initialisation repeatable.

Fans, as in PyTorch, for a weight of shape (out, in, *kernel):
    fan_in  = in  * prod(kernel)          fan_out = out * prod(kernel)

    xavier (Glorot):  std = gain * sqrt(2 / (fan_in + fan_out))
    kaiming (He):     std = gain / sqrt(fan)          (fan = fan_in or fan_out by ``mode``)
    uniform versions use the bound sqrt(3) * std, which has that standard deviation.
"""
import math

from .. import backend


def _fill(tensor, values):
    """Write ``values`` (float64 array from the generator) into ``tensor`` in place."""
    tensor.array[...] = values.astype(tensor.dtype, copy=False)
    tensor._version += 1
    return tensor


def _check_float(tensor, fn):
    if tensor.dtype.kind != "f":
        raise TypeError(f"init.{fn}: expected a floating-point tensor, got dtype {tensor.dtype}")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for an activation (how much it shrinks the signal's std).

    linear / conv / sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);
    leaky_relu (slope a, default 0.01): sqrt(2 / (1 + a^2));  selu: 3/4."""
    linear_fns = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d", "sigmoid")
    if nonlinearity in linear_fns:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError(
            f"init: fan in and fan out can not be computed for a tensor with fewer than 2 "
            f"dimensions (shape {tensor.shape})"
        )
    receptive = 1
    for n in tensor.shape[2:]:
        receptive *= n
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


calculate_fan_in_and_fan_out = _calculate_fan_in_and_fan_out


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _uniform(tensor, low, high):
    gen = backend.generator(tensor.device)
    return _fill(tensor, low + (high - low) * gen.random(tensor.shape))


def _normal(tensor, mean, std):
    gen = backend.generator(tensor.device)
    return _fill(tensor, mean + std * gen.standard_normal(tensor.shape))


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with values drawn from U(a, b)."""
    _check_float(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"init.uniform_: expected a <= b, got a={a}, b={b}")
    return _uniform(tensor, a, b)


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with values drawn from N(mean, std^2)."""
    _check_float(tensor, "normal_")
    if std < 0:
        raise ValueError(f"init.normal_: std must be >= 0, got {std}")
    return _normal(tensor, mean, std)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Fill with values drawn from N(mean, std^2) conditioned on [a, b] (absolute bounds, as in
    PyTorch: ``trunc_normal_(w, std=0.02)`` keeps the default [-2, 2]).

    Rejection sampling: normal draws outside [a, b] are thrown away and drawn again, which is
    exactly the conditional distribution; each round draws enough for the expected acceptance
    rate P = Phi(b') - Phi(a') (a', b' the standardized bounds)."""
    _check_float(tensor, "trunc_normal_")
    if std < 0 or not a < b:
        raise ValueError(f"init.trunc_normal_: needs std >= 0 and a < b, got std={std}, a={a}, b={b}")
    xp = backend.array_module(tensor.array)
    n = tensor.array.size
    if std == 0:
        return _fill(tensor, xp.full(tensor.shape, min(max(mean, a), b), dtype=xp.float64))
    lo, hi = (a - mean) / std, (b - mean) / std
    accept = 0.5 * (math.erf(hi / math.sqrt(2)) - math.erf(lo / math.sqrt(2)))
    if accept < 1e-6:
        raise ValueError(f"init.trunc_normal_: [a, b] = [{a}, {b}] holds a fraction {accept:.1e} of N({mean}, "
                         f"{std}^2); rejection sampling needs at least 1e-6 (move the bounds or the mean)")
    gen = backend.generator(tensor.device)
    parts, have = [], 0
    while have < n:
        z = gen.standard_normal(int((n - have) / accept * 1.1) + 16)
        z = z[(z >= lo) & (z <= hi)]
        parts.append(z[:n - have])
        have += int(parts[-1].size)
    z = xp.concatenate(parts) if parts else xp.zeros(0)
    return _fill(tensor, xp.clip(mean + std * z, a, b).reshape(tensor.shape))


def constant_(tensor, val):
    """Fill with the constant ``val``."""
    tensor.array[...] = val
    tensor._version += 1
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def xavier_uniform_(tensor, gain=1.0):
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    _check_float(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return _uniform(tensor, -a, a)


def xavier_normal_(tensor, gain=1.0):
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check_float(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _normal(tensor, 0.0, std)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a).

    ``nn.Linear`` uses a = sqrt(5), which gives bound = 1 / sqrt(fan_in)."""
    _check_float(tensor, "kaiming_uniform_")
    if 0 in tensor.shape:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return _uniform(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He normal: N(0, std^2), std = gain / sqrt(fan)."""
    _check_float(tensor, "kaiming_normal_")
    if 0 in tensor.shape:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _normal(tensor, 0.0, std)


__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]


def default_(weight, bias=None):
    """PyTorch's default initialisation of Linear and Conv layers: kaiming_uniform_(a=sqrt(5))
    on the weight (uniform within +-1/sqrt(fan_in)), and the bias uniform within
    +-1/sqrt(fan_in) (0 when fan_in is 0)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
