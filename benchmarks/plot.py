"""The lab's figure (``python -m benchmarks.ops --plot lab.png``): three panels.

1. Speed-up over the reference (NumPy on the CPU) per case and implementation, log scale:
   bars above 1 are faster than the reference.
2. The roofline of each device: attainable GFLOP/s = min(GEMM peak, intensity x copy
   bandwidth), with the two roofs measured in the same run, and every timed kernel as a point
   at its arithmetic intensity (FLOPs per compulsory byte).  A point far below its roof leaves
   speed on the table; a point on the slanted part is memory-bound, on the flat part
   compute-bound.  (Kernels without arithmetic, im2col, are left off: their column "of copy
   BW" in the table is their roofline.)
3. Crossover curves (with --sweep): time per call against the work, for the fastest CPU and
   GPU implementation of each op.  Where the GPU curve (dashed) drops below the CPU curve
   (solid) the GPU starts to win; the flat left end of a curve is the fixed cost per call.
"""
import textwrap

import numpy as np

from .common import machine_line

DEVICE_STYLE = {"cpu": "-", "cuda": "--"}
MARKERS = "osD^v<>pPX*h"


def _colors(keys):
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if len(keys) <= 10 else colormaps["tab20"]
    return {k: cmap(i % cmap.N) for i, k in enumerate(keys)}


def lab_figure(report, path):
    """Draw the three panels of ``report`` (ops.collect's dict) into ``path`` (PNG, SVG, PDF)."""
    from matplotlib.figure import Figure

    results = [r for r in report["results"] + report.get("sweep", []) if "median" in r]
    bars = [r for r in (report["results"] or report.get("sweep", [])) if "median" in r]
    n_cases = len({(r["op"], r["pass"], r["case"]) for r in bars})
    fig = Figure(figsize=(max(14, 0.45 * n_cases + 4), 12), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.1])
    _speedups(fig.add_subplot(grid[0, :]), bars)
    _roofline(fig.add_subplot(grid[1, 0]), results, report["peaks"])
    _crossover(fig.add_subplot(grid[1, 1]), report)
    title = (f"minigrad kernel lab, {report['config']['dtype']}: "
             f"{machine_line(report['machine'])}")
    fig.suptitle("\n".join(textwrap.wrap(title, 160)), fontsize=9)
    fig.savefig(path, dpi=110)
    return fig


def _case_name(r):
    return f"{r['op']} {r['pass']}\n{r['case'].split(':')[0][:28]}"


def _speedups(ax, results):
    if not results:
        ax.text(0.5, 0.5, "nothing was timed", ha="center", va="center", transform=ax.transAxes)
        return
    cases = list(dict.fromkeys((r["op"], r["pass"], r["case"]) for r in results))
    impls = list(dict.fromkeys((r["device"], r["impl"]) for r in results))
    colors = _colors(impls)
    width = 0.8 / len(impls)
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for i, case in enumerate(cases):
            r = next((r for r in results if (r["op"], r["pass"], r["case"]) == case
                      and (r["device"], r["impl"]) == impl and "speedup" in r), None)
            if r is not None:
                xs.append(i + (j - (len(impls) - 1) / 2) * width)
                ys.append(r["speedup"])
        ax.bar(xs, ys, width, color=colors[impl], label=f"{impl[1]} ({impl[0]})",
               hatch="//" if impl[0] == "cuda" else None, bottom=0)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)))
    labels = {}
    for r in results:
        labels.setdefault((r["op"], r["pass"], r["case"]), _case_name(r))
    ax.set_xticklabels([labels[c] for c in cases], fontsize=7, rotation=60, ha="right")
    ax.set_ylabel("speed-up over the reference (NumPy, CPU)")
    ax.set_title("Speed-up per case (higher is faster)")
    ax.legend(fontsize=7, ncol=min(len(impls), 6))
    ax.grid(axis="y", which="both", alpha=0.3)


def _roofline(ax, results, peaks):
    points = [r for r in results if r["flops"] > 0]
    intensities = [r["flops"] / r["bytes"] for r in points] or [1.0]
    lo, hi = min(intensities + [0.05]) / 2, max(intensities + [100.0]) * 2
    ai = np.geomspace(lo, hi, 200)
    for device, roof in peaks.items():
        ax.plot(ai, np.minimum(roof["gflops"], ai * roof["gbs"]), DEVICE_STYLE.get(device, "-"), color="black",
                linewidth=1.2, label=f"{device} roof: {roof['gflops']:,.0f} GFLOP/s, {roof['gbs']:,.0f} GB/s")
    ops = list(dict.fromkeys(r["op"] for r in points))
    impls = list(dict.fromkeys((r["device"], r["impl"]) for r in points))
    colors = _colors(impls)
    for r in points:
        ax.scatter(r["flops"] / r["bytes"], r["gflops"], s=28, color=colors[(r["device"], r["impl"])],
                   marker=MARKERS[ops.index(r["op"]) % len(MARKERS)], edgecolors="black", linewidths=0.3)
    for impl in impls:  # legend entries: colour = implementation, marker = op
        ax.scatter([], [], color=colors[impl], label=f"{impl[1]} ({impl[0]})")
    for i, op in enumerate(ops):
        ax.scatter([], [], color="white", edgecolors="black", marker=MARKERS[i % len(MARKERS)], label=op)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per compulsory byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title("Roofline: every timed kernel against the measured roofs")
    ax.legend(fontsize=6, ncol=2, loc="lower right")
    ax.grid(which="both", alpha=0.3)


def _crossover(ax, report):
    analyses = report.get("crossover")
    if not analyses:
        ax.text(0.5, 0.5, "run with --sweep for the CPU/GPU crossover curves", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return
    mine = [a for a in analyses if a["who"] == "minigrad"]
    colors = _colors([a["op"] for a in mine])
    for a in mine:
        for device, key in (("cpu", "cpu"), ("cuda", "gpu")):
            sizes = sorted(a[key], key=lambda s: a["work"][s])
            if sizes:
                ax.plot([a["work"][s] for s in sizes], [a[key][s][0] for s in sizes], DEVICE_STYLE[device],
                        marker="o", markersize=3, color=colors[a["op"]], label=f"{a['op']} {a['pass']} ({device})")
        if a["crossover"] is not None:
            w = a["work"][a["crossover"]]
            ax.axvline(w, color=colors[a["op"]], linewidth=0.6, alpha=0.6)
    overhead = report.get("launch_overhead") or {}
    for name, seconds in overhead.items():
        if "GPU time" in name or "host time" in name:
            ax.axhline(seconds, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("work per call (FLOPs; bytes for kernels without arithmetic)")
    ax.set_ylabel("seconds per call (fastest implementation)")
    gpu = "" if report.get("gpu") else " (no GPU here: CPU curves only)"
    ax.set_title("CPU (solid) vs GPU (dashed) as the work grows" + gpu)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(which="both", alpha=0.3)
