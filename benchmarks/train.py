"""End-to-end training time: the example models (and the data loader) on each device, against
PyTorch when it is installed.  Same process, same data, same batch sizes, contenders
interleaved (common.py).

    python -m benchmarks.train                                  # every workload below
    python -m benchmarks.train --model mlp --batch 32 128 --repeat 5
    python -m benchmarks.train --model cnn --images 5120 --repeat 3
    python -m benchmarks.train --model cnn --per-layer          # where a step's time goes, vs PyTorch
    python -m benchmarks.train --model gpt --repeat 7           # the small GPT, ms per step
    python -m benchmarks.train --model rnn --repeat 7           # the BiLSTM of examples/mnist_rnn.py, ms per step
    python -m benchmarks.train --model sample --repeat 7        # 500 characters from the GPT
    python -m benchmarks.train --device cpu cuda --json train.json --markdown train.md

Workloads (``WORKLOADS``):

* ``mlp``: the MNIST MLP (784 -> 128 -> ReLU -> 10, Adam, cross-entropy), one shuffled epoch:
  minigrad with its DataLoader, the same computation written by hand in NumPy (the floor for a
  NumPy framework), PyTorch indexing pre-loaded tensors.
* ``cnn``: the MNIST CNN of examples/models.py (two conv/ReLU/max-pool stages, Linear(1600,
  128), dropout, Linear(128, 10), Adam) over ``--images`` images in fixed batches.
* ``gpt``: training steps of the character GPT of examples/char_gpt.py (4 layers, 4 heads,
  width 128, context 64, batch 12, AdamW, clipping) on ``--images`` blocks of tiny Shakespeare,
  against the same model written in plain PyTorch (nanoGPT's block); time per step.
* ``rnn``: training steps of the sequential-MNIST classifier of examples/mnist_rnn.py (a
  bidirectional LSTM, 128 units each way, over 28 rows of 28 pixels; Linear(256, 10); Adam)
  on ``--images`` images in fixed batches of 128, against the same model in PyTorch, whose CPU
  LSTM is oneDNN's fused RNN (all steps of a direction in one primitive); time per step.
* ``loader``: one shuffled epoch of the DataLoader over 60,000 uint8 MNIST images at batch 32
  with ToFloat (what a training loop waits for between steps), against NumPy indexing by hand.
* ``sample``: 500 characters sampled from the char GPT with its key/value cache (``generate``
  of examples/char_gpt.py, an untrained model): about 80 small ops per character, so this
  times the framework's per-op cost (no PyTorch contender: nanoGPT's sampling has no cache).

Adding a model (a GPT, a ResNet): write a function ``contenders(x, y, batch, device)`` that
returns {name: run} where ``run()`` does one timed pass (and synchronises the GPU before it
returns), a ``data(limit)`` function, and add a ``Workload`` to ``WORKLOADS`` below; give it
``models`` (minigrad and PyTorch builders of an ``nn.Sequential``) to get ``--per-layer`` too.
Everything else (interleaving, tables, JSON, Markdown, devices) comes with it.

On a GPU every run ends with a synchronisation, so the time is the GPU's, not the launches'.
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .common import (CLOCKS, SETTLE, cpu_clock, cuda_usable, fmt_time, machine_info, machine_line, measure, mnist_arrays,
                     mnist_uint8, parse_threads, prepare_process, progress, ratio_spread, synchronize, table,
                     thread_settings, train_steps, write)

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _example(module):
    """A module of examples/ (models, char_gpt): the benchmarks time the examples' own models."""
    import importlib

    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(module)


def _examples_models():
    return _example("models")


def _synced(run, device):
    """``run`` followed by a wait for the device (a GPU run is timed to its end)."""
    if device == "cpu":
        return run

    def synced():
        run()
        synchronize(device)
    return synced


# ----------------------------------------------------------------------------------------
# The models, in both libraries
def torch_mlp():
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def torch_cnn():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def _minigrad_model(build, device):
    import minigrad as mg

    mg.manual_seed(0)
    model = build()
    return model.to(device) if device != "cpu" else model


def _torch_model(build, device):
    import torch

    torch.manual_seed(0)
    return build().to(device)


def torch_installed():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_on(device):
    if not torch_installed():
        return False
    import torch

    return device == "cpu" or torch.cuda.is_available()


# ----------------------------------------------------------------------------------------
# mlp: one shuffled epoch
def mlp_contenders(x, y, batch, device):
    import minigrad as mg
    from minigrad import nn, optim
    from minigrad.data import DataLoader, TensorDataset

    model = _minigrad_model(_examples_models().mlp, device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(mg.tensor(x.reshape(-1, 28, 28)), mg.tensor(y)),
                        batch_size=batch, shuffle=True, generator=0, device=device)
    runs = {"minigrad": _synced(lambda: train_steps(model, opt, loader, nn.functional.cross_entropy), device)}
    if device == "cpu":
        runs["numpy by hand"] = numpy_mlp_epoch(x, y, batch)
    if _torch_on(device):
        runs["pytorch"] = _synced(torch_mlp_epoch(x, y, batch, device), device)
    return runs


def numpy_mlp_epoch(x, y, batch):
    """The same computation written out by hand: forward, backward, Adam, all in place."""
    rng = np.random.default_rng(0)
    bound1, bound2 = 1 / np.sqrt(784), 1 / np.sqrt(128)
    params = [rng.uniform(-bound1, bound1, (128, 784)).astype(np.float32),
              rng.uniform(-bound1, bound1, 128).astype(np.float32),
              rng.uniform(-bound2, bound2, (10, 128)).astype(np.float32),
              rng.uniform(-bound2, bound2, 10).astype(np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    step = [0]

    def epoch():
        W1, c1, W2, c2 = params
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            n = len(idx)
            h = xb @ W1.T
            h += c1
            a = np.maximum(h, 0)
            z = a @ W2.T
            z += c2
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(n), yb] -= 1          # dL/dz = (softmax - onehot) / n
            p /= n
            da = p @ W2
            da *= h > 0
            grads = [da.T @ xb, da.sum(axis=0), p.T @ a, p.sum(axis=0)]
            step[0] += 1
            t = step[0]
            scale = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            for w, g, mw, vw in zip(params, grads, m, v):
                mw *= b1
                mw += (1 - b1) * g
                vw *= b2
                vw += (1 - b2) * g * g
                w -= scale * mw / (np.sqrt(vw) + eps)

    return epoch


def torch_mlp_epoch(x, y, batch, device):
    """PyTorch indexes pre-loaded tensors (on the CPU; on a GPU each batch is copied over, as
    minigrad's DataLoader(device=...) does)."""
    import torch

    model = _torch_model(torch_mlp, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x.reshape(-1, 28, 28)), torch.from_numpy(y)

    def batches():
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            yield xt[idx].to(device), yt[idx].to(device)

    return lambda: train_steps(model, opt, batches(), torch.nn.functional.cross_entropy)


# ----------------------------------------------------------------------------------------
# cnn: fixed batches
def _fixed_batches(tensor, x, y, batch):
    return [(tensor(x[i:i + batch]), tensor(y[i:i + batch])) for i in range(0, len(x), batch)]


def cnn_contenders(x, y, batch, device):
    return _fixed_batch_contenders(_examples_models().cnn, torch_cnn, x, y, batch, device)


def _fixed_batch_contenders(build, torch_build, x, y, batch, device):
    """minigrad's model ``build`` and PyTorch's ``torch_build``, Adam, over the same fixed batches."""
    import minigrad as mg
    from minigrad import nn, optim

    model = _minigrad_model(build, device).train()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    batches = _fixed_batches(lambda a: mg.tensor(a, device=device), x, y, batch)
    runs = {"minigrad": _synced(lambda: train_steps(model, opt, batches, nn.functional.cross_entropy), device)}
    if _torch_on(device):
        import torch

        tmodel = _torch_model(torch_build, device).train()
        topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
        tbatches = _fixed_batches(lambda a: torch.from_numpy(a).to(device), x, y, batch)
        runs["pytorch"] = _synced(lambda: train_steps(tmodel, topt, tbatches, torch.nn.functional.cross_entropy),
                                  device)
    return runs


# ----------------------------------------------------------------------------------------
# rnn: training steps of the sequential-MNIST BiLSTM of examples/mnist_rnn.py
def torch_lstm():
    """examples/models.py's SequenceClassifier("lstm") in PyTorch (on the CPU its nn.LSTM runs
    oneDNN's fused RNN primitive: all 28 steps of a direction in one call)."""
    import torch
    from torch import nn

    class SequenceClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(28, 128, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(256, 10)

        def forward(self, x):
            _, (h_n, _) = self.rnn(x)
            return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=1))

    return SequenceClassifier()


def rnn_contenders(x, y, batch, device):
    return _fixed_batch_contenders(_examples_models().lstm, torch_lstm, x, y, batch, device)


# ----------------------------------------------------------------------------------------
# gpt: training steps of the character GPT (examples/char_gpt.py), the same model in PyTorch
GPT_CONFIG = dict(vocab_size=65, block_size=64, layers=4, heads=4, width=128)


def gpt_blocks(limit):
    """(inputs, targets, source): ``limit`` random blocks of 64 characters with their next
    characters, from tiny Shakespeare when it can be found (else random ids: the step time
    does not depend on the values)."""
    rng = np.random.default_rng(0)
    n = limit or 240
    try:
        from minigrad.data import TinyShakespeare

        data = TinyShakespeare(split="train", block_size=GPT_CONFIG["block_size"], download=False)
        x, y = data.get_batch(rng.integers(0, len(data), n))
        return np.asarray(x), np.asarray(y), "tiny Shakespeare"
    except Exception as exc:
        ids = rng.integers(0, GPT_CONFIG["vocab_size"], (n, GPT_CONFIG["block_size"] + 1))
        return ids[:, :-1].copy(), ids[:, 1:].copy(), f"random ids ({type(exc).__name__})"


def gpt_contenders(x, y, batch, device):
    """One pass over the blocks in steps of ``batch``: forward, loss, backward, gradient
    clipping at 1.0 and AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on the matrices):
    the recipe of examples/char_gpt.py without its schedule."""
    import minigrad as mg
    from minigrad import nn, optim

    char_gpt = _example("char_gpt")
    model = _minigrad_model(lambda: char_gpt.GPT(**GPT_CONFIG), device)
    opt = optim.AdamW(char_gpt.param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    batches = _fixed_batches(lambda a: mg.tensor(a, device=device), x, y, batch)

    def minigrad_steps():
        for xb, yb in batches:
            loss = model.loss(xb, yb)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    runs = {"minigrad": _synced(minigrad_steps, device)}
    if _torch_on(device):
        runs["pytorch"] = _synced(torch_gpt_steps(x, y, batch, device), device)
    return runs


def torch_gpt_steps(x, y, batch, device):
    """The same GPT in plain PyTorch (nanoGPT's block: fused q/k/v projection,
    F.scaled_dot_product_attention), the same initialisation and AdamW groups."""
    import math

    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

        def forward(self, h):
            n, t, c = h.shape
            q, k, v = self.qkv(self.ln1(h)).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = h + self.proj(a.transpose(1, 2).reshape(n, t, c))
            return h + self.mlp(self.ln2(h))

    class GPT(nn.Module):
        def __init__(self, vocab_size, block_size, layers, heads, width):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab_size, width), nn.Embedding(block_size, width)
            self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
            self.ln_f, self.head = nn.LayerNorm(width), nn.Linear(width, vocab_size, bias=False)
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    residual = name.endswith(("proj.weight", "mlp.2.weight"))
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers) if residual else 0.02)
                elif name.endswith("bias") and "ln" not in name:
                    nn.init.zeros_(p)

        def forward(self, idx):
            h = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
            return self.head(self.ln_f(self.blocks(h)))

    model = _torch_model(lambda: GPT(**GPT_CONFIG), device)
    embeddings = {id(model.tok.weight), id(model.pos.weight)}
    decay = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in embeddings]
    rest = [p for p in model.parameters() if p.dim() < 2 or id(p) in embeddings]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    batches = _fixed_batches(lambda a: torch.from_numpy(a).to(device), x, y, batch)

    def steps():
        for xb, yb in batches:
            logits = model(xb)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return steps


# ----------------------------------------------------------------------------------------
# loader: one epoch of batches, nothing else
def loader_contenders(x, y, batch, device):
    from minigrad.data import DataLoader, TensorDataset, ToFloat

    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, generator=0,
                        transform=ToFloat(), device=device)

    def minigrad_epoch():
        for _ in loader:
            pass

    runs = {"minigrad DataLoader": _synced(minigrad_epoch, device)}
    if device == "cpu":
        rng = np.random.default_rng(0)
        scale = np.float32(1 / 255)

        def numpy_batches():
            order = rng.permutation(len(x))
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                yield x[idx][:, None].astype(np.float32) * scale, y[idx]

        def numpy_epoch():
            for _ in numpy_batches():
                pass

        runs["numpy by hand"] = numpy_epoch
    return runs


# ----------------------------------------------------------------------------------------
# sample: 500 characters from the char GPT with its key/value cache (examples/char_gpt.py's
# generate): about 80 small ops per character, so the per-op cost of the framework is the time
SAMPLE_CHARS = 500


def sample_chars(limit):
    """(characters to sample, unused, source): the run samples len(x) characters."""
    n = limit or SAMPLE_CHARS
    return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), "an untrained model (the time does not depend on it)"


def sample_contenders(x, y, batch, device):
    import minigrad as mg

    char_gpt = _example("char_gpt")
    mg.manual_seed(0)
    model = _minigrad_model(lambda: char_gpt.GPT(**GPT_CONFIG), device)
    prompt = mg.tensor([[1]], device=device)
    return {"minigrad": lambda: model.generate(prompt, len(x), generator=0)}


# ----------------------------------------------------------------------------------------
# The workloads
@dataclass
class Workload:
    contenders: Callable        # (x, y, batch, device) -> {name: run}
    data: Callable              # limit -> (x, y, where the data came from)
    batches: list               # default batch sizes
    images: int = None          # default samples (images, text blocks) per timed run (None: all)
    baseline: str = "pytorch"   # the ratio column compares with this contender
    unit: str = "epoch"         # what the time column counts: "epoch", "10k images", "step", "500 characters"
    models: tuple = field(default=None)  # (minigrad builder, torch builder) of an nn.Sequential


WORKLOADS = {
    "mlp": Workload(mlp_contenders, lambda limit: mnist_arrays(limit), [32, 128],
                    models=(lambda: _examples_models().mlp(), torch_mlp)),
    "cnn": Workload(cnn_contenders, lambda limit: mnist_arrays(limit, image_shape=(1, 28, 28)), [128],
                    images=10000, unit="10k images", models=(lambda: _examples_models().cnn(), torch_cnn)),
    "gpt": Workload(gpt_contenders, gpt_blocks, [12], images=240, unit="step"),
    "rnn": Workload(rnn_contenders, lambda limit: mnist_arrays(limit, image_shape=(28, 28)), [128], images=1280,
                    unit="step"),
    "loader": Workload(loader_contenders, mnist_uint8, [32], baseline="numpy by hand"),
    "sample": Workload(sample_contenders, sample_chars, [1], baseline="minigrad", unit="500 characters"),
}


def run_workload(name, workload, batch, images, device, repeat, threads=(None,), clock=cpu_clock, settle=None):
    """Time the contenders of one workload at one batch size, under each thread setting of
    ``threads`` (None: as the process started); one result dict each.  ``settle``: seconds of
    sleep before each run (common.interleaved)."""
    x, y, source = workload.data(images if images is not None else workload.images)
    steps = -(-len(x) // batch)
    calls = {}
    for spec in threads:
        for contender, run in workload.contenders(x, y, batch, device).items():
            label = contender if len(threads) == 1 else f"{contender} [threads {spec}]"
            calls[label] = (_under(run, spec), clock)
    results = []
    for label, stats in measure(calls, repeat, settle=settle).items():  # warm-up first: compilation, caches
        per_unit = stats["median"] * {"epoch": 1, "10k images": 10000 / len(x), "step": 1 / steps,
                                      "500 characters": SAMPLE_CHARS / len(x)}[workload.unit]
        results.append(dict(workload=name, device=device, batch=batch, images=len(x), steps=steps, data=source,
                            impl=label, unit=workload.unit, per_unit=per_unit,
                            step_ms=1e3 * stats["median"] / steps, samples_per_s=len(x) / stats["median"], **stats))
    for spec in threads:
        baseline = workload.baseline if len(threads) == 1 else f"{workload.baseline} [threads {spec}]"
        base = next((r for r in results if r["impl"] == baseline), None)
        for r in results:
            if base is not None and (len(threads) == 1 or r["impl"].endswith(f"[threads {spec}]")):
                r["vs_baseline"], r["vs_spread"] = ratio_spread(r, base)
                r["baseline"] = baseline
    return results


def _under(run, spec):
    """``run`` with the thread setting ``spec`` (common.parse_threads) around it."""
    if spec is None:
        return run
    settings = parse_threads(spec)

    def run_with_threads():
        with thread_settings(**settings):
            run()
    return run_with_threads


def rows_of(results):
    return [[r["workload"], r["device"], r["batch"], r["impl"], f"{r['per_unit']:.3f} s / {r['unit']}",
             f"{r['step_ms']:.2f}", f"{r['samples_per_s']:,.0f}", f"{100 * r['spread']:.0f}%",
             f"{r['vs_baseline']:.2f}x {r['baseline']} (±{100 * r['vs_spread']:.0f}%)" if "vs_baseline" in r else "-"]
            for r in results]


HEADERS = ["workload", "device", "batch", "implementation", "time", "ms / step", "samples / s", "spread", "ratio"]


# ----------------------------------------------------------------------------------------
# --per-layer: a training step taken apart, layer by layer, in both libraries
def per_layer(name, workload, batch, device, repeat, min_sample, spec=None, clock=cpu_clock, settle=None):
    """Forward and backward time of each layer of the model (inputs and upstream gradients as
    they arrive in a real step, layouts included), the loss and the optimizer step, in
    minigrad and PyTorch, interleaved.  Returns result dicts (seconds)."""
    x, y, _ = workload.data(batch)
    libs = {"minigrad": _layer_parts("minigrad", workload.models[0], x, y, device)}
    if _torch_on(device):
        libs["pytorch"] = _layer_parts("pytorch", workload.models[1], x, y, device)
    calls, labels = {}, {}
    for lib, parts in libs.items():
        for part, (fwd, fwd_bwd) in parts.items():
            for pass_, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
                if fn is not None:
                    calls[(lib, part, pass_)] = (_under(_synced(fn, device), spec), clock)
                    labels.setdefault(part, len(labels))
    times = measure(calls, repeat, min_sample, settle=settle)
    results = []
    for part in sorted(labels, key=labels.get):
        row = {"workload": name, "device": device, "batch": batch, "part": part}
        for lib in libs:
            if (lib, part, "fwd") not in times and (lib, part, "fwd+bwd") not in times:
                continue
            fwd = times.get((lib, part, "fwd"))
            both = times.get((lib, part, "fwd+bwd"))
            row[f"{lib}_fwd"] = fwd["median"] if fwd else None
            row[f"{lib}_bwd"] = (both["median"] - (fwd["median"] if fwd else 0)) if both else None
            row[f"{lib}_total"] = both["median"] if both else fwd["median"]
            row[f"{lib}_spread"] = max(s["spread"] for s in (fwd, both) if s)
        results.append(row)
    return results


def _library(lib):
    """What the per-layer timing needs from a library: (model builder, array -> tensor on a
    device, cross-entropy, Adam, autograd.grad).  minigrad and PyTorch share the rest."""
    if lib == "minigrad":
        import minigrad as mg

        return (_minigrad_model, lambda a, device: mg.tensor(a, device=device),
                mg.nn.functional.cross_entropy, mg.optim.Adam, mg.grad)
    import torch

    return (_torch_model, lambda a, device: torch.from_numpy(a).to(device),
            torch.nn.functional.cross_entropy, torch.optim.Adam, torch.autograd.grad)


def _layer_parts(lib, build, x, y, device):
    """{part: (forward, forward + backward)} closures for each layer of the nn.Sequential that
    ``build`` makes, for the loss and for the optimizer step, in library ``lib``.

    A layer gets the input and the upstream gradient it gets in a real step, memory layout
    included (one forward and backward of the whole model records them), and its backward
    computes what a real step needs: the gradients of its parameters and of its input (not
    for the first layer: the images need none).  Gradients are returned (autograd.grad), not
    accumulated into .grad, as they flow on inside a real step."""
    make_model, tensor, cross_entropy, adam, grad = _library(lib)
    model = make_model(build, device).train()
    h, target = tensor(x, device), tensor(y, device)
    inputs, outputs = [], []
    for layer in model:
        inputs.append(h.detach())
        h = layer(h)
        outputs.append(h)
    needing = [o for o in outputs if o.requires_grad]
    upstream = dict(zip(map(id, needing), grad(cross_entropy(h, target), needing)))
    parts = {}
    for i, layer in enumerate(model):
        inp = inputs[i].requires_grad_(i > 0)
        wrt = ([inp] if i > 0 else []) + list(layer.parameters())
        g = upstream.get(id(outputs[i]))

        def fwd(layer=layer, inp=inp):
            layer(inp)

        def fwd_bwd(layer=layer, inp=inp, g=g, wrt=wrt):
            grad(layer(inp), wrt, g)
        parts[f"{i}: {type(layer).__name__}"] = (fwd, fwd_bwd if wrt and g is not None else None)
    logits = outputs[-1].detach().requires_grad_(True)
    parts["loss: cross_entropy"] = (lambda: cross_entropy(logits, target),
                                    lambda: grad(cross_entropy(logits, target), [logits]))
    stepped = make_model(build, device).train()
    opt = adam(stepped.parameters(), lr=1e-3)
    cross_entropy(stepped(tensor(x, device)), target).backward()
    parts["optimizer: Adam step"] = (opt.step, None)
    return parts


def per_layer_rows(results):
    libs = [lib for lib in ("minigrad", "pytorch") if f"{lib}_total" in results[0]]
    rows, totals = [], {lib: 0.0 for lib in libs}
    for r in results:
        row = [r["part"]]
        for lib in libs:
            bwd = r.get(f"{lib}_bwd")
            bwd = "noise" if bwd is not None and bwd < 0 else fmt_time(bwd)  # fwd+bwd measured below fwd
            row += [fmt_time(r.get(f"{lib}_fwd")), bwd, fmt_time(r.get(f"{lib}_total")),
                    f"{100 * r[f'{lib}_spread']:.0f}%" if f"{lib}_spread" in r else "-"]
            totals[lib] += r.get(f"{lib}_total") or 0.0
        if len(libs) == 2 and r.get("minigrad_total") and r.get("pytorch_total"):
            row.append(f"{r['minigrad_total'] / r['pytorch_total']:.2f}x")
        rows.append(row)
    total = ["sum"]
    for lib in libs:
        total += ["", "", fmt_time(totals[lib]), ""]
    if len(libs) == 2:
        total.append(f"{totals['minigrad'] / totals['pytorch']:.2f}x")
    rows.append(total)
    headers = ["part"] + [f"{lib} {what}" for lib in libs for what in ("fwd", "bwd", "fwd+bwd", "spread")]
    return rows, headers + (["minigrad / pytorch"] if len(libs) == 2 else [])


# ----------------------------------------------------------------------------------------
# The command line
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[3:11]))
    p.add_argument("--model", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    p.add_argument("--batch", nargs="+", type=int, help="batch sizes (default: each workload's own)")
    p.add_argument("--images", type=int, help="samples (images, text blocks) per timed run (default: each workload's own)")
    p.add_argument("--device", nargs="+", choices=["cpu", "cuda"], default=["cpu", "cuda"])
    p.add_argument("--repeat", type=int, default=3, help="timed runs per contender (median)")
    p.add_argument("--threads", nargs="+", metavar="SPEC",
                   help="thread settings to compare, each N (every pool) or blas=N,numba=N,torch=N; "
                        "each contender runs under each (default: as the process started)")
    p.add_argument("--clock", choices=list(CLOCKS), default="wall",
                   help="wall time, or this process's CPU time (see common.process_clock)")
    p.add_argument("--per-layer", action="store_true", help="time each layer, the loss and the optimizer step")
    p.add_argument("--min-sample", type=float, default=0.05, help="--per-layer: seconds per sample at least")
    p.add_argument("--settle", type=float, default=SETTLE, metavar="SECONDS",
                   help=f"sleep before each timed run, so no contender starts while the last one's idle threads "
                        f"spin (default {SETTLE})")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON ('-': stdout)")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown ('-': stdout)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    prepare_process()
    out = sys.stderr if "-" in (args.json, args.markdown) else sys.stdout
    gpu = "cuda" in args.device and cuda_usable()
    devices = [d for d in args.device if d == "cpu" or gpu]
    info = machine_info()
    header = [machine_line(info)]
    if "cuda" in args.device and not gpu:
        header.append("No CUDA GPU here (minigrad.cuda_available() is False): CPU rows only.")
    if not torch_installed():
        header.append("PyTorch is not installed (pip install torch==2.13.0 to compare).")
    header.append(f"median of {args.repeat} runs after a warm-up, contenders interleaved, {args.clock} clock; "
                  "spread = interquartile range / median" + (f"; threads {args.threads}" if args.threads else ""))
    print("\n".join(header), file=out)
    plans = [(name, batch, device) for name in args.model
             for batch in (args.batch or WORKLOADS[name].batches) for device in devices
             if not args.per_layer or WORKLOADS[name].models is not None]
    results = []
    with progress(len(plans), "benchmarks.train") as bar:
        for name, batch, device in plans:
            bar.set_postfix_str(f"{name} batch {batch} {device}")
            if args.per_layer:
                results += per_layer(name, WORKLOADS[name], batch, device, args.repeat, args.min_sample,
                                     (args.threads or [None])[0], CLOCKS[args.clock], args.settle)
            else:
                results += run_workload(name, WORKLOADS[name], batch, args.images, device, args.repeat,
                                        args.threads or [None], CLOCKS[args.clock], args.settle)
            bar.update(1)
    if args.per_layer:
        blocks = []
        for name, batch, device in plans:
            mine = [r for r in results if (r["workload"], r["batch"], r["device"]) == (name, batch, device)]
            rows, headers = per_layer_rows(mine)
            blocks.append(f"{name}, batch {batch}, {device}:\n" + table(rows, headers))
        text = "\n\n".join(blocks)
    else:
        text = table(rows_of(results), HEADERS)
    print(text, file=out)
    report = {"machine": info, "command": "python -m benchmarks.train " + " ".join(sys.argv[1:]),
              "config": vars(args), "results": results}
    if args.json:
        write(args.json, json.dumps(report, indent=1, default=str) + "\n")
    if args.markdown:
        write(args.markdown, "\n\n".join(header) + "\n\n" + text + "\n")
    return report


if __name__ == "__main__":
    main()
