"""Time training steps of the small character GPT (examples/char_gpt.py: 4 layers, 4 heads,
width 128, context 64, batch 12, AdamW, gradient clipping; 0.82M parameters) with minigrad and
with the same model written in plain PyTorch on the CPU, in one process, contenders interleaved.

    python benchmarks/train_gpt.py                       # 20 steps per timing, median of 5
    python benchmarks/train_gpt.py --steps 50 --repeat 7 --profile

Each timing runs ``--steps`` full training steps (forward, loss, backward, clipping, AdamW
update) on the same random batches of tiny Shakespeare; the table reports milliseconds per
step (wall and CPU time) and the ratios to PyTorch.  --threads N gives both N threads (BLAS,
numba, torch); --profile prints where minigrad's step spends its time.
"""
import argparse
import math
import os
import statistics
import sys
import time


def _pin_threads(argv):
    """--threads N must reach the BLAS and numba pools before they start (at numpy's import)."""
    for i, a in enumerate(argv):
        n = a.split("=", 1)[1] if a.startswith("--threads=") else (argv[i + 1] if a == "--threads" and i + 1 < len(argv) else None)
        if n:
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
                os.environ[var] = n


_pin_threads(sys.argv)
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import machine, table, timed  # noqa: E402

sys.path.append(os.path.join(HERE, "..", "examples"))  # the model (after: examples/ has a common.py too)

CONFIG = dict(vocab_size=65, block_size=64, layers=4, heads=4, width=128)


def batches(steps, batch, seed=0):
    """Random character blocks: real tiny Shakespeare when it can be found, else random ids
    (the step time does not depend on the values)."""
    rng = np.random.default_rng(seed)
    try:
        from minigrad.data import TinyShakespeare
        data = TinyShakespeare(split="train", block_size=CONFIG["block_size"], download=False)
        return [data.get_batch(rng.integers(0, len(data), batch)) for _ in range(steps)], "tiny Shakespeare"
    except Exception as exc:
        t = CONFIG["block_size"]
        ids = [rng.integers(0, CONFIG["vocab_size"], (batch, t + 1)) for _ in range(steps)]
        return [(a[:, :-1].copy(), a[:, 1:].copy()) for a in ids], f"random ids ({type(exc).__name__})"


def minigrad_steps(data, args):
    import minigrad as mg
    from char_gpt import GPT, param_groups
    from minigrad import nn, optim

    mg.manual_seed(0)
    model = GPT(**CONFIG)
    opt = optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    tensors = [(mg.tensor(x), mg.tensor(y)) for x, y in data]

    def run():
        for x, y in tensors:
            loss = model.loss(x, y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return run


def torch_steps(data, args):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):  # nanoGPT's block: fused qkv projection and scaled_dot_product_attention
        def __init__(self, width, heads):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

        def forward(self, x):
            n, t, c = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(n, t, c))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self, vocab_size, block_size, layers, heads, width):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab_size, width), nn.Embedding(block_size, width)
            self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
            self.ln_f, self.head = nn.LayerNorm(width), nn.Linear(width, vocab_size, bias=False)
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                    nn.init.normal_(p, 0.0, std)
                elif name.endswith("bias") and "ln" not in name:
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            logits = self.head(self.ln_f(self.blocks(x)))
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT(**CONFIG)
    embeddings = {id(model.tok.weight), id(model.pos.weight)}
    decay = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in embeddings]
    rest = [p for p in model.parameters() if p.dim() < 2 or id(p) in embeddings]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]

    def run():
        for x, y in tensors:
            loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--steps", type=int, default=20, help="training steps per timing")
    p.add_argument("--repeat", type=int, default=5, help="timings per contender (median reported)")
    p.add_argument("--profile", action="store_true", help="cProfile minigrad's steps afterwards")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both (BLAS and numba pools, torch.set_num_threads); default: the libraries' own")
    args = p.parse_args()

    data, source = batches(args.steps, args.batch)
    print(f"{machine()}\n{args.steps} steps of batch {args.batch} x {CONFIG['block_size']} ({source}) per timing; "
          f"median of {args.repeat} after a warm-up, contenders interleaved\n")
    contenders = {"minigrad": minigrad_steps(data, args)}
    try:
        contenders["pytorch"] = torch_steps(data, args)
    except ImportError:
        print("(PyTorch not installed: pip install torch==2.13.0 to compare)")
    # CPU time of this process as well: on a machine shared with other work, wall time also
    # counts the waits for a core, CPU time only the work (with one thread, the two agree
    # on a quiet machine)
    cpu = {name: [] for name in contenders}

    def cpu_timed(name, fn):
        def run():
            start = time.process_time()
            fn()
            cpu[name].append(time.process_time() - start)
        return run

    results = timed({name: cpu_timed(name, fn) for name, fn in contenders.items()}, args.repeat)
    rows = []
    for name, (median, times) in results.items():
        cpu_ms = 1e3 * statistics.median(cpu[name][1:]) / args.steps  # (the first call is the warm-up)
        vs = f"{median / results['pytorch'][0]:.2f}x" if "pytorch" in results else "-"
        cpu_vs = f"{statistics.median(cpu[name][1:]) / statistics.median(cpu['pytorch'][1:]):.2f}x" if "pytorch" in cpu else "-"
        spread = f"{1e3 * min(times) / args.steps:.0f}-{1e3 * max(times) / args.steps:.0f}"
        rows.append([name, f"{1e3 * median / args.steps:.1f}", spread, vs, f"{cpu_ms:.1f}", cpu_vs])
    if "pytorch" in results:  # the ratio of each interleaved pair: robust to a slow spell
        ratios = [a / b for a, b in zip(results["minigrad"][1], results["pytorch"][1])]
        print(f"per-pair wall-time ratios minigrad/pytorch: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(table(rows, ["implementation", "ms / step (median)", "range", "vs pytorch", "CPU ms / step", "CPU vs pytorch"]))
    if args.profile:
        import cProfile
        import pstats
        cProfile.runctx("run()", {"run": contenders["minigrad"]}, {}, "/tmp/train_gpt.prof")
        pstats.Stats("/tmp/train_gpt.prof").sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
