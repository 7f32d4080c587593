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
"""
import numpy as np

__all__ = ["Transform", "ToFloat", "Normalize", "Flatten", "Compose", "Lambda"]


class Transform:
    """Base class: subclasses implement ``apply_batch``; single examples reuse it."""

    def __call__(self, x):
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


class Normalize(Transform):
    """``(x - mean) / std``, with scalars (MNIST: mean 0.1307, std 0.3081 on [0, 1] pixels)."""

    def __init__(self, mean, std):
        if std == 0:
            raise ValueError("Normalize: std must be nonzero")
        self.mean, self.std = float(mean), float(std)

    def apply_batch(self, xb):
        dt = xb.dtype if xb.dtype.kind == "f" else np.dtype(np.float32)
        return ((xb - dt.type(self.mean)) * dt.type(1.0 / self.std)).astype(dt, copy=False)

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
        for t in self.transforms:
            xb = apply_batch(t, xb)
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


def stack_examples(items):
    """Stack per-example results into one batch array (numbers become a 1-d array)."""
    from ..tensor import Tensor
    if len(items) and isinstance(items[0], Tensor):
        items = [t.numpy() for t in items]
    return np.stack([np.asarray(x) for x in items]) if len(items) else np.empty((0,))


def apply_batch(transform, xb):
    """Run ``transform`` on a batch: vectorised when it offers ``apply_batch``, else per example."""
    if transform is None:
        return xb
    method = getattr(transform, "apply_batch", None)
    if method is not None:
        return method(xb)
    return stack_examples([transform(x) for x in xb])
