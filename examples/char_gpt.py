"""A small GPT that learns to write like Shakespeare, one character at a time (docs/gpt.md).

    python examples/char_gpt.py                          # the reference recipe: 2000 iterations
    python examples/char_gpt.py --save gpt.npz --plot gpt.png
    python examples/char_gpt.py --load gpt.npz --sample 500 --temperature 0.8 --top-k 40

The reference recipe (the shape of nanoGPT's documented CPU recipe): 4 layers, 4 heads, width
128, context 64 characters, batch 12, 2000 iterations of AdamW (lr 1e-3, betas 0.9/0.99,
weight decay 0.1 on the matrices only), 100 warm-up iterations then cosine decay to 1e-4,
gradient clipping at 1.0, no dropout: 0.82M parameters.  It prints a progress bar with the
loss, the validation loss every --eval-interval iterations, saves and reloads the model, and
samples text with a key/value cache.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
from tqdm import tqdm

import minigrad as mg
from minigrad import nn, optim
from minigrad.data import TinyShakespeare
from minigrad.nn import functional as F

from common import pyplot  # examples/common.py (this script's folder is on sys.path)


# ==========================================================================================
# The model
# ==========================================================================================


class Block(nn.Module):
    """x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)): a pre-norm Transformer block."""

    def __init__(self, width, heads, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width),
                                 nn.Dropout(dropout))

    def forward(self, x, cache=None):
        h = self.ln1(x)
        if cache is None:  # training: every position attends to itself and the ones before it
            a = self.attn(h, h, h, need_weights=False, is_causal=True)[0]
        else:
            a = cached_attention(self.attn, h, cache)
        x = x + a
        return x + self.mlp(self.ln2(x))


def cached_attention(attn, x, cache):
    """Self-attention of the new positions x (N, T, C) to everything seen so far, with the keys
    and values of earlier positions kept in ``cache`` (a dict) instead of recomputed: what
    makes sampling one character at a time cheap.  Same weights as ``attn``'s forward."""
    n, t, c = x.shape
    h = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).reshape(n, t, 3, h, c // h).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if "k" in cache:  # new positions come after the cached ones
        k, v = mg.cat([cache["k"], k], axis=2), mg.cat([cache["v"], v], axis=2)
    cache["k"], cache["v"] = k, v
    # a prompt attends causally among itself; a single new position sees the whole cache
    out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
    return attn.out_proj(out.transpose(1, 2).reshape(n, t, c))


class GPT(nn.Module):
    """Token + position embeddings, ``layers`` blocks, a final LayerNorm and a linear head
    that scores the next character.  Initialised as GPT-2 / nanoGPT: weights from N(0, 0.02),
    the projections that write into the residual stream scaled by 1/sqrt(2 * layers), biases 0."""

    def __init__(self, vocab_size, block_size=64, layers=4, heads=4, width=128, dropout=0.0):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, block_size=block_size, layers=layers, heads=heads,
                           width=width, dropout=dropout)
        self.block_size = block_size
        self.tok = nn.Embedding(vocab_size, width)
        self.pos = nn.Embedding(block_size, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(width, heads, dropout) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                residual = name.endswith(("out_proj.weight", "mlp.2.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers) if residual else 0.02)
            elif name.endswith("bias") and "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, idx, caches=None, start=0):
        """Logits (N, T, vocab) for the int64 characters idx (N, T) at positions start ...
        start + T - 1 (start > 0 only when ``caches`` hold the earlier positions)."""
        t = idx.shape[1]
        if start + t > self.block_size:
            raise ValueError(f"GPT: positions up to {start + t} do not fit the context of {self.block_size}")
        pos = mg.arange(start, start + t, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.head(self.ln_f(x))

    def loss(self, idx, targets):
        logits = self.forward(idx)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    @mg.no_grad()
    def generate(self, idx, new_tokens, temperature=1.0, top_k=None, generator=None):
        """Append ``new_tokens`` sampled characters to idx (1, T0): softmax(logits / temperature)
        over the ``top_k`` likeliest characters.  Keys and values are cached, so each new
        character costs one position's worth of work.  When the context is full, the cache
        is rebuilt from the last block_size // 2 characters (positions are absolute, so the
        window cannot simply slide): the model always sees at least half a context."""
        self.eval()
        rng = np.random.default_rng(generator) if not isinstance(generator, np.random.Generator) else generator
        out = [int(i) for i in idx.numpy().reshape(-1)]
        caches, used = None, 0
        for _ in range(new_tokens):
            if caches is None or used == self.block_size:  # (re)start the cache from a prompt
                window = out[-(self.block_size // 2 if caches is not None else self.block_size):]
                caches = [{} for _ in self.blocks]
                logits = self.forward(mg.tensor([window], device=idx.device), caches, 0)
                used = len(window)
            else:
                logits = self.forward(mg.tensor([[out[-1]]], device=idx.device), caches, used)
                used += 1
            nxt = sample_next(logits.numpy()[0, -1], temperature, top_k, rng)
            out.append(nxt)
        return mg.tensor([out], device=idx.device)


def sample_next(logits, temperature, top_k, rng):
    """One character id drawn from softmax(logits / temperature) restricted to the top_k."""
    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-8)
    if top_k is not None and top_k < z.size:
        z[z < np.partition(z, -top_k)[-top_k]] = -np.inf
    p = np.exp(z - z.max())
    return int(rng.choice(z.size, p=p / p.sum()))


def param_groups(model, weight_decay):
    """AdamW groups: decay on the weight matrices; none on biases, norms and embeddings."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def schedule(optimizer, warmup, iters, min_lr):
    """Linear warm-up over ``warmup`` iterations, then cosine decay to ``min_lr``."""
    lr = optimizer.param_groups[0]["lr"]
    scheds = optim.lr_scheduler
    return scheds.SequentialLR(optimizer, [
        scheds.LinearLR(optimizer, start_factor=1.0 / warmup if warmup else 1.0, total_iters=max(warmup, 1)),
        scheds.CosineAnnealingLR(optimizer, T_max=max(iters - warmup, 1), eta_min=min_lr)],
        milestones=[warmup])


# ==========================================================================================
# Training
# ==========================================================================================


@mg.no_grad()
def estimate_loss(model, data, iters, batch_size, generator, device):
    """Mean loss over ``iters`` random batches (nanoGPT's estimate)."""
    model.eval()
    losses = [model.loss(*data.random_batch(batch_size, generator, device)).item() for _ in range(iters)]
    model.train()
    return float(np.mean(losses))


def train(args):
    """Train a GPT as ``args`` say; returns (model, train data, history)."""
    mg.manual_seed(args.seed)
    train_data = TinyShakespeare(args.data, "train", args.block_size)
    val_data = TinyShakespeare(args.data, "val", args.block_size)
    model = GPT(train_data.vocab_size, args.block_size, args.layers, args.heads, args.width,
                args.dropout).to(args.device)
    print(f"{model.num_parameters() / 1e6:.2f}M parameters; {train_data}; {val_data}")
    opt = optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, args.beta2))
    sched = schedule(opt, args.warmup, args.iters, args.min_lr)
    batches = np.random.default_rng(args.seed)   # training batches
    evals = np.random.default_rng(args.seed + 1)  # evaluation batches: do not shift the training stream
    history = {"iter": [], "train_loss": [], "eval_iter": [], "eval_train": [], "eval_val": []}
    bar = tqdm(range(1, args.iters + 1), desc="training", unit="it", disable=args.no_progress,
               dynamic_ncols=True)
    start = time.perf_counter()
    recent = []  # the last losses, still on the device: read back ten at a time, since reading
    for it in bar:  # one every step would make the host wait for a GPU at every step
        x, y = train_data.random_batch(args.batch_size, batches, args.device)
        loss = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        sched.step()
        history["iter"].append(it)
        recent.append(loss.detach())
        if it % 10 == 0 or it % args.eval_interval == 0 or it == args.iters:
            history["train_loss"] += mg.stack(recent).numpy().tolist()
            recent = []
        if it % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(history['train_loss'][-10:]):.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if it % args.eval_interval == 0 or it == args.iters:
            tr = estimate_loss(model, train_data, args.eval_iters, args.batch_size, evals, args.device)
            va = estimate_loss(model, val_data, args.eval_iters, args.batch_size, evals, args.device)
            for k, v in (("eval_iter", it), ("eval_train", tr), ("eval_val", va)):
                history[k].append(v)
            tqdm.write(f"iter {it}: train loss {tr:.4f}, val loss {va:.4f} "
                       f"({(time.perf_counter() - start) / it * 1e3:.0f} ms/iter)")
    history["seconds"] = time.perf_counter() - start
    return model, train_data, val_data, history


def plot_history(history, path):
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["iter"], history["train_loss"], lw=0.5, alpha=0.5, label="train (per batch)")
    ax.plot(history["eval_iter"], history["eval_train"], "o-", label="train (estimate)")
    ax.plot(history["eval_iter"], history["eval_val"], "o-", label="validation (estimate)")
    ax.set(xlabel="iteration", ylabel="cross-entropy (nats per character)", title="char GPT on tiny Shakespeare")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"saved plot to {path}")


def save(model, data, path):
    mg.save({"config": json.dumps(model.config), "vocab": "".join(data.itos), "state_dict": model.state_dict()}, path)


def load(path, device="cpu"):
    """(model, vocabulary string) from a file written by save()."""
    ckpt = mg.load(path)
    model = GPT(**json.loads(ckpt["config"])).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt["vocab"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = p.add_argument
    a("--iters", type=int, default=2000)
    a("--batch-size", type=int, default=12)
    a("--block-size", type=int, default=64, help="context length (characters)")
    a("--layers", type=int, default=4)
    a("--heads", type=int, default=4)
    a("--width", type=int, default=128)
    a("--dropout", type=float, default=0.0)
    a("--lr", type=float, default=1e-3)
    a("--min-lr", type=float, default=1e-4)
    a("--warmup", type=int, default=100)
    a("--weight-decay", type=float, default=0.1)
    a("--beta2", type=float, default=0.99)
    a("--clip", type=float, default=1.0)
    a("--eval-interval", type=int, default=250)
    a("--eval-iters", type=int, default=20, help="batches per loss estimate")
    a("--final-eval-iters", type=int, default=200, help="batches for the final train/val estimate")
    a("--seed", type=int, default=1337)
    a("--device", default="cpu", choices=["cpu", "cuda"])
    a("--data", default=None, help="folder holding tinyshakespeare/input.txt (default: $MINIGRAD_DATA, the cache)")
    a("--save", default=None, metavar="PATH", help="save the trained model (.npz)")
    a("--load", default=None, metavar="PATH", help="skip training: sample from a saved model")
    a("--plot", default=None, metavar="PATH", help="train/validation loss curves as PNG (needs matplotlib)")
    a("--sample", type=int, default=500, help="characters to generate at the end")
    a("--prompt", default="\n")
    a("--temperature", type=float, default=0.8)
    a("--top-k", type=int, default=40)
    a("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.load:
        model, vocab = load(args.load, args.device)
        stoi = {c: i for i, c in enumerate(vocab)}
    else:
        model, data, val_data, history = train(args)
        print(f"trained {args.iters} iterations in {history['seconds']:.0f} s "
              f"({history['seconds'] / args.iters * 1e3:.0f} ms/iter)")
        evals = np.random.default_rng(args.seed + 2)
        for name, d in (("train", data), ("val", val_data)):
            loss = estimate_loss(model, d, args.final_eval_iters, args.batch_size, evals, args.device)
            print(f"final {name} loss ({args.final_eval_iters} batches): {loss:.4f}")
        vocab, stoi = "".join(data.itos), data.stoi
        if args.plot:
            plot_history(history, args.plot)
        if args.save:
            save(model, data, args.save)
            model, vocab = load(args.save, args.device)  # sample from the reloaded model
            print(f"saved the model to {args.save} and reloaded it")
    if args.sample:
        prompt = mg.tensor([[stoi[c] for c in args.prompt]], device=args.device)
        start = time.perf_counter()
        out = model.generate(prompt, args.sample, args.temperature, args.top_k, generator=args.seed)
        seconds = time.perf_counter() - start
        print(f"--- {args.sample} characters in {seconds:.2f} s (temperature {args.temperature}, top-k {args.top_k})")
        print("".join(vocab[i] for i in out.numpy()[0]))


if __name__ == "__main__":
    main()
