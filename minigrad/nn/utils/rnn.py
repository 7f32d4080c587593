"""Batches of sequences of different lengths (PyTorch's ``torch.nn.utils.rnn``).

Sentences in a batch have different lengths.  Two ways to hand them to a recurrent layer:

* **padded**: ``pad_sequence`` stacks them into one (T, B, *) tensor, shorter ones filled with
  ``padding_value``.  The layer then also reads the padding, and its final state is that of
  the padded end.
* **packed**: ``pack_padded_sequence(padded, lengths)`` keeps only the real steps, sorted by
  length (longest first) and laid out time-major: all first steps, then the second steps of
  the sequences that have one, ...  A recurrent layer given a ``PackedSequence`` runs step t
  on the ``batch_sizes[t]`` sequences still going, so each sequence's final state is taken at
  its own last step (and, for the reverse direction, each starts at its own last step).
  ``pad_packed_sequence`` turns the layer's packed output back into a padded tensor.

    packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
    output, (h_n, c_n) = lstm(packed)           # h_n: each sentence's state at its own end
    padded, lengths = pad_packed_sequence(output, batch_first=True)

Every function here is differentiable in the sequence values (gathers and scatters on the tape).
"""
import numbers
from collections import namedtuple

import numpy as np

from ... import backend
from ...ops.shape import getitem, index_put, pad, stack, transpose
from ...tensor import Tensor, full, tensor


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A batch of sequences without their padding (what ``pack_padded_sequence`` returns).

    ``data`` (N, *): the N = sum of lengths real steps, time-major over the sequences sorted by
    length (longest first); ``batch_sizes`` (T,) int64 on the CPU: how many sequences have a
    step t; ``sorted_indices``: the original batch position of each sorted sequence (None when
    the batch came sorted), ``unsorted_indices`` its inverse.  A tuple, as in PyTorch."""

    __slots__ = ()

    def to(self, device):
        """The same sequence with ``data`` (and the index tensors) on ``device``; batch_sizes
        stays on the CPU."""
        move = (lambda t: None if t is None else t.to(device))
        return PackedSequence(move(self.data), self.batch_sizes, move(self.sorted_indices),
                              move(self.unsorted_indices))


def _int_list(op, name, values):
    """``values`` (a list, a NumPy array or a Tensor of integers) as a 1-D int64 NumPy array."""
    if isinstance(values, Tensor):
        values = backend.to_device(values.array, backend.CPU)
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise TypeError(f"{op}: {name} must be a 1-D sequence of integers (a list, an array or an int64 "
                        f"tensor), got {array.dtype} of shape {array.shape}")
    return array.astype(np.int64)


def _steps_of(batch_sizes):
    """(time index, sorted batch index) of every packed row, in packed (time-major) order."""
    times = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    rows = np.concatenate([np.arange(b) for b in batch_sizes]) if len(batch_sizes) else np.zeros(0, np.int64)
    return times, rows


def _index_on(array, like):
    """An int64 index array on the device of the tensor ``like``."""
    return backend.array_module(like.array).asarray(array)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch ``input`` (T, B, *) (or (B, T, *) with ``batch_first``) whose
    sequence b has ``lengths[b]`` real steps.  ``enforce_sorted=True`` requires the lengths in
    decreasing order (as PyTorch); ``False`` sorts the batch and remembers the order, so
    outputs come back in the original order.  Returns a PackedSequence."""
    op = "pack_padded_sequence"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dimensions ((T, B, *), or (B, T, *) with "
                         f"batch_first=True), got shape {input.shape}")
    lengths = _int_list(op, "lengths", lengths)
    time_dim, batch_dim = (1, 0) if batch_first else (0, 1)
    steps, batch = input.shape[time_dim], input.shape[batch_dim]
    if lengths.shape != (batch,):
        raise ValueError(f"{op}: got {lengths.size} lengths for a batch of {batch} sequences (input of shape "
                         f"{input.shape}, batch along dimension {batch_dim})")
    for b, n in enumerate(lengths):
        if n < 1:
            raise ValueError(f"{op}: every sequence needs at least one step, but lengths[{b}] = {n}")
        if n > steps:
            raise ValueError(f"{op}: lengths[{b}] = {n} is longer than the sequence: the input of shape "
                             f"{input.shape} has {steps} steps along dimension {time_dim}")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise ValueError(f"{op}: lengths {lengths.tolist()} must be sorted in decreasing order when "
                             "enforce_sorted=True; pass enforce_sorted=False to have the batch sorted for you")
        order, sorted_indices, unsorted_indices = np.arange(batch), None, None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = tensor(_index_on(order, input))
        unsorted_indices = tensor(_index_on(np.argsort(order), input))
    batch_sizes = np.array([(lengths > t).sum() for t in range(lengths.max())], dtype=np.int64)
    times, rows = _steps_of(batch_sizes)
    index = (_index_on(times, input), _index_on(order[rows], input))
    data = getitem(input, index[::-1] if batch_first else index)  # one gather: (N, *)
    return PackedSequence(data, tensor(batch_sizes), sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths (B,) int64),
    in the batch's original order, padded with ``padding_value`` up to the longest sequence
    (or to ``total_length`` steps)."""
    op = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")
    data, batch_sizes, sorted_indices, unsorted_indices = sequence
    batch_sizes = _int_list(op, "batch_sizes", batch_sizes)
    steps = len(batch_sizes)
    if total_length is not None:
        if isinstance(total_length, bool) or not isinstance(total_length, numbers.Integral) or total_length < steps:
            raise ValueError(f"{op}: total_length must be an int of at least the longest sequence's length "
                             f"({steps}), got {total_length!r}")
        steps = int(total_length)
    batch = int(batch_sizes[0])
    order = np.arange(batch) if sorted_indices is None else backend.to_device(sorted_indices.array, backend.CPU)
    times, rows = _steps_of(batch_sizes)
    padded = full((steps, batch) + data.shape[1:], padding_value, dtype=data.dtype, device=data.device)
    index = (_index_on(times, data), _index_on(order[rows], data))
    padded = index_put(padded, index, data)  # one scatter, differentiable in data
    lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)  # per sorted position
    lengths_original = np.empty_like(lengths)
    lengths_original[order] = lengths
    return (transpose(padded, 0, 1) if batch_first else padded), tensor(lengths_original)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors (L_i, *) of different lengths into one (T, B, *) tensor ((B, T, *) with
    ``batch_first``), T the longest length, filling with ``padding_value`` after each sequence
    (``padding_side="left"``: before it)."""
    op = "pad_sequence"
    if isinstance(sequences, Tensor):
        sequences = list(sequences)
    sequences = list(sequences)
    if not sequences or not all(isinstance(s, Tensor) for s in sequences):
        raise TypeError(f"{op}: expected a non-empty list of Tensors")
    if padding_side not in ("left", "right"):
        raise ValueError(f"{op}: padding_side must be 'left' or 'right', got {padding_side!r}")
    tail = sequences[0].shape[1:]
    for i, s in enumerate(sequences):
        if s.ndim == 0 or s.shape[1:] != tail:
            shapes = ", ".join(str(t.shape) for t in sequences)
            raise ValueError(f"{op}: every sequence must be (L_i, *) with the same trailing dimensions, got "
                             f"shapes {shapes}")
    steps = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = steps - s.shape[0]
        width = ((0, missing) if padding_side == "right" else (missing, 0),) + ((0, 0),) * len(tail)
        padded.append(pad(s, width, padding_value))
    return stack(padded, axis=0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors (L_i, *) directly: pack_padded_sequence(pad_sequence(...))."""
    lengths = [s.shape[0] if isinstance(s, Tensor) and s.ndim else 0 for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)
