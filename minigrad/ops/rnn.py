"""Recurrent networks' ops: one time step of an Elman RNN, an LSTM and a GRU (RNNCell,
LSTMCell, GRUCell), and a whole layer, in one direction or both (LSTMSequence, GRUSequence,
RNNSequence).

A recurrent layer applies the same cell at every time step, feeding each step's state to the
next.  A cell op fuses one step: the two matrix products (the input's, x W_ih^T, and the
state's, h W_hh^T) and the gates' elementwise math, forward and backward, are one kernel of the
table each (``lstm_cell_forward`` / ``lstm_cell_backward`` ...; BLAS or cuBLAS for the
products).  Written as a Python loop over cell ops (nn/rnn.py does so for a projected LSTM
and packed sequences), backpropagation through time is nothing special:
the tape holds one record per step, and the engine replays them newest first, each handing
dL/dh (and, for the LSTM, dL/dc) to the step before.

LSTMSequence (and GRUSequence, RNNSequence, the same with one state) is the same recurrence
as ONE record: its ``forward`` is the time loop, its
``backward`` is backpropagation through time written out as the reverse loop (the place to
read BPTT).  What does not depend on the previous step leaves the loops: the input's product
for all T steps is one matrix product before the forward loop, and dX, dW_ih, dW_hh and the
biases' gradients are one matrix product each after the backward loop; each step is then
h W_hh^T and a gate kernel of the table (``lstm_step_forward`` / ``lstm_step_backward`` ...).
A bidirectional layer's two directions are one record too; they share only the input, and on
the CPU they run at once, one per core (_Sequence).  The derivation, with a 2-step LSTM worked by hand: docs/derivations/rnn.md.

Shapes (PyTorch's): x (B, I), h (B, P), weight_ih (G*H, I), weight_hh (G*H, P), biases
(G*H,), with G = 1, 3, 4 gates (RNN, GRU, LSTM) in PyTorch's order (GRU: r, z, n; LSTM: i, f,
g, o).  P = H, except for an LSTM with a projection, whose state h is projected to P < H.

Each ``backward`` writes the formulas with minigrad ops (the gates recomputed from the inputs
on the tape), so second derivatives hold (gradgradcheck); ``fused_backward`` is the kernel that
the engine runs instead when the gradient is not recorded (docs/autograd.md, "Higher
derivatives").
"""
from functools import partial

import numpy as np

from .. import backend
from ..backend import cpu_threads
from ..autograd import Function, register
from ..tensor import Tensor
from .activation import relu_grad, sigmoid, sigmoid_grad, tanh, tanh_grad
from .matmul import linear
from .reduce import sum
from .shape import concatenate, stack


def _weight_grads(da_i, da_h, x, h, w_ih, w_hh):
    """(dx, dh, dw_ih, dw_hh, db_ih, db_hh) from the gradients of the step's two products,
    da_i = dL/d(x W_ih^T + b_ih) and da_h = dL/d(h W_hh^T + b_hh), as minigrad ops."""
    return (da_i @ w_ih, da_h @ w_hh, da_i.T @ x, da_h.T @ h, sum(da_i, axis=0), sum(da_h, axis=0))


def _wrap_all(arrays):
    return tuple(None if a is None else Tensor._wrap(a) for a in arrays)


@register
class RNNCell(Function):
    """One step of an Elman RNN (nonlinearity tanh or relu):

        a = x W_ih^T + b_ih + h W_hh^T + b_hh,      h' = tanh(a)  or  relu(a)

    Backward (g = dL/dh'), from h' itself:
        da = g (1 - h'^2)  or  g [h' > 0]
        dx = da W_ih,   dh = da W_hh,   dW_ih = da^T x,   dW_hh = da^T h,   db_ih = db_hh = sum_rows(da)"""

    saves_inputs = (0, 1, 2, 3)  # x, h, W_ih, W_hh; not the biases
    saves_output = True          # h': the nonlinearity's derivative is written with it

    def forward(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity):
        self.nonlinearity = nonlinearity
        return backend.kernels(x).rnn_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity)

    def backward(self, g):
        x, h, w_ih, w_hh = self.inputs[:4]
        da = _rnn_da(g, self.saved_output, self.nonlinearity)
        return _weight_grads(da, da, x, h, w_ih, w_hh)[:len(self.inputs)]  # (none for absent biases)

    def fused_backward(self, g):
        x, h, w_ih, w_hh = self.inputs[:4]
        dx, dh, dw_ih, dw_hh, db = _wrap_all(backend.kernels(g.array).rnn_cell_backward(
            g.array, x.array, h.array, self.saved_output.array, w_ih.array, w_hh.array, self.nonlinearity,
            x.requires_grad))
        return (dx, dh, dw_ih, dw_hh, db, db)[:len(self.inputs)]


@register
class LSTMCell(Function):
    """One step of an LSTM; the output is the new state hc = [h', c'] (2, B, H):

        a = x W_ih^T + b_ih + h W_hh^T + b_hh = [a_i, a_f, a_g, a_o]
        i = sigmoid(a_i),  f = sigmoid(a_f),  g = tanh(a_g),  o = sigmoid(a_o)
        c' = f c + i g,    h' = o tanh(c')

    Backward (gh = dL/dh', gc = dL/dc'), from the gates and tanh(c') kept by forward:
        dc' = gc + gh o (1 - tanh(c')^2)
        da = [dc' g i (1 - i),  dc' c f (1 - f),  dc' i (1 - g^2),  gh tanh(c') o (1 - o)]
        dc = dc' f,   dx = da W_ih,   dh = da W_hh,   dW_ih = da^T x,   dW_hh = da^T h,
        db_ih = db_hh = sum_rows(da)
    The cell state's gradient passes from step to step multiplied only by the forget gate
    (dc = dc' f): no weight matrix, no squashing derivative, so it can survive many steps."""

    # saves_inputs: all (the biases: to recompute the gates under create_graph)

    def forward(self, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
        hc, self.saved = backend.kernels(x).lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
        return hc

    def fused_backward(self, ghc):
        x, h, c, w_ih, w_hh = self.inputs[:5]
        dx, dh, dc, dw_ih, dw_hh, db = _wrap_all(backend.kernels(ghc.array).lstm_cell_backward(
            ghc.array, x.array, h.array, c.array, self.saved, w_ih.array, w_hh.array, x.requires_grad))
        return (dx, dh, dc, dw_ih, dw_hh, db, db)[:len(self.inputs)]

    def backward(self, ghc):
        """The formulas as minigrad ops, the gates recomputed on the tape."""
        dx, dh, dc, dw_ih, dw_hh, db = _lstm_step_grads(*self.inputs[:5], self.inputs[5:], ghc[0], ghc[1])
        return (dx, dh, dc, dw_ih, dw_hh, db, db)[:len(self.inputs)]


def _lstm_step_grads(x, h, c, w_ih, w_hh, biases, gh, gc):
    """(dx, dh, dc, dW_ih, dW_hh, db) of one LSTM step given gh = dL/dh' and gc = dL/dc', as
    minigrad ops (LSTMCell's docstring has the formulas; the gates recomputed on the tape)."""
    b_ih, b_hh = (tuple(biases) + (None, None))[:2]
    a = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)
    n = c.shape[1]
    i, f, o = (sigmoid(a[:, k * n:(k + 1) * n]) for k in (0, 1, 3))
    g = tanh(a[:, 2 * n:3 * n])
    tc = tanh(f * c + i * g)
    dc_new = gc + tanh_grad(gh * o, tc)
    da = concatenate([sigmoid_grad(dc_new * g, i), sigmoid_grad(dc_new * c, f),
                      tanh_grad(dc_new * i, g), sigmoid_grad(gh * tc, o)], axis=1)
    dx, dh, dw_ih, dw_hh, db, _ = _weight_grads(da, da, x, h, w_ih, w_hh)
    return dx, dh, dc_new * f, dw_ih, dw_hh, db


@register
class GRUCell(Function):
    """One step of a GRU (PyTorch's formulation; the reset gate multiplies h W_hn^T + b_hn):

        gi = x W_ih^T + b_ih = [gi_r, gi_z, gi_n],    gh = h W_hh^T + b_hh = [gh_r, gh_z, gh_n]
        r = sigmoid(gi_r + gh_r),   z = sigmoid(gi_z + gh_z),   n = tanh(gi_n + r gh_n)
        h' = (1 - z) n + z h

    Backward (g = dL/dh'), from r, z, n and gh_n kept by forward:
        da_n = g (1 - z) (1 - n^2),   da_r = da_n gh_n r (1 - r),   da_z = g (h - n) z (1 - z)
        dgi = [da_r, da_z, da_n],     dgh = [da_r, da_z, r da_n]
        dx = dgi W_ih,   dh = g z + dgh W_hh,   dW_ih = dgi^T x,   dW_hh = dgh^T h,
        db_ih = sum_rows(dgi),   db_hh = sum_rows(dgh)"""

    # saves_inputs: all (the biases: to recompute the gates under create_graph)

    def forward(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None):
        h_new, self.saved = backend.kernels(x).gru_cell_forward(x, h, w_ih, w_hh, b_ih, b_hh)
        return h_new

    def fused_backward(self, g):
        x, h, w_ih, w_hh = self.inputs[:4]
        grads = backend.kernels(g.array).gru_cell_backward(g.array, x.array, h.array, self.saved,
                                                            w_ih.array, w_hh.array, x.requires_grad)
        return _wrap_all(grads)[:len(self.inputs)]

    def backward(self, g):
        """The formulas as minigrad ops, the gates recomputed on the tape."""
        return _gru_step_grads(*self.inputs[:4], self.inputs[4:], g)[:len(self.inputs)]


def _gru_step_grads(x, h, w_ih, w_hh, biases, g):
    """(dx, dh, dW_ih, dW_hh, db_ih, db_hh) of one GRU step given g = dL/dh', as minigrad ops
    (GRUCell's docstring has the formulas; the gates recomputed on the tape)."""
    b_ih, b_hh = (tuple(biases) + (None, None))[:2]
    gi, gh = linear(x, w_ih, b_ih), linear(h, w_hh, b_hh)
    n_ = h.shape[1]
    r, z = (sigmoid(gi[:, k * n_:(k + 1) * n_] + gh[:, k * n_:(k + 1) * n_]) for k in (0, 1))
    ghn = gh[:, 2 * n_:]
    n = tanh(gi[:, 2 * n_:] + r * ghn)
    da_n = tanh_grad(g * (1 - z), n)
    da_r = sigmoid_grad(da_n * ghn, r)
    da_z = sigmoid_grad(g * (h - n), z)
    dgi = concatenate([da_r, da_z, da_n], axis=1)
    dgh = concatenate([da_r, da_z, da_n * r], axis=1)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(dgi, dgh, x, h, w_ih, w_hh)
    return dx, dh + g * z, dw_ih, dw_hh, db_ih, db_hh


def _rnn_da(g, h_new, nonlinearity):
    """dL/da of an Elman step from g = dL/dh' and h' itself (ops): g (1 - h'^2) or g [h' > 0]."""
    return tanh_grad(g, h_new) if nonlinearity == "tanh" else relu_grad(g, h_new)


# -- a whole layer: the sequence ops ----------------------------------------------------------


class _Sequence(Function):
    """What LSTMSequence, GRUSequence and RNNSequence share: a layer in one direction, or in
    both (a bidirectional layer) as one record.

    Inputs: x (T, B, I), then each direction's own inputs (its initial state(s), weights and
    biases), one direction after the other.  ``reverse``: a bool (one direction; True reads
    the steps last to first), or a tuple with one bool per direction ((False, True): both
    directions of a bidirectional layer), which puts a direction axis in front of the output.

    The directions share only x, so they are independent: on the CPU they run at once, one per
    core, forward and backward (backend/cpu_threads.py's ``concurrently``; one after the other on
    a GPU or on one core).  Each direction's arithmetic is the same either way.

    A subclass writes one direction: ``_shape`` (its output's), ``_run`` (the time loop),
    ``_bptt`` (backpropagation through time with minigrad ops) and ``_fused_bptt`` (the same on
    arrays, with the table's step kernels)."""

    saves_output = True  # the states: each step's backward starts from the state before it

    def forward(self, x, *inputs, reverse=False):
        self.single = not isinstance(reverse, tuple)
        self.reverse = (reverse,) if self.single else reverse
        dtype = np.result_type(*(a.dtype for a in (x,) + inputs))
        out = backend.array_module(x).empty((len(self.reverse),) + self._shape(x, inputs[0]), dtype=dtype)
        self.saved = [None] * len(self.reverse)  # what each direction's backward reads besides out

        def run(d):
            self.saved[d] = self._run(x, *self._own(inputs, d), reverse=self.reverse[d], out=out[d])
        cpu_threads.concurrently([partial(run, d) for d in range(len(self.reverse))], like=x)
        return out[0] if self.single else out

    def backward(self, g):
        """Each direction's BPTT with minigrad ops (so the gradient is differentiable again);
        x's gradient is the sum of what the directions send it."""
        x, out = self.inputs[0], self.saved_output
        dx, grads = None, []
        for d, reverse in enumerate(self.reverse):
            g_d, out_d = (g, out) if self.single else (g[d], out[d])
            dx_d, *own = self._bptt(x, *self._own(self.inputs[1:], d), out=out_d, g=g_d, reverse=reverse)
            dx = dx_d if dx is None else dx + dx_d
            grads += own
        return (dx, *grads)

    def fused_backward(self, g):
        """Each direction's BPTT on arrays, the directions at once on the CPU's cores."""
        x, need_dx = self.inputs[0].array, self.inputs[0].requires_grad
        g, out = g.array, self.saved_output.array
        own = [t.array for t in self.inputs[1:]]

        def bptt(d):
            g_d, out_d = (g, out) if self.single else (g[d], out[d])
            need_dh0 = self._own(self.inputs[1:], d)[0].requires_grad  # (the zero state nn makes: no)
            return self._fused_bptt(x, *self._own(own, d), out=out_d, g=g_d, saved=self.saved[d],
                                    reverse=self.reverse[d], need_dx=need_dx, need_dh0=need_dh0)
        per_direction = cpu_threads.concurrently([partial(bptt, d) for d in range(len(self.reverse))], like=x)
        dx = per_direction[0][0]
        for grads in per_direction[1:]:
            dx = None if dx is None else dx + grads[0]
        return _wrap_all((dx,) + tuple(a for grads in per_direction for a in grads[1:]))

    def _own(self, inputs, d):
        """Direction d's own inputs (states, weights, biases) among ``inputs`` (all but x)."""
        n = len(inputs) // len(self.reverse)
        return inputs[d * n:(d + 1) * n]


@register
class LSTMSequence(_Sequence):
    """A whole LSTM layer: the LSTM step (LSTMCell's formulas) at t = 0, 1, ..., T-1
    (reverse=True: T-1, ..., 0), each from the state the step before left, starting from
    (h_0, c_0).  Inputs x (T, B, I), then per direction h_0 and c_0 (B, H), the weights and
    biases; the output is every step's state, out (2, T, B, H): out[0, t] = h_t, out[1, t] = c_t,
    the state after reading x_t ((D, 2, T, B, H) for D directions: _Sequence).

    Forward, with X the T inputs stacked (T*B, I):
        A = X W_ih^T + b_ih + b_hh                          one matrix product for all steps
        for each t in order:  a = A_t + h W_hh^T,   (h, c) = gates(a, c)    (LSTMCell)

    Backward: backpropagation through time, the steps in reverse order, carrying dh and dc
    from each step to the one before (G = dL/dout, zero at the start):
        for each t in reverse order:
            gh = G[0, t] + dh,   gc = G[1, t] + dc       (h_t reaches the loss directly and
                                                          through step t+1; c_t likewise)
            da_t, dc = the gates' gradients (LSTMCell),  dh = da_t W_hh
        dX = dA W_ih,   dW_ih = dA^T X,   dW_hh = sum_t da_t^T h_(t-1),   db_ih = db_hh = sum(dA)
        dh_0 = dh,  dc_0 = dc                              (what the first step sends back)
    with dA all steps' da stacked: after the loop, one matrix product each."""

    def _shape(self, x, h0):
        return (2, x.shape[0], x.shape[1], h0.shape[1])

    def _run(self, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, reverse, out):
        """The time loop; writes every step's (h, c) into out, returns what backward reads besides:
        every step's gates (in the buffer of the input's products: a step reads its product once,
        and its kernel writes the gates over it) and tanh(c)."""
        xp, kernels = backend.array_module(x), backend.kernels(x)
        steps, batch, hidden = x.shape[0], x.shape[1], c0.shape[1]
        # every step's input product, then (written over it by the step) its gates [i, f, g, o]
        gates = _input_products(x, w_ih, None if b_ih is None else b_ih + b_hh)
        tanh_c = xp.empty((steps, batch, hidden), dtype=out.dtype)
        w_hh_t = xp.ascontiguousarray(w_hh.T)  # every step reads it: contiguous once, not per product
        hw = xp.empty((batch, 4 * hidden), dtype=out.dtype)
        h, c = h0, c0
        for t in _order(steps, reverse):
            xp.matmul(h, w_hh_t, out=hw)
            kernels.lstm_step_forward(gates[t], hw, c, out[0, t], out[1, t], tanh_c[t])
            h, c = out[0, t], out[1, t]
        return gates, tanh_c

    def _bptt(self, x, h0, c0, w_ih, w_hh, *biases, out, g, reverse):
        """BPTT with minigrad ops: each step's gradients by LSTMCell's formulas (the gates
        recomputed on the tape).  (dx, dh_0, dc_0, dW_ih, dW_hh[, db_ih, db_hh])."""
        order = _order(x.shape[0], reverse)
        dxs, dh, dc, sums = [None] * x.shape[0], None, None, None
        for k in range(len(order) - 1, -1, -1):
            t = order[k]
            h, c = (h0, c0) if k == 0 else (out[0, order[k - 1]], out[1, order[k - 1]])
            gh, gc = (g[0, t], g[1, t]) if dh is None else (g[0, t] + dh, g[1, t] + dc)
            dxs[t], dh, dc, *grads = _lstm_step_grads(x[t], h, c, w_ih, w_hh, biases, gh, gc)
            sums = grads if sums is None else _summed(sums, grads)
        dw_ih, dw_hh, db = sums
        return (stack(dxs), dh, dc, dw_ih, dw_hh) + ((db, db) if biases else ())

    def _fused_bptt(self, x, h0, c0, w_ih, w_hh, *biases, out, g, saved, reverse, need_dx, need_dh0):
        """The same loop on arrays: the table's gate kernel and one product per step (the first
        step's only when h_0 wants its gradient, dh_0; otherwise that is None)."""
        xp, kernels = backend.array_module(x), backend.kernels(x)
        order, steps, batch, hidden = _order(x.shape[0], reverse), x.shape[0], x.shape[1], c0.shape[1]
        gates, tanh_c = saved
        da = xp.empty((steps, batch, 4 * hidden), dtype=out.dtype)
        dh, dc = xp.empty((batch, hidden), dtype=out.dtype), xp.empty((batch, hidden), dtype=out.dtype)
        gh, gc = xp.empty_like(dh), xp.empty_like(dc)
        for k in range(steps - 1, -1, -1):
            t = order[k]
            if k == steps - 1:  # the last step: nothing comes back from a step after it
                gh_t, gc_t = g[0, t], g[1, t]
            else:
                gh_t, gc_t = xp.add(g[0, t], dh, out=gh), xp.add(g[1, t], dc, out=gc)
            kernels.lstm_step_backward(gh_t, gc_t, c0 if k == 0 else out[1, order[k - 1]], gates[t], tanh_c[t],
                                       da[t], dc)
            if k or need_dh0:
                xp.matmul(da[t], w_hh, out=dh)
        dx, dw_ih, dw_hh, db, _ = _hoisted_grads(x, h0, out[0], da, da, w_ih, reverse, need_dx, bool(biases))
        return (dx, dh if need_dh0 else None, dc, dw_ih, dw_hh) + ((db, db) if biases else ())


@register
class GRUSequence(_Sequence):
    """A whole GRU layer: the GRU step (GRUCell's formulas) at every step in order
    (reverse=True: last to first) from h_0.  Inputs x (T, B, I), then per direction h_0 (B, H),
    the weights and biases; the output is every step's state, out (T, B, H): out[t] = h_t
    ((D, T, B, H) for D directions: _Sequence).

    Forward:   GI = X W_ih^T + b_ih for all steps at once (one matrix product), then per step
               gh = h W_hh^T + b_hh and the gates (GRUCell) from GI_t and gh.
    Backward (backpropagation through time, LSTMSequence's loop with one state):
        for each t in reverse order:
            g_t = G[t] + dh,   dgi_t, dgh_t, g z = the gates' gradients (GRUCell),
            dh = dgh_t W_hh + g z
        dX = dGI W_ih,  dW_ih = dGI^T X,  dW_hh = sum_t dgh_t^T h_(t-1),
        db_ih = sum(dGI),  db_hh = sum(dGH)          (after the loop: one product each)"""

    def _shape(self, x, h0):
        return (x.shape[0], x.shape[1], h0.shape[1])

    def _run(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, reverse, out):
        xp, kernels = backend.array_module(x), backend.kernels(x)
        steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
        gi = _input_products(x, w_ih, b_ih)  # (b_hh stays on the state's side: r multiplies it)
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        saved = xp.empty((steps, batch, 4 * hidden), dtype=out.dtype)  # [r, z, n, gh_n]
        gh = xp.empty((batch, 3 * hidden), dtype=out.dtype)
        h = h0
        for t in _order(steps, reverse):
            xp.matmul(h, w_hh_t, out=gh)
            if b_hh is not None:
                gh += b_hh
            kernels.gru_step_forward(gi[t], gh, h, out[t], saved[t])
            h = out[t]
        return saved

    def _bptt(self, x, h0, w_ih, w_hh, *biases, out, g, reverse):
        """BPTT with minigrad ops (GRUCell's formulas, the gates recomputed on the tape)."""
        return _bptt_one_state(x, h0, out, g, reverse, lambda t, h, g_t: _gru_step_grads(x[t], h, w_ih, w_hh, biases, g_t),
                               len(biases))

    def _fused_bptt(self, x, h0, w_ih, w_hh, *biases, out, g, saved, reverse, need_dx, need_dh0):
        """The same loop on arrays: the table's gate kernel and one product per step (the
        first step's only for dh_0: LSTMSequence)."""
        xp, kernels = backend.array_module(x), backend.kernels(x)
        order, steps, batch, hidden = _order(x.shape[0], reverse), x.shape[0], x.shape[1], h0.shape[1]
        dgi, dgh = (xp.empty((steps, batch, 3 * hidden), dtype=out.dtype) for _ in range(2))
        dh, g_z, buffer = (xp.empty((batch, hidden), dtype=out.dtype) for _ in range(3))
        for k in range(steps - 1, -1, -1):
            t = order[k]
            g_t = g[t] if k == steps - 1 else xp.add(g[t], dh, out=buffer)
            kernels.gru_step_backward(g_t, h0 if k == 0 else out[order[k - 1]], saved[t], dgi[t], dgh[t], g_z)
            if k or need_dh0:
                xp.matmul(dgh[t], w_hh, out=dh)
                dh += g_z
        dx, dw_ih, dw_hh, db_ih, db_hh = _hoisted_grads(x, h0, out, dgi, dgh, w_ih, reverse, need_dx, bool(biases))
        return (dx, dh if need_dh0 else None, dw_ih, dw_hh) + ((db_ih, db_hh) if biases else ())


@register
class RNNSequence(_Sequence):
    """A whole Elman RNN layer (nonlinearity tanh or relu): RNNCell's step at every step in
    order (reverse=True: last to first) from h_0.  Inputs x (T, B, I), then per direction
    h_0 (B, H), the weights and biases; the output is every step's state, out (T, B, H):
    out[t] = h_t ((D, T, B, H) for D directions: _Sequence).

    Forward:   A = X W_ih^T + b_ih + b_hh for all steps at once, then h_t = tanh(A_t + h_(t-1) W_hh^T)
               (or relu).
    Backward (BPTT):  for each t in reverse order:  da_t = (G[t] + dh) (1 - h_t^2)  (relu: [h_t > 0]),
                      dh = da_t W_hh;
               then dX = dA W_ih,  dW_ih = dA^T X,  dW_hh = sum_t da_t^T h_(t-1),  db = sum(dA)."""

    def forward(self, x, *inputs, nonlinearity, reverse=False):
        self.nonlinearity = nonlinearity
        return super().forward(x, *inputs, reverse=reverse)

    def _shape(self, x, h0):
        return (x.shape[0], x.shape[1], h0.shape[1])

    def _run(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, reverse, out):
        xp, kernels = backend.array_module(x), backend.kernels(x)
        xw = _input_products(x, w_ih, None if b_ih is None else b_ih + b_hh)
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        hw = xp.empty((x.shape[1], h0.shape[1]), dtype=out.dtype)
        h = h0
        for t in _order(x.shape[0], reverse):
            xp.matmul(h, w_hh_t, out=hw)
            kernels.rnn_step_forward(xw[t], hw, self.nonlinearity, out[t])
            h = out[t]
        return None  # backward reads only the states

    def _bptt(self, x, h0, w_ih, w_hh, *biases, out, g, reverse):
        """BPTT with minigrad ops (RNNCell's formulas)."""
        def step_grads(t, h, g_t):
            da = _rnn_da(g_t, out[t], self.nonlinearity)
            return _weight_grads(da, da, x[t], h, w_ih, w_hh)
        return _bptt_one_state(x, h0, out, g, reverse, step_grads, len(biases))

    def _fused_bptt(self, x, h0, w_ih, w_hh, *biases, out, g, saved, reverse, need_dx, need_dh0):
        """The same loop on arrays: the table's kernel and one product per step (the first
        step's only for dh_0: LSTMSequence)."""
        xp, kernels = backend.array_module(x), backend.kernels(x)
        order, steps = _order(x.shape[0], reverse), x.shape[0]
        da = xp.empty(out.shape, dtype=out.dtype)
        dh, buffer = xp.empty_like(out[0]), xp.empty_like(out[0])
        for k in range(steps - 1, -1, -1):
            t = order[k]
            g_t = g[t] if k == steps - 1 else xp.add(g[t], dh, out=buffer)
            kernels.rnn_step_backward(g_t, out[t], self.nonlinearity, da[t])
            if k or need_dh0:
                xp.matmul(da[t], w_hh, out=dh)
        dx, dw_ih, dw_hh, db, _ = _hoisted_grads(x, h0, out, da, da, w_ih, reverse, need_dx, bool(biases))
        return (dx, dh if need_dh0 else None, dw_ih, dw_hh) + ((db, db) if biases else ())


# -- what the sequence ops share ---------------------------------------------------------


def _order(steps, reverse):
    """The time steps in the order a direction reads them."""
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _summed(sums, grads):
    return [a + b for a, b in zip(sums, grads)]


def _bptt_one_state(x, h0, out, g, reverse, step_grads, n_biases):
    """GRUSequence's and RNNSequence's backward with minigrad ops: the steps in reverse order,
    each given g_t = dL/dh_t (direct, plus what the step after sends back) and the state h
    it started from; ``step_grads(t, h, g_t)`` -> (dx_t, dh, dW_ih, dW_hh, db_ih, db_hh).
    Returns (dx, dh_0, dW_ih, dW_hh) and the biases' two gradients if there are biases."""
    order = _order(x.shape[0], reverse)
    dxs, dh, sums = [None] * x.shape[0], None, None
    for k in range(len(order) - 1, -1, -1):
        t = order[k]
        dxs[t], dh, *grads = step_grads(t, h0 if k == 0 else out[order[k - 1]], g[t] if dh is None else g[t] + dh)
        sums = grads if sums is None else _summed(sums, grads)
    return (stack(dxs), dh, *sums)[:4 + n_biases]


def _input_products(x, w_ih, bias):
    """X W_ih^T (+ bias) for all T steps of x (T, B, I) as one matrix product: (T, B, G*H).
    The bias rides in the product as the weight of one more input that is always 1,
    [X, 1] [W_ih, bias]^T: cheaper than a pass over the (T, B, G*H) result to add it (the MNIST
    BiLSTM's: 1.4 ms instead of 1.6-2.1 on one core), and X is copied anyway when it is a
    transposed view (batch_first)."""
    steps, batch, width = x.shape
    if bias is None:
        return (x.reshape(steps * batch, width) @ w_ih.T).reshape(steps, batch, w_ih.shape[0])
    xp = backend.array_module(x)
    x1 = xp.empty((steps, batch, width + 1), dtype=np.result_type(x.dtype, w_ih.dtype))
    x1[:, :, :width] = x
    x1[:, :, width] = 1
    return (x1.reshape(steps * batch, width + 1) @ xp.concatenate([w_ih.T, bias[None]])).reshape(
        steps, batch, w_ih.shape[0])


def _hoisted_grads(x, h0, hs, da_in, da_state, w_ih, reverse, need_dx, biased):
    """After a backward loop, from the gradients of every step's two products stacked
    (da_in = dL/d(x_t W_ih^T + b_ih), da_state = dL/d(h_(t-1) W_hh^T + b_hh), (T, B, G*H); the
    same array unless GRU) and the states hs (T, B, H): (dX or None, dW_ih, dW_hh, db_ih, db_hh),
    the biases' None unless ``biased``.  A weight's gradient sums a product over all T*B rows,
    and a bias is the weight of an input that is always 1, so with Z = [X, 1, H_prev, 1] (a row
    per step and sequence: its input, 1, the state the step started from, 1):
        [dW_ih, db_ih, dW_hh] = dA^T [X, 1, H_prev]          (LSTM, RNN: da_in = da_state = dA)
        [dW_ih, db_ih] = dGI^T [X, 1],   [dW_hh, db_hh] = dGH^T [H_prev, 1]          (GRU)
    One product over all T*B rows instead of one per weight (the input's a thin one: I = 28 for
    MNIST) and a pass over dA per bias: for the MNIST BiLSTM 6.7 ms a direction instead of 7.7
    on one core.  Each is computed as (Z^T dA)^T, which OpenBLAS runs ~10% faster here."""
    steps, batch, inputs = x.shape
    width, hidden, rows, ones = da_in.shape[2], hs.shape[2], steps * batch, int(biased)
    xp = backend.array_module(x)
    z = xp.empty((steps, batch, inputs + ones + hidden + ones), dtype=da_in.dtype)
    z[:, :, :inputs] = x
    prev = z[:, :, inputs + ones:inputs + ones + hidden]  # h_(t-1); h_0 for the first step read
    if reverse:
        prev[:-1], prev[-1] = hs[1:], h0
    else:
        prev[1:], prev[0] = hs[:-1], h0
    if biased:
        z[:, :, inputs] = z[:, :, -1] = 1
    z = z.reshape(rows, z.shape[2])
    flat_in = da_in.reshape(rows, width)
    if da_state is da_in:
        products = z[:, :inputs + ones + hidden].T @ flat_in
        dw_ih, db_ih = _weight_and_bias(products[:inputs + ones], inputs)
        dw_hh, db_hh = _weight_and_bias(products[inputs + ones:], hidden)[0], db_ih
    else:
        dw_ih, db_ih = _weight_and_bias(z[:, :inputs + ones].T @ flat_in, inputs)
        dw_hh, db_hh = _weight_and_bias(z[:, inputs + ones:].T @ da_state.reshape(rows, width), hidden)
    dx = (flat_in @ w_ih).reshape(x.shape) if need_dx else None
    return dx, dw_ih, dw_hh, db_ih, db_hh


def _weight_and_bias(product, n):
    """A (n [+ 1], G*H) block of Z^T dA: the weight's gradient (G*H, n), contiguous, and the
    bias's from the row of ones, or None when there is none."""
    weight = backend.array_module(product).ascontiguousarray(product[:n].T)
    return weight, (product[n] if product.shape[0] > n else None)


# -- the functional forms ------------------------------------------------------------------


def _check_cell(op, gates, x, state, w_ih, w_hh, b_ih, b_hh, c=None):
    """Types, dtypes, devices and shapes of one cell step; errors name ``op`` and the shapes."""
    named = [("input", x), ("hx", state), ("w_ih", w_ih), ("w_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh),
             ("cx", c)]
    named = [(name, t) for name, t in named if t is not None or name in ("input", "hx", "w_ih", "w_hh")]
    for name, t in named:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{op}: pass both biases (b_ih and b_hh) or neither")
    dtypes = {t.dtype for _, t in named}
    if len(dtypes) > 1 or x.dtype.kind != "f":
        listed = ", ".join(f"{name} {t.dtype}" for name, t in named)
        raise TypeError(f"{op}: input, states, weights and biases must share one floating dtype, got {listed}")
    devices = {t.device for _, t in named}
    if len(devices) > 1:
        listed = ", ".join(f"{name} on {t.device}" for name, t in named)
        raise RuntimeError(f"{op}: all tensors must be on one device, got {listed}")
    hidden = w_ih.shape[0] // gates if w_ih.ndim == 2 else -1
    expected = {"input": (x.shape[0] if x.ndim == 2 else -1, w_ih.shape[1] if w_ih.ndim == 2 else -1),
                "w_ih": (gates * hidden, x.shape[-1] if x.ndim else -1),
                "w_hh": (gates * hidden, state.shape[-1] if state.ndim else -1),
                "b_ih": (gates * hidden,), "b_hh": (gates * hidden,)}
    if c is None:
        expected["hx"] = (x.shape[0] if x.ndim == 2 else -1, hidden)
    else:  # an LSTM's h may be projected (P wide); c is H wide
        expected["hx"] = (x.shape[0] if x.ndim == 2 else -1, w_hh.shape[1] if w_hh.ndim == 2 else -1)
        expected["cx"] = (x.shape[0] if x.ndim == 2 else -1, hidden)
    bad = x.ndim != 2 or w_ih.ndim != 2 or w_ih.shape[0] % gates or any(
        tuple(t.shape) != expected[name] for name, t in named)
    if bad:
        listed = ", ".join(f"{name} {tuple(t.shape)}" for name, t in named)
        raise ValueError(f"{op}: shapes do not fit one cell step with {gates} gate(s) of H units: got {listed}; "
                         f"expected input (B, I), hx (B, {'P' if c is not None else 'H'})"
                         f"{', cx (B, H)' if c is not None else ''}, w_ih ({gates}H, I), "
                         f"w_hh ({gates}H, {'P' if c is not None else 'H'}), biases ({gates}H,)")


def _optional_biases(b_ih, b_hh):
    return () if b_ih is None else (b_ih, b_hh)


def rnn_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One Elman RNN step: h' = tanh (or relu) of input w_ih^T + b_ih + hx w_hh^T + b_hh.
    input (B, I), hx (B, H), w_ih (H, I), w_hh (H, H), biases (H,) or None."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_cell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    _check_cell("rnn_cell", 1, input, hx, w_ih, w_hh, b_ih, b_hh)
    return RNNCell.apply(input, hx, w_ih, w_hh, *_optional_biases(b_ih, b_hh), nonlinearity=nonlinearity)


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: hx = (h, c) -> (h', c').  input (B, I), h (B, P), c (B, H),
    w_ih (4H, I), w_hh (4H, P), biases (4H,) or None; gates in PyTorch's order i, f, g, o."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"lstm_cell: hx must be a pair (h, c) of Tensors, got {type(hx).__name__}")
    h, c = hx
    _check_cell("lstm_cell", 4, input, h, w_ih, w_hh, b_ih, b_hh, c=c)
    hc = LSTMCell.apply(input, h, c, w_ih, w_hh, *_optional_biases(b_ih, b_hh))
    return hc[0], hc[1]


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step: h' = (1 - z) n + z hx.  input (B, I), hx (B, H), w_ih (3H, I),
    w_hh (3H, H), biases (3H,) or None; gates in PyTorch's order r, z, n."""
    _check_cell("gru_cell", 3, input, hx, w_ih, w_hh, b_ih, b_hh)
    return GRUCell.apply(input, hx, w_ih, w_hh, *_optional_biases(b_ih, b_hh))
