"""The benchmarks run (tiny configurations, seconds), check what they time, and report.

Speed itself is never asserted here (timings are the benchmarks' output, not a test's); what
is asserted: every op and workload still runs, every implementation is checked against the
reference before it is timed, a wrong one is reported and never timed, the analysis of a sweep
finds a crossover where there is one, and every output carries the machine's details.
"""
import json

import numpy as np
import pytest

from benchmarks import catalog, gpu_check, ops, optim_steps, train
from benchmarks.catalog import Impl
from minigrad.backend import cpu_kernels
from tests.helpers import torch_installed
from tests.tables import NEEDS_EMULATOR


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """The whole lab in its tiny configuration, on the CPU, with every output written."""
    out = tmp_path_factory.mktemp("lab")
    paths = {"json": out / "lab.json", "markdown": out / "lab.md", "plot": out / "lab.png"}
    report = ops.main(["--preset", "tiny", "--device", "cpu", "--json", str(paths["json"]),
                       "--markdown", str(paths["markdown"]), "--plot", str(paths["plot"])])
    return report, paths


def test_tiny_lab_checks_and_times_every_op(tiny_report):
    report, _ = tiny_report
    results = report["results"]
    assert {r["op"] for r in results} == set(catalog.OPS) | {"col2im"}  # im2col brings its adjoint
    bad = [(r["op"], r["case"], r["impl"], r["error"]) for r in results if r["status"] != "ok"]
    assert not bad, bad
    for r in results:
        assert r["median"] > 0 and r["min"] <= r["median"] <= r["max"] and len(r["samples"]) == 2
        assert r["gbs"] > 0 and r["of_bandwidth"] > 0
    for r in results:  # the reference (NumPy on the CPU) is its own baseline
        if r["impl"] == "numpy":
            assert r["speedup"] == pytest.approx(1.0)
    impls = {r["impl"] for r in results}
    assert ("numba" in impls) == cpu_kernels.use_numba()
    assert ("torch" in impls) == torch_installed()
    assert report["gpu"] is False or report["gpu"] is True
    assert set(report["peaks"]) == {"cpu"} and report["peaks"]["cpu"]["gflops"] > 0


def test_numba_rows_only_where_cpu_kernels_override_the_reference(tiny_report):
    report, _ = tiny_report
    for r in report["results"]:
        if r["impl"] == "numba" and r["op"] == "matmul":
            pytest.fail(f"{r['op']} has no numba kernel, yet a numba row was timed")
    if cpu_kernels.use_numba():
        for op in ("relu", "sigmoid", "softmax", "log_softmax", "batch_norm", "layer_norm"):
            assert any(r["impl"] == "numba" and r["op"] == op for r in report["results"]), op


def test_every_output_carries_the_machine(tiny_report):
    report, paths = tiny_report
    saved = json.loads(paths["json"].read_text())
    for key in ("cpu", "cores", "blas", "numpy", "numba", "torch", "gpu", "date"):
        assert saved["machine"][key] not in (None, "")
    assert len(saved["results"]) == len(report["results"])
    text = paths["markdown"].read_text()
    assert text.startswith("Machine: ") and report["machine"]["blas"] in text
    assert "| op " in text and "vs reference" in text
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _relu_case():
    return catalog.relu_cases([5000], "float32", ["cpu"])[0]


def test_a_wrong_implementation_is_reported_and_never_timed():
    case = _relu_case()
    calls = {"wrong": 0, "close": 0}

    def wrong(inputs):
        def run():  # forgets to clamp: returns x itself
            calls["wrong"] += 1
            return (inputs[0].copy(),)
        return run

    def close(inputs):
        def run():  # right but for one element, off by 1e-3 of the scale
            calls["close"] += 1
            y = np.maximum(inputs[0], 0)
            y[7] += np.float32(1e-3) * np.abs(y).max()
            return (y,)
        return run

    def raises(inputs):
        def run():
            raise RuntimeError("kernel exploded")
        return run

    case.impls += [Impl("wrong", "cpu", wrong), Impl("close", "cpu", close), Impl("raises", "cpu", raises),
                   Impl("shape", "cpu", lambda inputs: lambda: (inputs[0][:10],))]
    results = {r["impl"]: r for r in ops.run_case(case, repeat=3, min_sample=1e-4)}
    assert results["numpy"]["status"] == "ok" and len(results["numpy"]["samples"]) == 3
    assert results["wrong"]["status"] == "wrong" and "relative error" in results["wrong"]["error"]
    assert results["close"]["status"] == "wrong"
    assert results["raises"]["status"] == "failed" and "kernel exploded" in results["raises"]["error"]
    assert results["shape"]["status"] == "wrong" and "shape" in results["shape"]["error"]
    for name in ("wrong", "close", "raises", "shape"):
        assert "median" not in results[name] and "speedup" not in results[name]
    assert calls == {"wrong": 1, "close": 1}  # run once for the check, never for timing
    rows = ops.result_rows(list(results.values()))
    assert any("WRONG" in row[5] for row in rows) and any("FAILED" in row[5] for row in rows)


def test_check_compares_shapes_values_nans_and_integers():
    x = np.array([1.0, -2.0, np.nan], np.float32)
    assert ops.check((x.copy(),), (x,), 1e-6) is None
    assert "NaN" in ops.check((np.nan_to_num(x),), (x,), 1e-6)
    assert "relative error" in ops.check((x + np.float32(0.1),), (x,), 1e-6)
    assert ops.check((x + np.float32(1e-7),), (x,), 1e-6) is None
    assert "shape" in ops.check((x[:2],), (x,), 1e-6)
    i = np.array([3, 1, 2], np.int32)
    assert ops.check((i.astype(np.int64),), (i,), 0) is None   # argmax: int64 (torch) vs int32 (ours)
    assert "integers differ" in ops.check((i[::-1],), (i,), 0)
    assert ops.check((), (x,), 1e-6) is not None
    assert ops.check((x, x), (x,), 1e-6) is not None


def test_sweep_fits_and_crossover_on_synthetic_timings():
    """CPU: 1 us + w / 1e10 per call; GPU: 20 us + w / 1e12.  The GPU wins from
    w > 19e-6 / (1e-10 - 1e-12) = 1.9e5, i.e. from the size whose work is 1e6."""
    results = []
    for k in range(3, 9):
        w = 10.0 ** k
        for device, fixed, rate in (("cpu", 1e-6, 1e10), ("cuda", 20e-6, 1e12)):
            results.append({"op": "matmul", "pass": "fwd", "size": k, "device": device, "impl": "x",
                            "flops": w, "bytes": w, "median": fixed + w / rate})
    (analysis,) = ops.crossover(results)
    assert analysis["crossover"] == 6
    assert analysis["fit_gpu"]["fixed_s"] == pytest.approx(20e-6, rel=1e-6)
    assert analysis["fit_gpu"]["rate"] == pytest.approx(1e12, rel=1e-6)
    assert analysis["fit_cpu"]["fixed_s"] == pytest.approx(1e-6, rel=1e-6)
    lines = ops.crossover_lines([analysis], gpu=True)
    assert "from size 6" in lines[0] and "GPU fixed 20 us" in lines[0]


def test_crossover_needs_the_gpu_to_stay_ahead():
    """A GPU that wins once by luck and then loses again has no crossover there."""
    times = {1: (2.0, 1.0), 2: (1.0, 2.0), 3: (3.0, 1.0), 4: (5.0, 1.0)}  # size: (cpu, gpu)
    results = [{"op": "relu", "pass": "fwd", "size": s, "device": d, "impl": "x", "flops": s, "bytes": s,
                "median": t} for s, pair in times.items() for d, t in zip(("cpu", "cuda"), pair)]
    (analysis,) = ops.crossover(results)
    assert analysis["crossover"] == 3


def test_tiny_sweep_without_a_gpu_says_so(tmp_path):
    report = ops.main(["--preset", "tiny", "--sweep", "--no-cases", "--op", "relu", "matmul", "--device", "cpu",
                       "--json", str(tmp_path / "s.json")])
    assert report["results"] == [] and {r["op"] for r in report["sweep"]} == {"relu", "matmul"}
    mine = [a for a in report["crossover"] if a["who"] == "minigrad"]
    assert {a["op"] for a in mine} == {"relu", "matmul"}
    for a in mine:
        assert a["crossover"] is None and not a["measured_both"] and a["fit_cpu"] is not None
    assert any(k.startswith("cpu:") for k in report["launch_overhead"])
    assert "No CUDA GPU here" in ops.crossover_lines(report["crossover"], gpu=False)[0]


def test_size_option_picks_the_sizes():
    report = ops.main(["--preset", "tiny", "--op", "relu", "--size", "3000", "--device", "cpu"])
    assert {r["size"] for r in report["results"]} == {3000}


@NEEDS_EMULATOR
def test_gpu_rows_wiring_with_the_emulator_standing_in(monkeypatch):
    """No GPU here: the GPU rows' code runs with the CUDA C emulator standing in for the device
    (NumPy arrays instead of CuPy, the host clock instead of CUDA events).  Only a test does
    this; the lab itself never times the emulator."""
    monkeypatch.setattr(catalog, "cuda_usable", lambda: True)
    monkeypatch.setattr(catalog, "_to_cupy", lambda inputs: inputs)
    monkeypatch.setattr(catalog, "cupy_clock", catalog.cpu_clock)
    from minigrad.backend import cuda as cuda_kernels

    before = cuda_kernels.get_matmul()
    cases = catalog.matmul_cases([(5, 7, 3)], "float32", ["cuda"]) + catalog.relu_cases([300], "float32", ["cuda"])
    for case in cases:
        results = {r["impl"]: r for r in ops.run_case(case, repeat=1, min_sample=0)}
        expected = {"cupy", "cuda:naive", "cuda:tiled", "cuda:regblock"} if case.op == "matmul" else {"cupy", "cuda"}
        assert set(results) == expected
        assert all(r["status"] == "ok" and r["device"] == "cuda" for r in results.values()), results
    assert cuda_kernels.get_matmul() == before  # each rung's choice is undone after its call


def test_train_tiny_runs_every_workload(tmp_path):
    path = tmp_path / "train.json"
    report = train.main(["--images", "256", "--batch", "64", "--repeat", "1", "--device", "cpu",
                         "--json", str(path)])
    got = {(r["workload"], r["impl"]) for r in report["results"]}
    want = {("mlp", "minigrad"), ("mlp", "numpy by hand"), ("cnn", "minigrad"), ("gpt", "minigrad"),
            ("rnn", "minigrad"), ("loader", "minigrad DataLoader"), ("loader", "numpy by hand"), ("sample", "minigrad")}
    if torch_installed():
        want |= {("mlp", "pytorch"), ("cnn", "pytorch"), ("gpt", "pytorch"), ("rnn", "pytorch")}
    assert got == want
    for r in report["results"]:
        assert r["median"] > 0 and r["steps"] == 4 and r["images"] == 256
        # a ratio wherever the workload's baseline ran (PyTorch's only when torch is installed)
        if (r["workload"], train.WORKLOADS[r["workload"]].baseline) in got:
            assert r["vs_baseline"] > 0
        else:
            assert "vs_baseline" not in r
    assert json.loads(path.read_text())["machine"]["cpu"]


def test_train_per_layer_takes_a_step_apart():
    report = train.main(["--model", "cnn", "--per-layer", "--batch", "8", "--repeat", "1",
                         "--min-sample", "0.001", "--device", "cpu"])
    parts = [r["part"] for r in report["results"]]
    assert parts[:3] == ["0: Conv2d", "1: ReLU", "2: MaxPool2d"] and len(parts) == 11 + 2
    assert parts[-2:] == ["loss: cross_entropy", "optimizer: Adam step"]
    for r in report["results"]:
        assert r["minigrad_total"] > 0
        assert (r.get("pytorch_total", 0) > 0) == torch_installed()


def test_documented_commands_use_real_options():
    """Every `python -m benchmarks.<module> ...` line in the docs parses with that module's
    own options (so the docs cannot drift from the commands)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    modules = {"ops": ops, "train": train, "gpu_check": gpu_check, "optim_steps": optim_steps}
    found = 0
    for page in (root / "docs" / "benchmarks.md", root / "benchmarks" / "README.md", root / "README.md"):
        for match in re.finditer(r"python -m benchmarks\.(\w+)([^`\n#]*)", page.read_text()):
            args = match.group(2).split()
            modules[match.group(1)].parse_args(args)  # exits (fails the test) on an unknown option
            found += 1
    assert found >= 10


def test_optim_steps_times_every_update_both_ways_and_leaves_numba_as_it_was(monkeypatch):
    monkeypatch.delenv("MINIGRAD_DISABLE_NUMBA", raising=False)
    stats = optim_steps.main(["--repeat", "1", "--min-sample", "0"])
    names = set(optim_steps.OPTIMIZERS)
    assert set(stats) == {"forward + backward"} | {f"{n}, {how}" for n in names for how in ("numba", "NumPy")}
    assert all(s["median"] > 0 for s in stats.values())
    import os

    assert "MINIGRAD_DISABLE_NUMBA" not in os.environ


def test_the_numpy_conv_rows_run_on_the_reference_table():
    from minigrad import backend
    from minigrad.backend import reference

    x = np.zeros(3, np.float32)
    before = backend.kernels(x)
    with catalog.cpu_table("reference"):
        assert backend.kernels(x) is reference
    with catalog.cpu_table("cpu"):
        assert backend.kernels(x) is cpu_kernels
    assert backend.kernels(x) is before


def test_train_compares_thread_settings_on_either_clock():
    from benchmarks.common import blas_threads

    before = blas_threads()
    report = train.main(["--model", "mlp", "--images", "256", "--batch", "128", "--repeat", "1", "--device", "cpu",
                         "--threads", "1", "blas=2,numba=1", "--clock", "process"])
    by_impl = {r["impl"]: r for r in report["results"]}
    assert {"minigrad [threads 1]", "minigrad [threads blas=2,numba=1]"} <= set(by_impl)
    for label, r in by_impl.items():
        spec = label[label.index("[threads"):]
        assert r["median"] > 0
        if f"pytorch {spec}" in by_impl:  # the baseline ran (torch installed): ratios within one setting
            assert r["baseline"] == f"pytorch {spec}"
        else:
            assert "baseline" not in r
    assert blas_threads() == before  # each run puts the pools back as they were


def test_thread_settings_parse_and_restore():
    from benchmarks.common import parse_threads, thread_settings

    assert parse_threads("3") == {"blas": 3, "numba": 3, "torch": 3}
    assert parse_threads("blas=1,numba=2") == {"blas": 1, "numba": 2}
    with pytest.raises(ValueError, match="blas=N"):
        parse_threads("gpu=2")
    import numba

    before = numba.get_num_threads()
    with thread_settings(numba=1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


def test_benchmarks_keep_the_allocator_steady_and_say_so(tiny_report):
    """The lab sets glibc's malloc to keep freed memory (no page-fault storms from one
    contender's allocations landing on the next) and writes that into the machine details."""
    import platform

    report, _ = tiny_report
    if platform.libc_ver()[0] == "glibc":
        assert report["machine"]["allocator"].startswith("glibc malloc: mmap threshold 256 MB")
    else:
        assert report["machine"]["allocator"] == "as the process started"
