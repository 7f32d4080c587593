"""A cost model (not a measurement) of data-parallel step time for the MNIST MLP and CNN on
1 to 512 workers: how far adding workers helps before the all-reduce eats the gain.

    python benchmarks/scaling_model.py                         # the tables in docs/distributed.md
    python benchmarks/scaling_model.py --gflops 80 --overhead-ms 2 --batch 4096

Strong scaling: a fixed global batch B is split over N workers (B/N each).  One step costs

    compute(N) = overhead + (B/N) * flops_per_example / F
    comm(N)    = 2 (N-1) * alpha  +  2 (N-1)/N * S / beta        (ring all-reduce, N > 1)
    step(N)    = compute(N) + comm(N)

with S the gradient bytes, F a worker's sustained FLOP/s, ``overhead`` the per-step cost that
does not shrink with the batch (Python, kernel launches), beta the link bandwidth and alpha the
per-message latency of the network.  DDP overlaps comm with the backward pass, so a real step
lies between max(compute, comm) and this sum; the sum is the conservative side.
Every input is an assumption printed with the table; pass your measured values to replace them.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import table  # noqa: E402

# (name, parameters, forward FLOPs per example); backward costs about twice the forward
MODELS = {
    # 784*128 + 128 + 128*10 + 10 parameters; forward 2 * (784*128 + 128*10) FLOPs
    "MLP": (101_770, 2 * (784 * 128 + 128 * 10)),
    # conv 1->32 3x3 on 26x26, conv 32->64 3x3 on 11x11, fc 1600->128, fc 128->10
    "CNN": (320 + 18_496 + 204_928 + 1_290,
            2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 32 * 9 + 1600 * 128 + 128 * 10)),
}
# (name, bandwidth in bytes/s, latency per message in s): typical published figures
NETWORKS = [
    ("1 GbE", 1e9 / 8, 50e-6),
    ("10 GbE", 10e9 / 8, 20e-6),
    ("100 Gb/s InfiniBand", 100e9 / 8, 2e-6),
]


def compute_time(fwd_flops, workers, args):
    """Forward + backward (3x the forward FLOPs) of this worker's share, plus the fixed cost."""
    return args.overhead_ms / 1e3 + (args.batch / workers) * 3 * fwd_flops / (args.gflops * 1e9)


def comm_time(params, workers, bandwidth, latency):
    """Ring all-reduce of the float32 gradients: 2 (N-1) messages, 2 (N-1)/N of the bytes."""
    if workers == 1:
        return 0.0
    return 2 * (workers - 1) * latency + 2 * (workers - 1) / workers * 4 * params / bandwidth


def model_table(name, args):
    params, fwd = MODELS[name]
    rows, best, crossover = [], {}, {}
    for n in (2 ** k for k in range(10)):
        compute = compute_time(fwd, n, args)
        row = [n, f"{args.batch / n:g}", f"{compute * 1e3:.2f}"]
        for net, bandwidth, latency in NETWORKS:
            comm = comm_time(params, n, bandwidth, latency)
            step = compute + comm
            speedup = compute_time(fwd, 1, args) / step
            row.append(f"{comm * 1e3:.2f} / {step * 1e3:.2f} ({speedup:.1f}x)")
            if net not in best or step < best[net][1]:
                best[net] = (n, step)
            if comm > compute:
                crossover.setdefault(net, n)
        rows.append(row)
    headers = (["workers", "batch/worker", "compute ms"]
               + [f"{net}: comm / step ms (speedup)" for net, _, _ in NETWORKS])
    lines = [f"**{name}** ({params:,} parameters = {4 * params / 1e6:.2f} MB of float32 gradients, "
             f"{3 * fwd / 1e6:.2f} MFLOP per example forward + backward)", "", table(rows, headers), ""]
    for net, _, _ in NETWORKS:
        n_best, t_best = best[net]
        cross = crossover.get(net)
        lines.append(f"- {net}: fastest at {n_best} workers ({t_best * 1e3:.2f} ms per step); "
                     + (f"communication exceeds compute from {cross} workers on."
                        if cross else "communication stays below compute up to 512 workers."))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1024, help="global batch B (split over the workers)")
    p.add_argument("--gflops", type=float, default=50.0, help="sustained GFLOP/s of one worker")
    p.add_argument("--overhead-ms", type=float, default=1.0, help="per-step cost independent of the batch")
    args = p.parse_args()
    print(f"MODEL, not a measurement.  Assumed: global batch {args.batch}, {args.gflops:g} GFLOP/s per "
          f"worker, {args.overhead_ms:g} ms fixed per step, float32 gradients, ring all-reduce without "
          "overlap; networks (bandwidth, latency per message): "
          + ", ".join(f"{net} ({bw * 8 / 1e9:g} Gb/s, {lat * 1e6:g} us)" for net, bw, lat in NETWORKS) + ".\n")
    for name in MODELS:
        print(model_table(name, args))
        print()


if __name__ == "__main__":
    main()
