"""Fit y = sin(x) with a third-order polynomial, three ways, as in "Learning PyTorch with
Examples": an nn.Sequential with a hand-written update, the same model with optim.RMSprop, and
a custom nn.Module with nn.Parameters and optim.SGD with momentum.

PyTorch code: tests/test_pytorch_scripts.py runs it under minigrad with only its imports changed.
--save-init / --init write and read the starting weights, so that two runs start alike.
"""
import argparse
import json
import math

import torch
from torch import nn


class Polynomial3(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(()))
        self.b = nn.Parameter(torch.randn(()))
        self.c = nn.Parameter(torch.randn(()))
        self.d = nn.Parameter(torch.randn(()))

    def forward(self, x):
        return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

    def string(self):
        return f"y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3"


def fit(model, inputs, y, optimizer, loss_fn, steps, losses):
    """The usual loop: forward, loss, zero the gradients, backward, step."""
    for t in range(steps):
        loss = loss_fn(model(inputs), y)
        losses.append(loss.item())
        if t % 100 == 99:
            print(t, loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main():
    parser = argparse.ArgumentParser(description="polynomial fits of sin(x) with torch.nn and torch.optim")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default=None, help="load the starting weights of the three models")
    parser.add_argument("--save-init", default=None, help="save the starting weights of the three models")
    parser.add_argument("--save", default=None, help="save the trained weights")
    parser.add_argument("--results", default=None, help="write the losses here (JSON)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    # (x, x^2, x^3) as the features of a linear layer
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)

    models = {
        "manual": nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1)),
        "rmsprop": nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1)),
        "module": Polynomial3(),
    }
    if args.init:
        for name, state in torch.load(args.init).items():
            models[name].load_state_dict(state)
    if args.save_init:
        torch.save({name: m.state_dict() for name, m in models.items()}, args.save_init)

    loss_fn = torch.nn.MSELoss(reduction="sum")
    losses = {name: [] for name in models}

    # 1. nn.Sequential, parameters updated by hand
    model, learning_rate = models["manual"], 1e-6
    for t in range(args.steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        losses["manual"].append(loss.item())
        if t % 100 == 99:
            print("manual", t, loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    linear_layer = model[0]
    print(f"Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + "
          f"{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3")

    # 2. the same model, updated by optim.RMSprop; 3. a custom Module, SGD with momentum
    fit(models["rmsprop"], xx, y, torch.optim.RMSprop(models["rmsprop"].parameters(), lr=1e-3),
        loss_fn, args.steps, losses["rmsprop"])
    model = models["module"]
    fit(model, x, y, torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9),
        torch.nn.MSELoss(reduction="sum"), args.steps, losses["module"])
    print(f"Result: {model.string()}")

    for name, curve in losses.items():
        assert curve[-1] < curve[0], f"{name}: the fit did not improve"
    if args.save:
        torch.save({name: m.state_dict() for name, m in models.items()}, args.save)
    if args.results:
        with open(args.results, "w") as f:
            json.dump(losses, f)


if __name__ == "__main__":
    main()
