"""Transforms: small functions applied to examples (NumPy arrays) before they become Tensors.

Each transform here works on one example *and* on a whole batch.  ``t(x)`` transforms a single
example; ``t.apply_batch(xb)`` transforms a batch whose first axis is the batch axis, in one
vectorised NumPy call.  The DataLoader uses ``apply_batch`` when it exists, so a transform
costs one array operation per batch instead of a Python loop over examples.  Any plain
callable also works as a transform: it is then called once per example (slower, but general).

The usual MNIST pipeline, "float32 in [0, 1] with a channel axis" (like torchvision's
``ToTensor``)::

    train = MNIST(train=True, transform=ToFloat())      # example: (1, 28, 28) float32
    ... or normalised as well:
    Compose([ToFloat(), Normalize(0.1307, 0.3081)])

torchvision's names are here too (``minigrad.vision.transforms`` lists them): ``ToTensor``,
``Normalize`` with per-channel means and stds, ``RandomCrop``, ``RandomHorizontalFlip``,
``CenterCrop``, ``Compose``, ``Lambda``.  As in torchvision, a single example becomes a Tensor at
``ToTensor`` (later transforms, and a ``Lambda``'s function, then receive Tensors); batches stay
NumPy arrays until the DataLoader makes them Tensors.  Random transforms draw from minigrad's
seeded generator (``minigrad.manual_seed``), a different stream from torchvision's.
"""
import numbers

import numpy as np

from .. import backend
from .._arguments import CheckedArguments
from ..tensor import Tensor

__all__ = ["Transform", "ToFloat", "ToTensor", "Normalize", "Flatten", "Compose", "Lambda",
           "RandomCrop", "RandomHorizontalFlip", "CenterCrop"]


class Transform(CheckedArguments):
    """Base class: subclasses implement ``apply_batch``; single examples reuse it."""

    def __call__(self, x):
        if isinstance(x, Tensor):  # an example after ToTensor: stays a Tensor
            return Tensor._wrap(self.apply_batch(x.numpy()[None])[0])
        return self.apply_batch(np.asarray(x)[None])[0]

    def apply_batch(self, xb):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class ToFloat(Transform):
    """uint8 pixels -> float32 in [0, 1]: ``x * scale`` (scale = 1/255), plus a channel axis.

    An (H, W) image becomes (1, H, W); a batch (B, H, W) becomes (B, 1, H, W): the layout a
    CNN wants (an MLP flattens it; see ``Flatten``).  ``channel=False`` keeps the shape as is.
    """

    def __init__(self, scale=1.0 / 255.0, dtype=np.float32, channel=True):
        self.scale = scale
        self.dtype = np.dtype(dtype)
        self.channel = channel

    def apply_batch(self, xb):
        out = np.multiply(xb, self.dtype.type(self.scale), dtype=self.dtype)
        return out[:, None] if self.channel else out

    def __repr__(self):
        return f"ToFloat(scale={self.scale:.6g}, dtype={self.dtype}, channel={self.channel})"


class ToTensor(Transform):
    """torchvision's ``ToTensor``: an image as a float32 (C, H, W) Tensor, uint8 pixels divided
    by 255.  An (H, W) image gets a channel axis, (1, H, W); an (H, W, C) image (colour as NumPy
    stores it) becomes (C, H, W).  Floating images keep their values and dtype.

    ``ToTensor()(image)`` returns a Tensor; on a batch, (B, H, W) or (B, H, W, C), the DataLoader
    gets (B, C, H, W) as one array.  (``ToFloat`` is the same for (H, W) images, scaling by a
    multiplication, and keeps single examples NumPy arrays.)"""

    def __call__(self, x):
        return Tensor._wrap(self.apply_batch(np.asarray(x)[None])[0])

    def apply_batch(self, xb):
        if xb.ndim == 3:
            xb = xb[:, None]
        elif xb.ndim == 4:
            xb = xb.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"ToTensor: expected (H, W) or (H, W, C) images, got a batch of shape "
                             f"{xb.shape} (examples of shape {xb.shape[1:]})")
        if xb.dtype != np.uint8:
            return np.ascontiguousarray(xb)
        out = np.ascontiguousarray(xb, dtype=np.float32)
        out /= np.float32(255)
        return out


def _numbers(name, value):
    """A number or a sequence of numbers (one per channel), as a tuple of floats."""
    values = value.tolist() if isinstance(value, (Tensor, np.ndarray)) else value
    values = list(values) if isinstance(values, (tuple, list)) else [values]
    if not values or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise TypeError(f"Normalize: {name} must be a number or a sequence of numbers (one per "
                        f"channel), like 0.1307 or (0.485, 0.456, 0.406); got {value!r}")
    return tuple(float(v) for v in values)


class Normalize(Transform):
    """``(x - mean) / std``, per channel as torchvision's: ``mean`` and ``std`` are numbers, or
    sequences with one entry per channel (axis -3 of an example, (C, H, W)).  MNIST: mean 0.1307,
    std 0.3081 on [0, 1] pixels, written either way: ``Normalize(0.1307, 0.3081)`` or
    ``Normalize((0.1307,), (0.3081,))``.  With one value each it applies to any shape.
    (``inplace`` is accepted: a new array is made either way.)"""

    def __init__(self, mean, std, inplace=False):
        mean, std = _numbers("mean", mean), _numbers("std", std)
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ValueError(f"Normalize: mean has {len(mean)} values and std {len(std)}; give one "
                             "per channel for both (or one value for either)")
        if any(v == 0 for v in std):
            raise ValueError(f"Normalize: std must be nonzero, got {std}")
        # a single value stays a number (the attribute reads as before: Normalize(0.5, 0.2).mean)
        self.mean = mean[0] if len(mean) == 1 else mean
        self.std = std[0] if len(std) == 1 else std

    def apply_batch(self, xb):
        dt = xb.dtype if xb.dtype.kind == "f" else np.dtype(np.float32)
        mean, std = (np.asarray(v, dtype=dt) for v in (self.mean, self.std))
        channels = max(mean.size, std.size)
        if channels > 1:
            if xb.ndim < 4 or xb.shape[-3] != channels:
                raise ValueError(f"Normalize: {channels} channel means/stds need examples of shape "
                                 f"(C={channels}, H, W); got a batch of shape {xb.shape} "
                                 f"(examples of shape {xb.shape[1:]})")
            mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        return ((xb - mean) / std).astype(dt, copy=False)  # torchvision's arithmetic, in dt

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class Flatten(Transform):
    """Each example flattened to a vector: (B, ...) -> (B, prod(...))."""

    def apply_batch(self, xb):
        return xb.reshape(xb.shape[0], -1)


class Compose(Transform):
    """Apply transforms in order; batched whenever every member is."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def apply_batch(self, xb):
        tensors = False  # from a ToTensor on, a single example would be a Tensor
        for t in self.transforms:
            xb = apply_batch(t, xb, tensors)
            tensors = tensors or isinstance(t, ToTensor)
        return xb

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Lambda(Transform):
    """Wrap a function.  ``batched=True`` promises it works on a batch with the same result as
    applying it to each example (e.g. elementwise math), so it can run once per batch."""

    def __init__(self, fn, batched=False):
        self.fn, self.batched = fn, batched

    def __call__(self, x):
        return self.fn(x)

    def apply_batch(self, xb):
        if self.batched:
            return self.fn(xb)
        return stack_examples([self.fn(x) for x in xb])

    def __repr__(self):
        return f"Lambda({getattr(self.fn, '__name__', self.fn)!r}, batched={self.batched})"


def _size(name, size):
    """An int or an (h, w) pair, as an (h, w) pair."""
    pair = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    if len(pair) != 2 or not all(isinstance(n, numbers.Integral) and n > 0 for n in pair):
        raise ValueError(f"{name}: size must be a positive int or an (h, w) pair, got {size!r}")
    return tuple(int(n) for n in pair)


def _pad_image(xb, left, top, right, bottom, fill=0, mode="constant"):
    """Pad the last two axes (H, W) of a batch; mode as NumPy's (and torchvision's) names."""
    width = [(0, 0)] * (xb.ndim - 2) + [(top, bottom), (left, right)]
    if mode == "constant":
        return np.pad(xb, width, mode="constant", constant_values=fill)
    return np.pad(xb, width, mode=mode)


def _crop(xb, tops, lefts, h, w):
    """Crop each example b of a batch to rows tops[b]:tops[b]+h, columns lefts[b]:lefts[b]+w."""
    lead = (1,) * (xb.ndim - 3)
    rows = (tops[:, None] + np.arange(h)).reshape(len(xb), *lead, h, 1)
    cols = (lefts[:, None] + np.arange(w)).reshape(len(xb), *lead, 1, w)
    return np.take_along_axis(np.take_along_axis(xb, rows, axis=-2), cols, axis=-1)


class RandomCrop(Transform):
    """A random (h, w) window of each image (the last two axes: (H, W) images, or (C, H, W)
    after ToTensor), after padding it by ``padding`` (an int, (left/right, top/bottom) or
    (left, top, right, bottom), as torchvision) with ``fill`` or by ``padding_mode``
    ("constant", "edge", "reflect", "symmetric").  ``pad_if_needed`` pads images smaller than
    the window.  Every example draws its own window from the seeded generator."""

    _MODES = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _size("RandomCrop", size)
        padding = 0 if padding is None else padding
        pads = (padding,) * 4 if isinstance(padding, numbers.Integral) else tuple(padding)
        pads = pads * 2 if len(pads) == 2 else pads
        if len(pads) != 4 or not all(isinstance(p, numbers.Integral) and p >= 0 for p in pads):
            raise ValueError(f"RandomCrop: padding must be an int >= 0 or a sequence of 2 or 4 of "
                             f"them, got {padding!r}")
        if padding_mode not in self._MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {self._MODES}, got {padding_mode!r}")
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = pads, pad_if_needed, fill, padding_mode

    def apply_batch(self, xb):
        (h, w), (left, top, right, bottom) = self.size, self.padding
        if self.pad_if_needed:  # torchvision pads both sides by the missing amount
            extra_h = max(h - (xb.shape[-2] + top + bottom), 0)
            extra_w = max(w - (xb.shape[-1] + left + right), 0)
            top, bottom, left, right = top + extra_h, bottom + extra_h, left + extra_w, right + extra_w
        if top or bottom or left or right:
            xb = _pad_image(xb, left, top, right, bottom, self.fill, self.padding_mode)
        H, W = xb.shape[-2:]
        if H < h or W < w:
            raise ValueError(f"RandomCrop: a ({h}, {w}) window does not fit in images of size ({H}, {W}) "
                             "(after padding); pass padding= or pad_if_needed=True")
        gen = backend.generator("cpu")
        return _crop(xb, gen.integers(0, H - h + 1, len(xb)), gen.integers(0, W - w + 1, len(xb)), h, w)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class CenterCrop(Transform):
    """The central (h, w) window of each image (last two axes), as torchvision's: the top-left
    corner at round((H - h) / 2), round((W - w) / 2); a smaller image is padded with zeros."""

    def __init__(self, size):
        self.size = _size("CenterCrop", size)

    def apply_batch(self, xb):
        (h, w), (H, W) = self.size, xb.shape[-2:]
        if H < h or W < w:
            dh, dw = max(h - H, 0), max(w - W, 0)
            xb = _pad_image(xb, dw // 2, dh // 2, (dw + 1) // 2, (dh + 1) // 2)
            H, W = xb.shape[-2:]
        top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
        return xb[..., top:top + h, left:left + w]

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (its last axis) with probability ``p``, independently per
    example (from the seeded generator)."""

    def __init__(self, p=0.5):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def apply_batch(self, xb):
        flip = backend.generator("cpu").random(len(xb)) < self.p
        return np.where(flip.reshape((-1,) + (1,) * (xb.ndim - 1)), xb[..., ::-1], xb)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


def stack_examples(items):
    """Stack per-example results into one batch array (numbers become a 1-d array)."""
    if len(items) and isinstance(items[0], Tensor):
        items = [t.numpy() for t in items]
    return np.stack([np.asarray(x) for x in items]) if len(items) else np.empty((0,))


def apply_batch(transform, xb, tensors=False):
    """Run ``transform`` on a batch: vectorised when it can be (it has ``apply_batch`` and is not
    a per-example Lambda), else once per example, each handed over as a Tensor when ``tensors``
    (after a ToTensor, as a per-example pipeline would)."""
    if transform is None:
        return xb
    if hasattr(transform, "apply_batch") and getattr(transform, "batched", True):
        return transform.apply_batch(xb)
    return stack_examples([transform(Tensor._wrap(x) if tensors else x) for x in xb])
