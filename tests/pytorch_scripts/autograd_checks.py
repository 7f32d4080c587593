"""A beginner's autograd checks, in the style of micrograd's tests: small scalar expressions
built from +, -, *, **, /, relu and in-place updates; each gradient that backward()
gives is checked against a central difference of the same expression, and the values are
written out (--results) so that two runs can be compared.

PyTorch code: tests/test_pytorch_scripts.py runs it under minigrad with only its imports changed.
"""
import argparse
import json

import torch
from torch.autograd import gradcheck


def chain(x):
    u = 3 * x - 1
    v = u.relu() * x + (u * u).relu()
    w = v + v * x + 0.5
    return w


def mixed(a, b):
    s = a + b
    p = a * b - b**2
    s += s + 2          # in place on a non-leaf: recorded, as PyTorch does
    s += (-b) + 1 + s
    t = p + (a - b).relu() * 2
    r = s * t
    q = r**2 / 4.0
    q += 3.0 / (r + 10.0)
    return q


def central_difference(fn, values, i, eps=1e-6):
    """d fn / d values[i], numerically, on float64 scalars, without recording anything."""
    with torch.no_grad():
        def at(shift):
            args = [torch.tensor(v + (shift if k == i else 0.0), dtype=torch.float64)
                    for k, v in enumerate(values)]
            return fn(*args).item()
        return (at(eps) - at(-eps)) / (2 * eps)


def check(name, fn, values, results):
    leaves = []
    for v in values:
        t = torch.Tensor([v]).double()
        t.requires_grad = True
        leaves.append(t)
    y = fn(*leaves)
    y.backward()
    grads = [t.grad.item() for t in leaves]
    for i, g in enumerate(grads):
        numeric = central_difference(fn, values, i)
        assert abs(g - numeric) <= 1e-4 * max(1.0, abs(numeric)), (name, i, g, numeric)
    print(f"{name}: value {y.data.item():.6f}, grads " + ", ".join(f"{g:.6f}" for g in grads))
    results[name] = {"value": y.data.item(), "grads": grads}


def main():
    parser = argparse.ArgumentParser(description="autograd checks")
    parser.add_argument("--results", default=None, help="write the values and gradients here (JSON)")
    args = parser.parse_args()
    results = {}

    check("chain", chain, [-3.0], results)
    check("chain_at_2", chain, [2.0], results)
    check("mixed", mixed, [-3.0, 1.5], results)

    # a vector output: backward needs the gradient of what it feeds
    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    y = x * x * x
    y.backward(gradient=torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float64))
    results["vector_backward"] = x.grad.tolist()
    assert torch.allclose(x.grad, 3 * x.detach() ** 2 * torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float64))

    # gradients accumulate until zeroed; retain_graph allows a second backward
    w = torch.tensor(2.0, requires_grad=True)
    loss = w * w * 3
    loss.backward(retain_graph=True)
    loss.backward()
    results["accumulated"] = w.grad.item()
    assert w.grad.item() == 24.0
    w.grad.zero_()
    (w * 5).backward()
    assert w.grad.item() == 5.0

    # torch.autograd.grad, and a second derivative with create_graph
    x = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    (dy,) = torch.autograd.grad(x**4, x, create_graph=True)
    (d2y,) = torch.autograd.grad(dy, x)
    results["second_derivative"] = [dy.item(), d2y.item()]
    assert abs(d2y.item() - 12 * 1.5**2) < 1e-12

    # nothing is recorded under no_grad; detach cuts the graph
    with torch.no_grad():
        assert not (x * 2).requires_grad
    assert not x.detach().requires_grad and x.detach().is_leaf

    # torch.autograd.gradcheck, in its tuple form
    inputs = (torch.randn(4, dtype=torch.double, requires_grad=True),
              torch.randn(4, dtype=torch.double, requires_grad=True))
    assert gradcheck(lambda a, b: (a * b.sigmoid()).tanh(), inputs, eps=1e-6, atol=1e-4)

    print(f"checked {len(results)} groups; chain(-3) = {torch.tensor(results['chain']['value']):.4f}")
    if args.results:
        with open(args.results, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
