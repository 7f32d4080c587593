"""Recurrent layers: nn.RNN, nn.LSTM, nn.GRU and their cells nn.RNNCell, nn.LSTMCell, nn.GRUCell,
with PyTorch's arguments, parameter names, shapes, initialisation and outputs (a PyTorch
state_dict loads as it is).

A recurrent layer reads a sequence x_0 ... x_{T-1} one step at a time and carries a state
from each step to the next:

    h_t = cell(x_t, h_{t-1})                 (an LSTM also carries a cell state c_t)

Two ways to run a layer's time loop, with the same results:

- A padded batch runs each layer as ONE op, ops.rnn.LSTMSequence (GRUSequence,
  RNNSequence): its forward is the time loop and its backward is backpropagation through time
  written out as the reverse loop, with everything that does not depend on the previous step
  (the inputs' products, the weights' gradients) taken out of the loops as one matrix product
  each.  The tape holds one record per layer; a bidirectional layer's two directions are in
  it, and on a CPU with two cores they run at once, one per core.
- A PackedSequence, and an LSTM with proj_size, run the plain Python loop of
  ``_run_direction`` below, one cell op per step (minigrad/ops/rnn.py: the step's two matrix
  products and its gates, fused).  The tape then holds one record per step, and
  ``loss.backward()`` replays them newest first, each step handing dL/dh_t to the step before:
  backpropagation through time, with nothing to add (docs/derivations/rnn.md).

Stacking and directions: layer k > 0 reads the outputs of layer k - 1 (through dropout while
training, if ``dropout`` > 0).  A bidirectional layer runs a second cell from the last step
to the first, and each step's output is [h_forward, h_backward].
"""
import math
import numbers

import numpy as np

from ..ops import concatenate, linear, stack, transpose
from ..ops import rnn as cell_ops  # the cell ops (nn's RNNCell & co. are the modules below)
from ..ops.rnn import gru_cell, lstm_cell, rnn_cell
from ..tensor import Tensor, zeros
from . import init
from .._arguments import check_probability
from .functional import dropout
from .layers import _empty
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence, _int_list

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _positive_int(cls, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{cls}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _reset_uniform(module):
    """PyTorch's initialisation of every recurrent weight and bias: U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(module.hidden_size)
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


def _check_dtype_device(name, t, weight):
    if t.dtype != weight.dtype:
        raise TypeError(f"{name}: the input is {t.dtype} but the layer's parameters are {weight.dtype}; "
                        f"convert one of them (input.to(dtype=...) or layer.to(dtype=...))")
    if t.device != weight.device:
        raise RuntimeError(f"{name}: the input is on {t.device} but the layer's parameters are on "
                           f"{weight.device}; move one of them with .to(device)")


def _step(mode, x, h, c, weights, w_hr):
    """One step of cell ``mode``: (h', c'), c' None except for an LSTM.  The cell ops are
    applied directly (the layer checked its input and states once, before the loop)."""
    if mode == "LSTM":
        hc = cell_ops.LSTMCell.apply(x, h, c, *weights)  # the new state [h', c'], (2, B, H)
        h, c = hc[0], hc[1]
        return (h if w_hr is None else linear(h, w_hr)), c
    if mode == "GRU":
        return cell_ops.GRUCell.apply(x, h, *weights), None
    return cell_ops.RNNCell.apply(x, h, *weights, nonlinearity="relu" if mode == "RNN_RELU" else "tanh"), None


def _run_direction(mode, xs, h, c, weights, w_hr, reverse, batch_sizes):
    """The time loop of one layer in one direction: returns (outputs per step, h_last, c_last).

    ``xs`` holds one (B_t, I) input per step; ``batch_sizes`` is None for a padded batch
    (B_t = B at every step) or the PackedSequence's sizes (non-increasing: sequences sorted
    longest first, so the ones still going at step t are the first B_t rows).  Going forward,
    rows leave the batch as their sequences end, and their last states are kept aside; going
    backward, rows join at their sequence's last step, starting from their initial state."""
    steps = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    outputs = [None] * len(xs)
    ended = []  # forward over a packed batch: (h, c) of the rows whose sequences have ended
    h0, c0 = h, c
    if batch_sizes is not None and reverse:
        h, c = h0[:batch_sizes[-1]], None if c0 is None else c0[:batch_sizes[-1]]
    for t in steps:
        if batch_sizes is not None and batch_sizes[t] != h.shape[0]:
            b = batch_sizes[t]
            if reverse:  # sequences of length t + 1 start here, from their initial states
                h = concatenate([h, h0[h.shape[0]:b]])
                c = None if c is None else concatenate([c, c0[c.shape[0]:b]])
            else:  # sequences of length t end before this step: keep their final states
                ended.append((h[b:], None if c is None else c[b:]))
                h, c = h[:b], None if c is None else c[:b]
        h, c = _step(mode, xs[t], h, c, weights, w_hr)
        outputs[t] = h
    if ended:  # the rows still here come first; the earliest to end have the highest indices
        h = concatenate([h] + [e[0] for e in reversed(ended)])
        c = None if c is None else concatenate([c] + [e[1] for e in reversed(ended)])
    return outputs, h, c


class RNNBase(Module):
    """What RNN, LSTM and GRU share: the parameters of every layer and direction, the checks
    of input and initial states, and the loop over layers and directions."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = self._name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        self.mode = mode
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.num_layers = _positive_int(name, "num_layers", num_layers)
        self.proj_size = _positive_int(name, "proj_size", proj_size, 0)
        check_probability(dropout, f"{name}: dropout")
        if self.proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size is an LSTM argument only")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"{name}: proj_size ({proj_size}) must be smaller than hidden_size ({hidden_size})")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = bool(bidirectional)
        directions = 2 if self.bidirectional else 1
        gates, out = _GATES[mode], self.proj_size or self.hidden_size
        self._flat_weights_names = []
        for layer in range(self.num_layers):
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                width = self.input_size if layer == 0 else out * directions
                shapes = [("weight_ih", (gates * self.hidden_size, width)),
                          ("weight_hh", (gates * self.hidden_size, out))]
                if self.bias:
                    shapes += [("bias_ih", (gates * self.hidden_size,)), ("bias_hh", (gates * self.hidden_size,))]
                if self.proj_size:
                    shapes.append(("weight_hr", (self.proj_size, self.hidden_size)))
                for pname, shape in shapes:
                    setattr(self, pname + suffix, Parameter(_empty(shape, device, dtype)))
                    self._flat_weights_names.append(pname + suffix)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self)

    def flatten_parameters(self):
        """PyTorch's cuDNN weight-layout call: nothing to do here (kept so scripts run as they are)."""

    @property
    def all_weights(self):
        """The parameters per layer and direction: [[weight_ih_l0, weight_hh_l0, bias_ih_l0, ...], ...]."""
        per = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i:i + per]] for i in range(0, len(names), per)]

    def _weights(self, layer, reverse):
        """(weight_ih, weight_hh[, bias_ih, bias_hh]) and weight_hr (or None) of one layer and direction."""
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        weights = [getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)]
        if self.bias:
            weights += [getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)]
        return weights, getattr(self, "weight_hr" + suffix) if self.proj_size else None

    # -- the input and the initial states --------------------------------------------------------
    def _steps(self, input):
        """(inputs, batch size, batch_sizes or None, sorted/unsorted indices, unbatched); the
        inputs are one (T, B, I) Tensor for a padded batch, a list of the steps' for a packed one."""
        name, weight = self._name, self.weight_ih_l0
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_indices, unsorted_indices = input
            if not isinstance(data, Tensor) or data.ndim != 2 or data.shape[1] != self.input_size:
                raise ValueError(f"{name}: a PackedSequence's data must be (N, input_size={self.input_size}), got "
                                 f"shape {getattr(data, 'shape', None)}")
            _check_dtype_device(name, data, weight)
            sizes = _int_list(name, "batch_sizes", batch_sizes).tolist()
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            xs = [data[int(offsets[t]):int(offsets[t + 1])] for t in range(len(sizes))]
            return xs, sizes[0], sizes, sorted_indices, unsorted_indices, False
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            layout = "(N, L, H_in) with batch_first=True" if self.batch_first else "(L, N, H_in)"
            raise ValueError(f"{name}: input must be 3-D, {layout}, or 2-D (L, H_in) for one sequence, got "
                             f"shape {input.shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features in its last dimension (shape "
                             f"{input.shape}) but the layer was built with input_size={self.input_size}")
        _check_dtype_device(name, input, weight)
        unbatched = input.ndim == 2
        x = input[:, None] if unbatched else (transpose(input, 0, 1) if self.batch_first else input)
        if x.shape[0] == 0:
            raise ValueError(f"{name}: the input has no time steps (shape {input.shape})")
        return x, x.shape[1], None, None, None, unbatched

    def _initial(self, what, given, batch, width, unbatched, sorted_indices):
        """The initial state ``what`` (h_0 or c_0): given (checked, in the batch's sorted order)
        or zeros; shape (num_layers * num_directions, batch, width)."""
        name, weight = self._name, self.weight_ih_l0
        shape = (self.num_layers * (2 if self.bidirectional else 1), batch, width)
        if given is None:
            return zeros(shape, dtype=weight.dtype, device=weight.device)
        if not isinstance(given, Tensor):
            raise TypeError(f"{name}: {what} must be a Tensor, got {type(given).__name__}")
        expected = shape[:1] + shape[2:] if unbatched else shape
        if given.shape != expected:
            dims = "(num_layers * num_directions, " + ("" if unbatched else "batch, ") + "hidden)"
            if width != self.hidden_size:
                dims = dims.replace("hidden", "proj_size")
            raise ValueError(f"{name}: {what} must have shape {dims} = {expected}, got {given.shape}")
        _check_dtype_device(name, given, weight)
        if unbatched:
            return given[:, None]
        return given if sorted_indices is None else given[:, sorted_indices]

    def _states(self, hx, batch, unbatched, sorted_indices):
        """(h_0, c_0 or None), each (num_layers * num_directions, batch, width)."""
        out = self.proj_size or self.hidden_size
        if self.mode != "LSTM":
            return self._initial("h_0", hx, batch, out, unbatched, sorted_indices), None
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a pair (h_0, c_0), got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        return (self._initial("h_0", h0, batch, out, unbatched, sorted_indices),
                self._initial("c_0", c0, batch, self.hidden_size, unbatched, sorted_indices))

    # -- the layers ------------------------------------------------------------------------------
    def _run(self, input, hx):
        """(output, h_n, c_n or None) in the layout of ``input``."""
        x, batch, batch_sizes, sorted_indices, unsorted_indices, unbatched = self._steps(input)
        h0, c0 = self._states(hx, batch, unbatched, sorted_indices)
        if not self.proj_size and batch_sizes is None:
            output, h_n, c_n = self._run_sequences(x, h0, c0)
        else:
            output, h_n, c_n = self._run_steps(x, h0, c0, batch_sizes)
        if batch_sizes is not None:
            output = PackedSequence(output, input.batch_sizes, sorted_indices, unsorted_indices)
            if unsorted_indices is not None:
                h_n = h_n[:, unsorted_indices]
                c_n = None if c_n is None else c_n[:, unsorted_indices]
            return output, h_n, c_n
        if unbatched:
            return output[:, 0], h_n[:, 0], None if c_n is None else c_n[:, 0]
        return (transpose(output, 0, 1) if self.batch_first else output), h_n, c_n

    def _run_sequences(self, x, h0, c0):
        """The layers on a padded batch x (T, B, I), one sequence op (LSTMSequence,
        GRUSequence, RNNSequence) per layer, both directions in it if bidirectional:
        (output (T, B, D * H), h_n, c_n or None)."""
        both = self.bidirectional
        directions = (False, True) if both else (False,)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:  # between layers, not after the last
                x = dropout(x, self.dropout)
            inputs = []  # each direction's initial state(s), weights and biases, one after the other
            for reverse in directions:
                k = layer * len(directions) + reverse
                inputs += [h0[k]] + ([c0[k]] if self.mode == "LSTM" else []) + list(self._weights(layer, reverse)[0])
            order = directions if both else False  # (both: a direction axis in front of the output)
            if self.mode == "LSTM":  # every step's [h_t, c_t]
                states = cell_ops.LSTMSequence.apply(x, *inputs, reverse=order)
                hs = states[:, 0] if both else states[0]
                finals = _ends(states) if both else (states[:, -1],)  # each direction's last [h, c]
                h_n += [hc[0] for hc in finals]
                c_n += [hc[1] for hc in finals]
            else:
                if self.mode == "GRU":
                    hs = cell_ops.GRUSequence.apply(x, *inputs, reverse=order)
                else:
                    hs = cell_ops.RNNSequence.apply(x, *inputs, reverse=order,
                                                    nonlinearity="relu" if self.mode == "RNN_RELU" else "tanh")
                h_n += list(_ends(hs)) if both else [hs[-1]]
            x = concatenate([hs[0], hs[1]], axis=2) if both else hs
        return x, stack(h_n), stack(c_n) if c_n else None

    def _run_steps(self, x, h0, c0, batch_sizes):
        """The layers as a loop of cell ops, one per step (x: a (T, B, I) Tensor, or the steps'
        inputs of a packed batch): (output (T, B, D * H), or the packed data, h_n, c_n or None)."""
        xs = [x[t] for t in range(x.shape[0])] if isinstance(x, Tensor) else x
        directions = (False, True) if self.bidirectional else (False,)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:  # between layers, not after the last
                xs = [dropout(x, self.dropout) for x in xs]
            results = []
            for reverse in directions:
                k = layer * len(directions) + reverse
                weights, w_hr = self._weights(layer, reverse)
                results.append(_run_direction(self.mode, xs, h0[k], None if c0 is None else c0[k], weights, w_hr,
                                              reverse, batch_sizes))
                h_n.append(results[-1][1])
                c_n.append(results[-1][2])
            xs = results[0][0] if len(results) == 1 else [
                concatenate([f, b], axis=1) for f, b in zip(results[0][0], results[1][0])]
        output = stack(xs) if batch_sizes is None else concatenate(xs)
        return output, stack(h_n), None if c0 is None else stack(c_n)

    def forward(self, input, hx=None):
        output, h_n, _ = self._run(input, hx)
        return output, h_n

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


def _ends(states):
    """(forward direction's, reverse direction's) state after the step each read last, from
    states (2, ..., T, B, H) of a bidirectional layer: steps T-1 and 0.  One slice takes both
    ends of both directions (step T-1 apart), so backward writes into a zero gradient of the
    states' size once, not once per pick."""
    ends = states[..., ::max(states.shape[-3] - 1, 1), :, :]
    return ends[0, ..., -1, :, :], ends[1, ..., 0, :, :]


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu).

    Input (L, N, H_in) ((N, L, H_in) with batch_first, (L, H_in) for one sequence, or a
    PackedSequence), optional h_0 (num_layers * num_directions, N, H_out), zeros by default.
    Returns (output (L, N, D * H_out): the last layer's h_t at every step, h_n: every layer's
    final state), as PyTorch's nn.RNN."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's nn.LSTM:

        i, f, o = sigmoid(...),  g = tanh(...)    (each x_t W_i*^T + b_i* + h_{t-1} W_h*^T + b_h*)
        c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)   (with proj_size: h_t = W_hr (o tanh(c_t)))

    forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n)); shapes as nn.RNN, c_* with
    hidden_size units and h_* with proj_size (if given) or hidden_size."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def forward(self, input, hx=None):
        output, h_n, c_n = self._run(input, hx)
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), PyTorch's nn.GRU:

        r, z = sigmoid(...),   n = tanh(x_t W_in^T + b_in + r (h_{t-1} W_hn^T + b_hn)),
        h_t = (1 - z) n + z h_{t-1}

    forward(input, h_0=None) -> (output, h_n), shapes as nn.RNN."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# -- the cells: one step, for loops written by hand ------------------------------------------------


class _CellBase(Module):
    """weight_ih (G*H, I), weight_hh (G*H, H), bias_ih and bias_hh (G*H,), as PyTorch's cells."""

    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        rows = self.gates * self.hidden_size
        self.weight_ih = Parameter(_empty((rows, self.input_size), device, dtype))
        self.weight_hh = Parameter(_empty((rows, self.hidden_size), device, dtype))
        if self.bias:
            self.bias_ih = Parameter(_empty((rows,), device, dtype))
            self.bias_hh = Parameter(_empty((rows,), device, dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self)

    def _weights(self):
        return (self.weight_ih, self.weight_hh) + ((self.bias_ih, self.bias_hh) if self.bias else ())

    def _input(self, input):
        """(input as (B, I), unbatched?), checked."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must be (batch, input_size={self.input_size}) or (input_size,), got "
                             f"shape {input.shape}")
        _check_dtype_device(name, input, self.weight_ih)
        return (input[None], True) if input.ndim == 1 else (input, False)

    def _state(self, what, given, batch, unbatched):
        name = type(self).__name__
        if given is None:
            return zeros((batch, self.hidden_size), dtype=self.weight_ih.dtype, device=self.weight_ih.device)
        expected = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        if not isinstance(given, Tensor) or given.shape != expected:
            got = given.shape if isinstance(given, Tensor) else type(given).__name__
            raise ValueError(f"{name}: {what} must have shape {expected} for an input of batch {batch}"
                             f"{' (unbatched)' if unbatched else ''}, got {got}")
        _check_dtype_device(name, given, self.weight_ih)
        return given[None] if unbatched else given

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class RNNCell(_CellBase):
    """One Elman RNN step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu).
    forward(input (B, I) or (I,), hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        x, unbatched = self._input(input)
        h = rnn_cell(x, self._state("hx", hx, x.shape[0], unbatched), *self._weights(), nonlinearity=self.nonlinearity)
        return h[0] if unbatched else h


class LSTMCell(_CellBase):
    """One LSTM step: forward(input, (h, c)=None) -> (h', c')."""

    gates = 4

    def forward(self, input, hx=None):
        x, unbatched = self._input(input)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a pair (h, c), got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        h, c = lstm_cell(x, (self._state("h", h0, x.shape[0], unbatched), self._state("c", c0, x.shape[0], unbatched)),
                         *self._weights())
        return (h[0], c[0]) if unbatched else (h, c)


class GRUCell(_CellBase):
    """One GRU step: forward(input, hx=None) -> h'."""

    gates = 3

    def forward(self, input, hx=None):
        x, unbatched = self._input(input)
        h = gru_cell(x, self._state("hx", hx, x.shape[0], unbatched), *self._weights())
        return h[0] if unbatched else h
