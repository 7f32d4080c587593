"""Backpropagation by hand, then by minigrad: the same numbers, step by step.

The network: 2 inputs -> 3 hidden units (ReLU) -> 1 output, squared-error loss.

    z = x @ W1 + b1        (1, 3)   pre-activations
    h = relu(z)            (1, 3)   hidden units
    y = h @ W2 + b2        (1, 1)   prediction
    L = (y - t)^2                   loss, for input x = [1, 2] and target t = 1

The weights are picked by hand so that the numbers stay short, and so that hidden unit 2 is
*dead* (z2 < 0): ReLU passes no gradient through it, so its incoming weights and bias get a
zero gradient.  Units 1 and 3 are alive and show the ordinary chain rule.  Seeing a 0 next to
non-zeros is the clearest way to see what ReLU's gate does.

Everything is float64 so the hand-computed and autograd values agree to the last digits.
Run:  python examples/backprop_by_hand.py
"""
import numpy as np

import minigrad as mg
import minigrad.viz

np.set_printoptions(precision=4, suppress=True, floatmode="maxprec")

# -- the data and the hand-picked weights ---------------------------------------------------
x_np = np.array([[1.0, 2.0]])                    # one sample, two features
t_np = np.array([[1.0]])                         # its target
W1_np = np.array([[0.5, -0.3, 0.4],              # column j: the weights into hidden unit j
                  [-0.2, 0.1, 0.3]])
b1_np = np.array([0.1, -0.2, 0.0])
W2_np = np.array([[0.6], [-0.4], [0.3]])
b2_np = np.array([0.05])
LR = 0.1


def show(name, value, note=""):
    head = f"  {name:<14} = "
    body = np.array2string(np.asarray(value), separator=", ", prefix=head)
    print(head + body + (f"   {note}" if note else ""))


def by_hand():
    """Forward and backward with plain NumPy, each local gradient and chain-rule product named."""
    print("1. Forward pass (NumPy, by hand)")
    z = x_np @ W1_np + b1_np
    show("z = xW1 + b1", z, "unit 2 is negative: it will be switched off")
    h = np.maximum(z, 0)
    show("h = relu(z)", h)
    y = h @ W2_np + b2_np
    show("y = hW2 + b2", y)
    loss = float(((y - t_np) ** 2).sum())
    show("L = (y - t)^2", loss)

    print("\n2. Backward pass (chain rule, by hand)")
    dL_dy = 2 * (y - t_np)                         # local gradient of (y - t)^2
    show("dL/dy", dL_dy, "= 2 (y - t)")
    dL_dW2 = h.T @ dL_dy                           # y = h W2 + b2  ->  dy/dW2 = h
    show("dL/dW2", dL_dW2.ravel(), "= h^T dL/dy")
    dL_db2 = dL_dy.sum(axis=0)                     # dy/db2 = 1
    show("dL/db2", dL_db2, "= dL/dy")
    dL_dh = dL_dy @ W2_np.T                        # dy/dh = W2
    show("dL/dh", dL_dh, "= dL/dy W2^T")
    gate = (z > 0).astype(float)                   # relu'(z): 1 where the unit is on, 0 where off
    show("relu'(z)", gate, "the ReLU gate")
    dL_dz = dL_dh * gate
    show("dL/dz", dL_dz, "= dL/dh * relu'(z)   (unit 2 blocked)")
    dL_dW1 = x_np.T @ dL_dz                        # z = x W1 + b1  ->  dz/dW1 = x
    show("dL/dW1", dL_dW1, "= x^T dL/dz")
    dL_db1 = dL_dz.sum(axis=0)
    show("dL/db1", dL_db1, "= dL/dz")
    return loss, {"W1": dL_dW1, "b1": dL_db1, "W2": dL_dW2, "b2": dL_db2}


def by_autograd():
    """The same network with minigrad tensors; backward() fills .grad."""
    params = {
        "W1": mg.tensor(W1_np, requires_grad=True), "b1": mg.tensor(b1_np, requires_grad=True),
        "W2": mg.tensor(W2_np, requires_grad=True), "b2": mg.tensor(b2_np, requires_grad=True),
    }
    x, t = mg.tensor(x_np), mg.tensor(t_np)
    h = (x @ params["W1"] + params["b1"]).relu()
    y = h @ params["W2"] + params["b2"]
    loss = ((y - t) ** 2).sum()
    names = {"x": x, "t": t, **params, "L": loss}
    print("\n3. The tape minigrad recorded for L (replayed backwards by loss.backward())")
    mg.viz.print_tape(loss, names=names)
    print("\n   minigrad's own backward pass, narrated (explain runs loss.backward()):\n")
    mg.viz.explain(loss, names=names)
    return loss.item(), params


def main():
    loss_hand, grads_hand = by_hand()
    loss_auto, params = by_autograd()

    print("\n4. minigrad's gradients (autograd) next to the hand-computed ones")
    assert np.isclose(loss_auto, loss_hand, rtol=1e-12, atol=0), (loss_auto, loss_hand)
    show("L", loss_auto)
    for name, p in params.items():
        auto = p.grad.numpy()
        ok = np.allclose(auto, grads_hand[name], rtol=1e-12, atol=1e-15)
        show(f"dL/d{name}", auto.ravel() if name == "W2" else auto, "matches" if ok else "MISMATCH")
        assert ok, f"dL/d{name}: autograd {auto} vs by hand {grads_hand[name]}"
    print("  all gradients agree")

    print(f"\n5. One SGD step, lr = {LR}:  p <- p - lr * dL/dp")
    with mg.no_grad():
        for name, p in params.items():
            p -= LR * p.grad
            show(f"new {name}", p.numpy().ravel() if name == "W2" else p.numpy())
    h = np.maximum(x_np @ params["W1"].numpy() + params["b1"].numpy(), 0)
    y = h @ params["W2"].numpy() + params["b2"].numpy()
    new_loss = float(((y - t_np) ** 2).sum())
    print(f"  {'new L':<14} = {new_loss:.6f}   (was {loss_hand:.4f}: one step, and y moved from 0.47 to {y.item():.4f})")
    assert new_loss < loss_hand


if __name__ == "__main__":
    main()
