"""The kernel laboratory: every op, every implementation on this machine, checked, then timed.

    python -m benchmarks.ops                          # every op, default sizes, this machine's devices
    python -m benchmarks.ops --op matmul relu --size 512 2048
    python -m benchmarks.ops --sweep --op matmul relu --plot lab.png    # size sweep, crossover
    python -m benchmarks.ops --device cpu --dtype float64 --repeat 9 --json lab.json --markdown lab.md
    python -m benchmarks.ops --list                   # the ops, what --size means for each
    python -m benchmarks.ops --preset tiny            # the seconds-long configuration CI runs

For each Case (an op at one size, one pass) every implementation (catalog.py: the reference
NumPy kernels, numba, CuPy/cuBLAS, our CUDA C and SGEMM rungs, PyTorch) first runs once and is
compared with the reference result; a wrong or failing one is reported and never timed.  The
correct ones are then timed together, interleaved (common.py says how).  Each row reports the
median time and its spread, the achieved GFLOP/s and GB/s, those as fractions of this
machine's peaks (a large GEMM and a large copy, measured in the same run: the roofs of the
roofline), and the speed-up over the reference on the CPU.

``--sweep`` times each op over a range of sizes and finds, per op, the size from which the GPU
beats the CPU, and why: a fit t = a + w / r per device (w: the work, FLOPs or bytes) splits the
time into a fixed cost per call a (Python, dispatch, and on the GPU the kernel launch: the
launch overhead is also measured directly) and a rate r.  Below the crossover the GPU's fixed
cost dominates; above it, its rate.
"""
import argparse
import json
import math
import sys
import time

import numpy as np

from . import catalog
from .common import (CLOCKS, SETTLE, cpu_clock, cuda_usable, cupy_clock, fmt_time, machine_info, machine_line, measure,
                     parse_threads, prepare_process, progress, table, thread_settings, write)

TINY = dict(repeat=2, min_sample=1e-3)


# ----------------------------------------------------------------------------------------
# The machine's roofs
def measure_peaks(device, dtype, tiny=False, repeat=5):
    """{'gflops': best GEMM GFLOP/s, 'gbs': best copy GB/s, and what was run}, on ``device``.
    The GEMM is an n x n x n product (n = 2048 on the CPU, 8192 on a GPU); the copy moves
    arrays of 256 MB on the CPU and 1 GB on a GPU (far larger than any cache), counted as
    read + write."""
    if device == "cpu":
        xp, clock = np, cpu_clock
        n, elements = (256, 1 << 18) if tiny else (2048, 1 << 26)
    else:
        import cupy

        xp, clock = cupy, cupy_clock
        n, elements = (512, 1 << 20) if tiny else (8192, 1 << 28)
    a = xp.ones((n, n), dtype=dtype)
    src, dst = xp.ones(elements, dtype=dtype), xp.empty(elements, dtype=dtype)
    copies = {"copy": lambda: xp.copyto(dst, src)}
    if device == "cpu":
        parallel = _parallel_copy()
        if parallel is not None:
            copies["parallel copy"] = lambda: parallel(src, dst)
    a @ a  # warm-up
    gemm = min(clock(lambda: a @ a, 1) for _ in range(repeat))
    best_copy = {}
    for name, fn in copies.items():
        fn()
        best_copy[name] = min(clock(fn, 1) for _ in range(repeat))
    copy_name = min(best_copy, key=best_copy.get)
    return {"gflops": 2.0 * n ** 3 / gemm / 1e9, "gbs": 2.0 * src.nbytes / best_copy[copy_name] / 1e9,
            "gemm": f"{n}x{n}x{n} {np.dtype(dtype).name} matmul ({'NumPy' if device == 'cpu' else 'cuBLAS'})",
            "copy": f"{copy_name} of {src.nbytes / 2 ** 20:.0f} MiB"}


def _parallel_copy():
    """A copy on all cores (numba prange): one thread alone cannot use a machine's bandwidth."""
    from minigrad.backend import cpu_kernels

    if not cpu_kernels.use_numba():
        return None
    import numba

    @numba.njit(parallel=True, cache=True)
    def copy(src, dst):
        for i in numba.prange(src.size):
            dst[i] = src[i]
    return copy


# ----------------------------------------------------------------------------------------
# Checking and timing one Case
def check(outputs, expected, tol):
    """None if ``outputs`` match ``expected`` (tuples of NumPy arrays; outputs may stop early:
    a library that returns fewer results is compared on those), else what is wrong.  Floats:
    max |out - exp| <= tol * max |exp|, NaN where expected; integers: equal."""
    if not isinstance(outputs, tuple) or not outputs:
        return f"expected a tuple of outputs, got {type(outputs).__name__}"
    if len(outputs) > len(expected):
        return f"{len(outputs)} outputs, the reference has {len(expected)}"
    for i, (out, exp) in enumerate(zip(outputs, expected)):
        exp = np.asarray(exp)
        out = np.asarray(out)
        if out.shape != exp.shape:
            return f"output {i}: shape {out.shape}, expected {exp.shape}"
        if exp.dtype.kind in "iub":
            if not np.array_equal(out.astype(np.int64), exp.astype(np.int64)):
                return f"output {i}: {int(np.sum(out.astype(np.int64) != exp))} integers differ"
            continue
        nan = np.isnan(exp)
        if not np.array_equal(nan, np.isnan(out)):
            return f"output {i}: NaN in different places"
        scale = float(np.max(np.abs(exp[~nan]), initial=0.0)) or 1.0
        err = float(np.max(np.abs(out[~nan].astype(np.float64) - exp[~nan]), initial=0.0)) / scale
        if not err <= tol:
            return f"output {i}: relative error {err:.2g} > {tol:g}"
    return None


def run_case(case, repeat, min_sample, rng_seed=0, bar=None, clock=cpu_clock, settle=None):
    """Check every Impl of ``case`` against the reference, then time the correct ones
    interleaved (CPU ones on ``clock``, GPU ones on CUDA events).  Returns one result dict per
    Impl (status 'ok', 'wrong' or 'failed').  ``settle``: seconds of sleep before each sample
    (common.interleaved)."""
    rng = np.random.default_rng(rng_seed)
    inputs = case.inputs(rng)
    expected = tuple(catalog.to_host(case.expected(inputs)))
    results, calls = [], {}
    for impl in case.impls:
        result = {"op": case.op, "pass": case.pass_, "case": case.label, "size": case.size,
                  "device": impl.device, "impl": impl.name, "flops": case.flops, "bytes": case.bytes,
                  "status": "ok", "error": None}
        results.append(result)
        try:
            run = impl.setup(inputs)
            outputs = catalog.to_host(tuple(run()))  # the first call: the check, and the warm-up
            if impl.adapt is not None:
                outputs = tuple(impl.adapt(outputs))
            if impl.compared:
                problem = check(outputs, expected, case.tol)
            else:  # its own random numbers: the shapes only
                problem = next((f"output {i}: shape {np.shape(o)}, expected {np.shape(e)}"
                                for i, (o, e) in enumerate(zip(outputs, expected)) if np.shape(o) != np.shape(e)), None)
                result["impl"] += " (not compared)"
        except Exception as e:  # a failing implementation is reported, the others go on
            result.update(status="failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:200])
            continue
        if problem is not None:
            result.update(status="wrong", error=problem)
            continue
        calls[id(result)] = (run, clock if impl.device == "cpu" else impl.clock)
    if bar is not None:
        bar.update(len(case.impls))
    stats = measure(calls, repeat, min_sample, warm_up=False, on_sample=None if bar is None else (lambda: bar.update(1)),
                    settle=settle)
    for result in results:
        if id(result) in stats:
            result.update(stats[id(result)])
            result["gflops"] = case.flops / result["median"] / 1e9
            result["gbs"] = case.bytes / result["median"] / 1e9
    base = next((r for r in results if r["device"] == "cpu" and r["impl"] == "numpy" and "median" in r), None)
    for result in results:
        if base is not None and "median" in result:
            result["speedup"] = base["median"] / result["median"]
    return results


def add_peak_fractions(results, peaks):
    """Each timed result as fractions of its device's measured roofs: of the GEMM peak, of the
    copy bandwidth, and of the roofline's bound min(peak, intensity x bandwidth)."""
    for r in results:
        roof = peaks.get(r["device"])
        if roof is None or "median" not in r:
            continue
        r["of_peak_flops"] = r["gflops"] / roof["gflops"]
        r["of_bandwidth"] = r["gbs"] / roof["gbs"]
        if r["flops"] > 0:
            bound = min(roof["gflops"], r["flops"] / r["bytes"] * roof["gbs"])
            r["of_roofline"] = r["gflops"] / bound


# ----------------------------------------------------------------------------------------
# The sweep: where the GPU starts to win, and why
def fit_fixed_and_rate(points):
    """Fit t = a + w / r to (work, seconds) points, each weighted by 1/t (relative errors
    count alike for small and large sizes).  Returns (a seconds, r work per second); a and
    1/r are kept >= 0."""
    if len(points) < 2:
        return None
    w = np.array([p[0] for p in points], dtype=float)
    t = np.array([p[1] for p in points], dtype=float)
    A = np.stack([1.0 / t, w / t], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    if b <= 0:  # no measurable rate: all fixed cost
        return float(np.median(t)), math.inf
    if a < 0:   # no measurable fixed cost: refit the rate alone
        a, b = 0.0, float(np.sum(w * t) / np.sum(w * w))
    return float(a), float(1.0 / b)


def _best(results, device, torch_only):
    """size -> (seconds, impl) of the fastest correct implementation on ``device``
    (minigrad's and the libraries', or only PyTorch's)."""
    best = {}
    for r in results:
        if r["device"] != device or "median" not in r or (r["impl"] == "torch") != torch_only:
            continue
        if r["size"] not in best or r["median"] < best[r["size"]][0]:
            best[r["size"]] = (r["median"], r["impl"], r["flops"] or r["bytes"])
    return best


def crossover(results):
    """Per (op, pass) of a sweep: the fastest CPU and GPU times per size, the first size from
    which the GPU stays faster, and the fit t = a + w / r on each device."""
    analyses = []
    keys = sorted({(r["op"], r["pass"]) for r in results})
    for op, pass_ in keys:
        rows = [r for r in results if (r["op"], r["pass"]) == (op, pass_)]
        for who, torch_only in (("minigrad", False), ("torch", True)):
            cpu, gpu = _best(rows, "cpu", torch_only), _best(rows, "cuda", torch_only)
            if not cpu and not gpu:
                continue
            sizes = sorted(set(cpu) | set(gpu))
            both = [s for s in sizes if s in cpu and s in gpu]
            first = None
            for i, s in enumerate(both):
                if all(gpu[t][0] < cpu[t][0] for t in both[i:]):
                    first = s
                    break
            analysis = {"op": op, "pass": pass_, "who": who, "sizes": sizes,
                        "cpu": {s: cpu[s][:2] for s in cpu}, "gpu": {s: gpu[s][:2] for s in gpu},
                        "work": {s: (cpu.get(s) or gpu.get(s))[2] for s in sizes},
                        "crossover": first if both else None, "measured_both": bool(both)}
            for device, best in (("cpu", cpu), ("gpu", gpu)):
                fit = fit_fixed_and_rate([(best[s][2], best[s][0]) for s in sorted(best)])
                analysis[f"fit_{device}"] = None if fit is None else {"fixed_s": fit[0], "rate": fit[1]}
            analyses.append(analysis)
    return analyses


def launch_overhead(repeat=5, calls=2000):
    """What one tiny call costs, when the work is nothing: on the CPU a NumPy call on one
    element; on the GPU (if any) our CUDA ReLU kernel and a CuPy elementwise op on one element,
    host time per call (Python + launch) and GPU time per call between CUDA events (for
    back-to-back launches).  Seconds."""
    from minigrad.backend import reference

    one = np.ones(1, np.float32)
    found = {"cpu: numpy relu on 1 element": min(cpu_clock(lambda: reference.relu(one), calls) for _ in range(repeat))}
    if cuda_usable():
        import cupy

        from minigrad.backend import cuda as cuda_kernels

        g = cupy.ones(1, cupy.float32)
        for name, fn in (("our CUDA relu kernel", lambda: cuda_kernels.relu(g)), ("CuPy x + 1", lambda: g + 1)):
            fn()
            cupy.cuda.Device().synchronize()

            def host(fn=fn):
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                issued = time.perf_counter() - start
                cupy.cuda.Device().synchronize()
                return issued / calls

            found[f"cuda: {name}, host time per call"] = min(host() for _ in range(repeat))
            found[f"cuda: {name}, GPU time per call"] = min(cupy_clock(fn, calls) for _ in range(repeat))
    return found


# ----------------------------------------------------------------------------------------
# Reports
def _fmt_rate(x):
    return "-" if x is None else (f"{x:.3g}" if x < 1000 else f"{x:,.0f}")


def _pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def result_rows(results):
    rows = []
    for r in results:
        if "median" in r:
            rows.append([r["op"], r["pass"], r["case"], r["device"], r["impl"], fmt_time(r["median"]),
                         f"{100 * r['spread']:.0f}%", _fmt_rate(r["gflops"] if r["flops"] else None),
                         _fmt_rate(r["gbs"]), _pct(r.get("of_peak_flops") if r["flops"] else None),
                         _pct(r.get("of_bandwidth")),
                         f"{r['speedup']:.2f}x" if "speedup" in r else "-"])
        else:
            rows.append([r["op"], r["pass"], r["case"], r["device"], r["impl"],
                         f"{r['status'].upper()}: {r['error']}", "", "", "", "", "", ""])
    return rows


HEADERS = ["op", "pass", "case", "device", "impl", "median", "spread", "GFLOP/s", "GB/s",
           "of peak FLOP/s", "of copy BW", "vs reference"]


def peaks_lines(peaks):
    return [f"{d}: GEMM {p['gflops']:,.1f} GFLOP/s ({p['gemm']}); copy {p['gbs']:,.1f} GB/s ({p['copy']})"
            for d, p in peaks.items()]


def crossover_lines(analyses, gpu):
    lines = []
    if not gpu:
        lines.append("No CUDA GPU here: the sweep has CPU times only, so no crossover is measured "
                     "(the fits below still split each CPU time into fixed cost and rate).")
    for a in analyses:
        unit = "GFLOP/s" if any(r for r in a["work"].values()) and a["op"] not in ("im2col",) else "GB/s"
        parts = []
        for device in ("cpu", "gpu"):
            fit = a[f"fit_{device}"]
            if fit is not None:
                rate = "inf" if math.isinf(fit["rate"]) else f"{fit['rate'] / 1e9:,.3g}"
                parts.append(f"{device.upper()} fixed {fmt_time(fit['fixed_s'])} per call, rate {rate} {unit}")
        if a["measured_both"]:
            if a["crossover"] is None:
                verdict = "the GPU never stays ahead in this range"
            elif a["crossover"] == a["sizes"][0]:
                verdict = f"the GPU is faster at every size measured (from {a['crossover']})"
            else:
                verdict = f"the GPU is faster from size {a['crossover']}"
        else:
            verdict = "one device only"
        lines.append(f"{a['op']} {a['pass']} ({a['who']}): {verdict}; " + "; ".join(parts))
    return lines


def markdown(report):
    """The report as Markdown (for docs/benchmarks.md)."""
    out = [f"Machine: {machine_line(report['machine'])}", "",
           f"Command: `{report['command']}`; dtype {report['config']['dtype']}, median of "
           f"{report['config']['repeat']} interleaved samples.", "",
           "Measured roofs: " + "; ".join(peaks_lines(report["peaks"])), "",
           table(result_rows(report["results"]), HEADERS)]
    if report.get("sweep"):
        out += ["", "Sweep:", "", table(result_rows(report["sweep"]), HEADERS), ""]
        out += [f"- {line}" for line in crossover_lines(report["crossover"], report["gpu"])]
    if report.get("launch_overhead"):
        out += ["", "Fixed cost of one tiny call:", ""]
        out += [f"- {name}: {fmt_time(s)}" for name, s in report["launch_overhead"].items()]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------
# The command line
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ops", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:9]))
    p.add_argument("--op", nargs="+", choices=list(catalog.OPS), help="ops to time (default: all)")
    p.add_argument("--size", nargs="+", type=int, help="sizes for the chosen ops (see --list for what "
                   "a size means for each op; default: each op's default set)")
    p.add_argument("--device", nargs="+", choices=["cpu", "cuda"], default=["cpu", "cuda"],
                   help="devices (cuda rows appear only with a real GPU)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeat", type=int, default=5, help="timed samples per implementation (median)")
    p.add_argument("--min-sample", type=float, default=0.02,
                   help="seconds one sample lasts at least (fast calls are repeated inside it)")
    p.add_argument("--clock", choices=list(CLOCKS), default="wall",
                   help="CPU rows: wall time, or this process's CPU time (see common.process_clock)")
    p.add_argument("--settle", type=float, metavar="SECONDS",
                   help=f"sleep before each sample, so no contender starts while the last one's idle "
                        f"threads spin (default {SETTLE}; 0 with --preset tiny)")
    p.add_argument("--threads", metavar="SPEC",
                   help="thread counts while timing: N for every pool, or blas=N,numba=N,torch=N "
                        "(default: as the libraries start; with --clock process, 1 compares CPU work)")
    p.add_argument("--sweep", action="store_true", help="also sweep sizes and find the CPU/GPU crossover")
    p.add_argument("--no-cases", action="store_true", help="with --sweep: skip the default-size table")
    p.add_argument("--preset", choices=["tiny"], help="tiny: small sizes, 2 samples (CI; seconds)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON ('-': stdout)")
    p.add_argument("--markdown", metavar="PATH", help="write the report as Markdown ('-': stdout)")
    p.add_argument("--plot", metavar="PNG", help="speed-up bars, roofline and crossover curves (matplotlib)")
    p.add_argument("--list", action="store_true", help="list the ops and what --size means, then exit")
    return p.parse_args(argv)


def collect(args, out=sys.stdout):
    """Run what ``args`` asks for; return the report (a JSON-able dict)."""
    tiny = args.preset == "tiny"
    if tiny:
        args.repeat, args.min_sample = min(args.repeat, TINY["repeat"]), min(args.min_sample, TINY["min_sample"])
    if args.settle is None:
        args.settle = 0.0 if tiny else SETTLE
    gpu = "cuda" in args.device and cuda_usable()
    devices = [d for d in args.device if d == "cpu" or gpu]
    ops = args.op or list(catalog.OPS)
    info = machine_info()
    print(machine_line(info), file=out)
    if "cuda" in args.device and not gpu:
        print("No CUDA GPU here (minigrad.cuda_available() is False): CPU rows only. "
              "(The CUDA C emulator checks kernels; it is not a device to time.)", file=out)
    peaks = {d: measure_peaks(d, args.dtype, tiny, repeat=2 if tiny else 5) for d in devices}
    for line in peaks_lines(peaks):
        print("roof " + line, file=out)

    def sizes_for(op, sweep):
        if sweep:
            return catalog.OPS[op].tiny if tiny else catalog.OPS[op].sweep
        return catalog.OPS[op].tiny if tiny and args.size is None else args.size

    plans = []
    if not (args.sweep and args.no_cases):
        plans += [("cases", c) for op in ops for c in catalog.build(op, sizes_for(op, False), args.dtype, devices)]
    if args.sweep:
        plans += [("sweep", c) for op in ops for c in catalog.build(op, sizes_for(op, True), args.dtype, devices)
                  if c.pass_ in ("fwd", "step")]
    total = sum(len(c.impls) * (1 + args.repeat) for _, c in plans)
    results = {"cases": [], "sweep": []}
    with progress(total, "benchmarks.ops") as bar:
        for kind, case in plans:
            bar.set_postfix_str(f"{case.op} {case.pass_} {case.label}"[:60])
            rows = run_case(case, args.repeat, args.min_sample, bar=bar, clock=CLOCKS[args.clock], settle=args.settle)
            add_peak_fractions(rows, peaks)
            results[kind] += rows
    report = {"machine": info, "command": "python -m benchmarks.ops " + " ".join(sys.argv[1:]),
              "config": {"ops": ops, "sizes": args.size, "devices": devices, "dtype": args.dtype,
                         "repeat": args.repeat, "min_sample": args.min_sample, "settle": args.settle, "preset": args.preset,
                         "clock": args.clock, "threads": args.threads},
              "gpu": gpu, "peaks": peaks, "results": results["cases"], "sweep": results["sweep"]}
    if args.sweep:
        report["crossover"] = crossover(results["sweep"])
        report["launch_overhead"] = launch_overhead(repeat=2 if tiny else 5, calls=100 if tiny else 2000)
    return report


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def main(argv=None):
    args = parse_args(argv)
    prepare_process()
    if args.list:
        for name, op in catalog.OPS.items():
            print(f"{name:14s} --size = {op.size_means}; sweep {op.sweep}")
        return None
    # with --json - or --markdown -, stdout carries that document only; the table goes to stderr
    out = sys.stderr if "-" in (args.json, args.markdown) else sys.stdout
    with thread_settings(**(parse_threads(args.threads) if args.threads else {})):
        report = collect(args, out)
    if report["results"]:
        print(table(result_rows(report["results"]), HEADERS), file=out)
    if report["sweep"]:
        print("\nSweep:\n" + table(result_rows(report["sweep"]), HEADERS), file=out)
        print("\n".join(["", "Crossover (CPU vs GPU):"] + crossover_lines(report["crossover"], report["gpu"])),
              file=out)
        print("\n".join(["", "Fixed cost of one tiny call:"] +
                        [f"  {k}: {fmt_time(v)}" for k, v in report["launch_overhead"].items()]), file=out)
    if args.json:
        write(args.json, json.dumps(_jsonable(report), indent=1) + "\n")
    if args.markdown:
        write(args.markdown, markdown(report))
    if args.plot:
        from . import plot

        plot.lab_figure(report, args.plot)
        print(f"plot: {args.plot}", file=out)
    return report


if __name__ == "__main__":
    main()
