"""Fit y = sin(x) on [-pi, pi] with y = a + b P3(c + d x), P3 the Legendre polynomial of degree
3, written as a custom autograd Function: the last of the "Learning PyTorch with Examples"
polynomial fits.  Plain tensors with requires_grad, a hand-written SGD step under no_grad().

PyTorch code: tests/test_pytorch_scripts.py runs it under minigrad with only its imports changed.
"""
import argparse
import json
import math

import torch


class LegendrePolynomial3(torch.autograd.Function):
    """P3(x) = (5 x^3 - 3 x) / 2, with its derivative P3'(x) = 3 (5 x^2 - 1) / 2 written by hand."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


def main():
    parser = argparse.ArgumentParser(description="Legendre polynomial fit of sin(x)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--results", default=None, help="write the losses and coefficients here (JSON)")
    args = parser.parse_args()

    dtype = torch.float
    device = torch.device("cpu")

    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)

    # starting values close enough to the answer for plain gradient descent to converge
    a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
    c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)

    losses = []
    for t in range(args.steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        if t % 100 == 99:
            print(t, loss.item())

        loss.backward()

        with torch.no_grad():
            a -= args.lr * a.grad
            b -= args.lr * b.grad
            c -= args.lr * c.grad
            d -= args.lr * d.grad

            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None

    print(f"Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)")
    assert losses[-1] < losses[0], "the fit did not improve"
    if args.results:
        with open(args.results, "w") as f:
            json.dump({"losses": losses, "coefficients": [a.item(), b.item(), c.item(), d.item()]}, f)


if __name__ == "__main__":
    main()
