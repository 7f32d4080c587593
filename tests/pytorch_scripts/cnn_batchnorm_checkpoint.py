"""A small CNN with batch normalisation, trained with SGD (momentum, weight decay) and a step
schedule, checkpointed and resumed: the training loop a PyTorch tutorial ends with.

The data is synthetic (seeded NumPy): 28x28 one-channel images whose class is the quadrant
where a bright blob sits, so that a few epochs learn it.  The run trains for --epochs, saving
a checkpoint (model, optimizer, scheduler, epoch) after --resume-at epochs; a second model
and optimizer then load that checkpoint and finish the run, and must end with exactly the
weights of the uninterrupted run.

PyTorch code: tests/test_pytorch_scripts.py runs it under minigrad with only its imports changed.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class ConvNet(nn.Module):
    def __init__(self, num_classes=4):
        super(ConvNet, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.bn(self.fc1(x)))
        return self.fc2(x)


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.normal(0.0, 0.3, (n, 1, 28, 28)).astype(np.float32)
    for i, label in enumerate(labels):
        top, left = 3 + 14 * (label // 2), 3 + 14 * (label % 2)
        images[i, 0, top:top + 8, left:left + 8] += 1.0
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def train_epoch(model, loader, optimizer, criterion, device):
    model.train()
    total = 0.0
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = criterion(model(data), target)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(data)
    return total / len(loader.dataset)


def evaluate(model, loader, criterion, device):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss += criterion(output, target).item() * len(data)
            correct += (output.argmax(dim=1) == target).sum().item()
    return loss / len(loader.dataset), correct / len(loader.dataset)


def make_training(args, device):
    model = ConvNet().to(device)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    scheduler = StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler


def main():
    parser = argparse.ArgumentParser(description="CNN + BatchNorm with checkpoints")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--resume-at", type=int, default=2, help="checkpoint after this many epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--n-test", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checkpoint", default="checkpoint.pt")
    parser.add_argument("--init", default=None, help="load the starting weights")
    parser.add_argument("--save-init", default=None, help="save the starting weights")
    parser.add_argument("--save", default=None, help="save the trained weights")
    parser.add_argument("--results", default=None, help="write the losses here (JSON)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    train_loader = DataLoader(make_data(args.n_train, args.seed), batch_size=args.batch_size,
                              shuffle=False, num_workers=0, pin_memory=torch.cuda.is_available())
    test_loader = DataLoader(make_data(args.n_test, args.seed + 1), batch_size=64)
    criterion = nn.CrossEntropyLoss()

    model, optimizer, scheduler = make_training(args, device)
    if args.init:
        model.load_state_dict(torch.load(args.init))
    if args.save_init:
        torch.save(model.state_dict(), args.save_init)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    history = []
    for epoch in range(1, args.epochs + 1):
        train_loss = train_epoch(model, train_loader, optimizer, criterion, device)
        test_loss, accuracy = evaluate(model, test_loader, criterion, device)
        scheduler.step()
        history.append({"train_loss": train_loss, "test_loss": test_loss, "accuracy": accuracy,
                        "lr": scheduler.get_last_lr()[0]})
        print(f"epoch {epoch}: train loss {train_loss:.4f}, test loss {test_loss:.4f}, "
              f"accuracy {100.0 * accuracy:.1f}%")

    # the same run again, interrupted: a checkpoint after --resume-at epochs, loaded into a
    # fresh model, optimizer and scheduler, which finish the run
    model2, optimizer2, scheduler2 = make_training(args, device)
    model2.load_state_dict(start)
    for epoch in range(1, args.resume_at + 1):
        train_epoch(model2, train_loader, optimizer2, criterion, device)
        scheduler2.step()
    torch.save({
        "epoch": args.resume_at,
        "model_state_dict": model2.state_dict(),
        "optimizer_state_dict": optimizer2.state_dict(),
        "scheduler_state_dict": scheduler2.state_dict(),
    }, args.checkpoint)
    del model2, optimizer2, scheduler2

    checkpoint = torch.load(args.checkpoint, map_location=device)
    model3, optimizer3, scheduler3 = make_training(args, device)
    model3.load_state_dict(checkpoint["model_state_dict"])
    optimizer3.load_state_dict(checkpoint["optimizer_state_dict"])
    scheduler3.load_state_dict(checkpoint["scheduler_state_dict"])
    for epoch in range(checkpoint["epoch"] + 1, args.epochs + 1):
        train_epoch(model3, train_loader, optimizer3, criterion, device)
        scheduler3.step()
    resumed = model3.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(resumed[name], value), f"resumed run differs in {name}"
    print(f"resumed from epoch {checkpoint['epoch']}: the same weights as the uninterrupted run")
    os.remove(args.checkpoint)

    assert history[-1]["train_loss"] < history[0]["train_loss"], "training did not improve"
    if args.save:
        torch.save(model.state_dict(), args.save)
    if args.results:
        with open(args.results, "w") as f:
            json.dump(history, f)


if __name__ == "__main__":
    main()
