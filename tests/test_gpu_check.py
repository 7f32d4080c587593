"""benchmarks.gpu_check without a GPU: its arguments, the exit without a device, the reports,
the run of items in processes of their own with time budgets, and each item's logic.

The items run here on a stand-in device: the CPU, where the CUDA kernel table runs the
project's CUDA C in the emulator (so the kernels the GPU run times are the ones checked
here), and speeds come from synthetic timings where a verdict is tested (no timed tests).
The last test runs the whole tiny preset on the emulated CUDA device
(MINIGRAD_CUDA_EMULATOR=1) when this checkout has one.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import minigrad as mg
from benchmarks import gpu_check, train
from benchmarks.common import cpu_clock

REPO = Path(__file__).resolve().parent.parent


def _ctx(tmp_path, preset=gpu_check.TINY, name="cpu", torch=None, data=None, seconds=300):
    device = gpu_check.Device(name, np, cpu_clock, torch)
    return gpu_check.Context(preset, device, data, tmp_path, time.monotonic() + seconds)


def _stats(**medians):
    """What common.measure returns, with these medians (seconds)."""
    return {name: {"median": m, "spread": 0.01, "inner": 1} for name, m in medians.items()}


def _fake_measure(monkeypatch, **medians):
    monkeypatch.setattr(gpu_check, "measure", lambda calls, *a, **k: _stats(**{n: medians[n] for n in calls}))


def _mnist_or_skip():
    from minigrad.data import MNIST

    try:
        MNIST(train=False, download=False)
    except Exception as e:
        pytest.skip(f"real MNIST is not here ({type(e).__name__}); set MINIGRAD_DATA")


# ----------------------------------------------------------------------------------------
# The command line
def test_list_names_every_item_with_its_target_and_budget(capsys):
    assert gpu_check.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name, item in gpu_check.ITEMS.items():
        assert name in out and item.target in out
    assert "budget 60 s (full)" in out


def test_out_is_required_and_items_are_checked(capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main([])
    assert exit_.value.code == 2 and "--out DIR is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--out", "x", "--only", "nonsense"])
    args = gpu_check.parse_args(["--out", "x", "--preset", "tiny", "--only", "sgemm", "tests"])
    assert args.preset == "tiny" and args.only == ["sgemm", "tests"] and args.out == Path("x")


def test_presets_cover_every_item():
    for preset in gpu_check.PRESETS.values():
        assert set(preset.budgets) == set(gpu_check.ITEMS)
        assert set(preset.examples) == {"mlp", "cnn"}
    full = gpu_check.FULL
    assert full.judge_speed and full.deadline <= 8 * 60 - 30  # 8 minutes of GPU time, with room to start (docs/benchmarks.md)
    assert (full.gemm_n, full.elementwise_n, full.xent_shape) == (4096, 1 << 26, (65536, 1000))
    assert full.mlp_batches == (32, 128) and full.cnn_batch == 128


def test_without_a_device_it_exits_2_saying_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mg.cuda, "is_available", lambda: False)
    monkeypatch.setattr(mg.cuda, "status", lambda: "no CUDA GPU found: the test says so")
    assert gpu_check.main(["--out", str(tmp_path)]) == gpu_check.EXIT_NO_DEVICE == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "the test says so" in err
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["no_device"] == "no CUDA GPU found: the test says so" and report["items"] == []
    assert "No CUDA device" in (tmp_path / "gpu-check.md").read_text()
    assert gpu_check.main(["--out", str(tmp_path), "--preset", "tiny"]) == 2
    assert "MINIGRAD_CUDA_EMULATOR=1" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None,
                    reason="CuPy is installed: on a GPU the command would run every item")
def test_the_command_exits_2_without_a_device(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MINIGRAD_CUDA_EMULATOR"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no CUDA device" in proc.stderr
    assert (tmp_path / "gpu-check.json").exists() and (tmp_path / "gpu-check.md").exists()


# ----------------------------------------------------------------------------------------
# The run: items in order, budgets, the deadline, a report after every item
class _Clock:
    now = 1000.0

    @classmethod
    def monotonic(cls):
        return cls.now


def test_items_run_in_order_within_the_deadline(tmp_path, monkeypatch):
    _Clock.now = 1000.0
    monkeypatch.setattr(mg.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_check, "device_details", lambda: {"gpu_memory_gib": 80.0, "nvrtc": "13.0"})
    monkeypatch.setattr(gpu_check, "time", _Clock)
    ran = []

    def fake_run_item(name, preset, data, logs, budget):
        ran.append((name, budget))
        assert (logs / "..").resolve() == tmp_path.resolve()
        _Clock.now += budget  # every item takes its whole budget
        status = gpu_check.FAIL if name == "elementwise" else gpu_check.PASS
        return {"name": name, "title": "t", "target": "x", "seconds": budget, "budget_s": budget,
                **gpu_check.result(status, f"{name} done")}

    monkeypatch.setattr(gpu_check, "run_item", fake_run_item)
    code = gpu_check.main(["--out", str(tmp_path), "--deadline", "100"])
    assert code == 1  # an item failed
    # sgemm takes its 60 s, elementwise gets what is left of 100 s less 5 for the report
    assert ran == [("sgemm", 60), ("elementwise", 35)]
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    statuses = {i["name"]: i["status"] for i in report["items"]}
    assert statuses == {"sgemm": "pass", "elementwise": "fail",
                        **{name: "skip" for name in list(gpu_check.ITEMS)[2:]}}
    assert all("not started" in i["summary"] for i in report["items"][2:])
    assert report["verdict"] == f"1 passed, 1 failed, {len(gpu_check.ITEMS) - 2} skipped"
    text = (tmp_path / "gpu-check.md").read_text()
    assert "| sgemm" in text and "FAIL" in text and "memory 80.0 GiB" in text


def test_only_runs_the_items_named(tmp_path, monkeypatch):
    monkeypatch.setattr(mg.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_check, "device_details", lambda: {})
    monkeypatch.setattr(gpu_check, "run_item", lambda name, *a: {
        "name": name, "title": "t", "target": "x", "seconds": 1.0, **gpu_check.result(gpu_check.PASS, "ok")})
    assert gpu_check.main(["--out", str(tmp_path), "--only", "tests", "sgemm"]) == 0
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert [i["name"] for i in report["items"]] == ["tests", "sgemm"]


def test_run_item_reports_a_crash_and_a_timeout(tmp_path, monkeypatch):
    outcomes = iter([(None, "started\n"), (1, "Traceback ...\nRuntimeError: cudaErrorIllegalAddress\n")])
    monkeypatch.setattr(gpu_check, "run_process", lambda cmd, timeout, log, env=None: next(outcomes))
    hung = gpu_check.run_item("sgemm", gpu_check.TINY, None, tmp_path, 12.0)
    assert hung["status"] == "fail" and "did not finish within its budget of 12 s" in hung["summary"]
    crashed = gpu_check.run_item("sgemm", gpu_check.TINY, None, tmp_path, 12.0)
    assert crashed["status"] == "fail" and "status 1" in crashed["summary"]
    assert "cudaErrorIllegalAddress" in crashed["summary"]


def test_run_item_runs_the_item_in_a_process_of_its_own(tmp_path):
    """The real path: a child process runs the item on this machine's CUDA device."""
    found = gpu_check.run_item("cross_entropy", gpu_check.TINY, None, tmp_path, 240.0)
    assert (tmp_path / "cross_entropy.json").exists() and (tmp_path / "cross_entropy.log").exists()
    assert found["name"] == "cross_entropy" and 0 < found["seconds"] < 240
    if mg.cuda.is_available():  # the GPU, or the emulated device: it runs (no baseline at this size)
        assert found["status"] in ("pass", "skip"), found
    else:
        assert found["status"] == "fail" and "NoCUDAError" in found["summary"], found


def test_item_process_writes_its_result_even_when_the_item_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "real_device", lambda: gpu_check.Device("cpu", np, cpu_clock))
    monkeypatch.setitem(gpu_check.ITEMS, "sgemm", gpu_check.Item(lambda ctx: 1 / 0, "t", "x"))
    until = str(time.monotonic() + 7)
    args = gpu_check.parse_args(["--item", "sgemm", "--preset", "tiny", "--logs", str(tmp_path), "--until", until])
    gpu_check.item_main(args)
    found = json.loads((tmp_path / "sgemm.json").read_text())
    assert found["status"] == "fail" and found["summary"].startswith("ZeroDivisionError")
    monkeypatch.setitem(gpu_check.ITEMS, "sgemm",
                        gpu_check.Item(lambda ctx: gpu_check.result("pass", f"{ctx.left():.0f} s left"), "t", "x"))
    gpu_check.item_main(args)
    assert json.loads((tmp_path / "sgemm.json").read_text())["summary"] in ("5 s left", "4 s left")


def _gone(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" in f.read()
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_run_process_kills_what_it_started_at_the_budget(tmp_path):
    script = ("import subprocess, sys, time\n"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              "print('started', p.pid, 'and waits', flush=True)\n"
              "time.sleep(60)\n")
    start = time.monotonic()
    code, output = gpu_check.run_process([sys.executable, "-c", script], 3, tmp_path / "log.txt")
    assert code is None and time.monotonic() - start < 30
    pid = int(re.search(r"^started (\d+) and waits$", output, re.M).group(1))
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid)
    code, output = gpu_check.run_process([sys.executable, "-c", "print('fine')"], 30, tmp_path / "log2.txt")
    assert code == 0 and "fine" in output and output.startswith("$ ")


def test_children_find_the_repository_and_carried_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "CARRIED", tmp_path)
    (tmp_path / "site").mkdir()
    env = gpu_check.child_env("/data/here")
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert paths[:2] == [str(gpu_check.REPO), str(tmp_path / "site")] and env["MINIGRAD_DATA"] == "/data/here"


# ----------------------------------------------------------------------------------------
# The report
def test_report_names_the_machine_and_every_item(tmp_path):
    items = [{"name": n, "title": f"title {n}", "target": f"target {n}", "seconds": 3.0,
              **gpu_check.result(s, f"summary of {n} | with a bar", number=1.5)}
             for n, s in (("sgemm", "pass"), ("elementwise", "fail"), ("cuda_graph", "skip"))]
    report = {"preset": "full", "date": "2026-12-06T10:00:00+00:00", "command": "python -m benchmarks.gpu_check --out x",
              "machine": {"cpu": "CPU", "cores": 16, "simd": "avx2", "caches": "L3 32M", "blas": "OpenBLAS",
                          "python": "3.12", "numpy": "2", "numba": "0.6", "torch": "2.11", "gpu": "NVIDIA H100",
                          "cupy": "14.2.0", "cuda_runtime": "13.0", "cuda_driver": "13.0", "allocator": "glibc",
                          "date": "2026-12-06T10:00:00+00:00"},
              "device": {"gpu_memory_gib": 79.6, "nvrtc": "13.0", "nvidia_smi": "NVIDIA H100, 580.1",
                         "torch_cuda": "CUDA 12.8, GPU available"},
              "deadline_s": 450.0, "seconds": 321.0, "verdict": gpu_check.verdict(items), "items": items}
    gpu_check.write_report(report, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "gpu-check.json").read_text()) == report
    text = (tmp_path / "out" / "gpu-check.md").read_text()
    for fact in ("2026-12-06T10:00:00", "python -m benchmarks.gpu_check --out x", "NVIDIA H100", "CuPy 14.2.0",
                 "CUDA runtime 13.0", "NVRTC 13.0", "580.1", "CUDA 12.8, GPU available",
                 "1 passed, 1 failed, 1 skipped"):
        assert fact in text, fact
    rows = [line for line in text.splitlines() if line.startswith("| ") and "title" not in line]
    assert [r.split("|")[2].strip() for r in rows[1:]] == ["PASS", "FAIL", "SKIP"]
    assert "summary of sgemm / with a bar" in text  # a | would break the table
    assert text.count("### ") == 3 and '"number": 1.5' in text


# ----------------------------------------------------------------------------------------
# Kernel items, on the CPU through the emulated CUDA C
def test_sgemm_item(tmp_path, monkeypatch):
    found = gpu_check.item_sgemm(_ctx(tmp_path))
    assert found["status"] == "pass" and "not judged" in found["summary"]
    assert set(found["tflops"]) == {"regblock", "cublas"}
    judged = _ctx(tmp_path, _judging())
    for cublas, regblock, status in ((1.0, 1.9, "pass"), (1.0, 2.1, "fail")):
        _fake_measure(monkeypatch, cublas=cublas, regblock=regblock)
        found = gpu_check.item_sgemm(judged)
        assert found["status"] == status and found["fraction"] == pytest.approx(cublas / regblock)


def _judging(preset=gpu_check.TINY, **changes):
    return preset.__class__(**{**vars(preset), "judge_speed": True, **changes})


def test_elementwise_item(tmp_path, monkeypatch):
    found = gpu_check.item_elementwise(_ctx(tmp_path))
    assert found["status"] == "pass" and found["gbs"]["relu"] > 0 and found["gbs"]["copy"] > 0
    for relu, status in ((1.05, "pass"), (1.12, "fail")):  # 95% and 89% of the copy's bandwidth
        _fake_measure(monkeypatch, relu=relu, copy=1.0)
        assert gpu_check.item_elementwise(_ctx(tmp_path, _judging()))["status"] == status


def test_a_wrong_kernel_fails_the_elementwise_item(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "_cuda_kernels", lambda: SimpleNamespace(relu=lambda x: np.abs(x)))
    found = gpu_check.item_elementwise(_ctx(tmp_path))
    assert found["status"] == "fail" and "max(x, 0)" in found["summary"]


def test_cross_entropy_item_baselines(tmp_path, monkeypatch):
    # no PyTorch on the device and not the published shape: nothing to compare with
    found = gpu_check.item_cross_entropy(_ctx(tmp_path))
    assert found["status"] == "skip" and "no baseline" in found["summary"]
    # the published time when the shape is the published one
    monkeypatch.setitem(gpu_check.PUBLISHED_XENT, "shape", gpu_check.TINY.xent_shape)
    _fake_measure(monkeypatch, minigrad=0.9e-3)
    found = gpu_check.item_cross_entropy(_ctx(tmp_path, _judging()))
    assert found["status"] == "pass" and found["baseline_s"] == 0.96e-3 and "published" in found["baseline"]
    _fake_measure(monkeypatch, minigrad=1.0e-3)
    assert gpu_check.item_cross_entropy(_ctx(tmp_path, _judging()))["status"] == "fail"


@pytest.mark.torch
def test_cross_entropy_item_against_pytorch(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    found = gpu_check.item_cross_entropy(_ctx(tmp_path, torch="cpu"))
    assert found["status"] == "pass" and found["baseline"] == "PyTorch on cpu in this run"
    _fake_measure(monkeypatch, minigrad=1.1, pytorch=1.0)
    found = gpu_check.item_cross_entropy(_ctx(tmp_path, _judging(), torch="cpu"))
    assert found["status"] == "fail" and found["ratio"] == pytest.approx(1.1)


def test_a_wrong_gradient_fails_the_cross_entropy_item(tmp_path, monkeypatch):
    true_grad = gpu_check._softmax_xent_grad
    monkeypatch.setattr(gpu_check, "_softmax_xent_grad", lambda x, t: 2 * true_grad(x, t))
    found = gpu_check.item_cross_entropy(_ctx(tmp_path))
    assert found["status"] == "fail" and "gradient" in found["summary"]


def test_cuda_graph_item_needs_stream_capture(tmp_path):
    found = gpu_check.item_cuda_graph(_ctx(tmp_path))
    assert found["status"] == "skip" and "stream capture" in found["summary"]


def test_largest_difference_between_models():
    from minigrad import nn

    mg.manual_seed(0)
    a = nn.Linear(3, 2)
    mg.manual_seed(0)
    b = nn.Linear(3, 2)
    assert gpu_check.largest_difference(a, b) == 0.0
    a.weight.array[0, 0] += 1e-3
    expected = 1e-3 / float(np.max(np.abs(b.weight.numpy())))  # relative to the parameter's largest value
    assert gpu_check.largest_difference(a, b) == pytest.approx(expected, rel=1e-3)


# ----------------------------------------------------------------------------------------
# Training speed
def _rows(minigrad, pytorch=None, batch=32):
    rows = [{"impl": "minigrad", "median": minigrad, "step_ms": minigrad * 1e3, "batch": batch}]
    if pytorch is not None:
        rows.append({"impl": "pytorch", "median": pytorch, "step_ms": pytorch * 1e3, "batch": batch})
    for r in rows:
        r.update(per_unit=r["median"], unit="epoch", samples_per_s=1.0, spread=0.0, images=64, data="x")
    return rows


@pytest.mark.parametrize("item, limit", [(gpu_check.item_train_mlp, 1.0), (gpu_check.item_train_cnn, 1.5)])
def test_train_items_judge_against_pytorch(tmp_path, monkeypatch, item, limit):
    preset = _judging(mlp_batches=(32, 128))
    for ratio, status in ((limit * 0.95, "pass"), (limit * 1.05, "fail")):
        monkeypatch.setattr(train, "run_workload", lambda name, w, batch, *a, r=ratio: _rows(r, 1.0, batch))
        found = item(_ctx(tmp_path, preset))
        assert found["status"] == status and found["worst_ratio"] == pytest.approx(ratio)
        assert found["target_ratio"] == limit
    monkeypatch.setattr(train, "run_workload", lambda name, w, batch, *a: _rows(0.5, None, batch))
    found = item(_ctx(tmp_path, preset))
    assert found["status"] == "skip" and "no PyTorch on cpu" in found["summary"]


def test_train_item_runs_the_benchmark_workload(tmp_path, monkeypatch):
    calls = []
    real = train.run_workload

    def recorded(name, workload, batch, images, device, repeat):
        calls.append((name, batch, images, device, repeat))
        return real(name, workload, batch, images, device, 1)

    monkeypatch.setattr(train, "run_workload", recorded)
    monkeypatch.setattr(train, "_torch_on", lambda device: False)
    found = gpu_check.item_train_cnn(_ctx(tmp_path))
    assert calls == [("cnn", 8, 16, "cpu", gpu_check.TINY.repeat)]
    assert found["status"] == "skip" and [r["impl"] for r in found["rows"]] == ["minigrad"]


# ----------------------------------------------------------------------------------------
# The examples
GOOD = "epoch 1/1  train loss 0.29 acc 0.92  test loss 0.16 acc {acc}  (2.3 s)\n...\ntest accuracy: {acc}\n"


def test_example_outcome():
    assert gpu_check.example_outcome(0, GOOD.format(acc="0.9490")) == (0.949, 2.3)
    assert gpu_check.example_outcome(None, "") == "ran out of its time budget"
    failed = gpu_check.example_outcome(1, "Traceback\nNoCUDAError: device 'cuda': no GPU\n")
    assert failed.startswith("exit status 1") and "NoCUDAError" in failed


def test_example_item_compares_the_device_with_the_cpu(tmp_path, monkeypatch):
    _mnist_or_skip()
    runs = []

    def fake(cmd, timeout, log, env=None):
        runs.append(cmd)
        return 0, GOOD.format(acc="0.9600" if cmd[-1] == "cuda" else accuracy_on_cpu)

    monkeypatch.setattr(gpu_check, "run_process", fake)
    ctx = _ctx(tmp_path, gpu_check.FULL, name="cuda")
    for accuracy_on_cpu, status in (("0.9500", "pass"), ("0.9400", "fail")):  # 1.0 and 2.0 points apart
        found = gpu_check.item_mnist_mlp(ctx)
        assert found["status"] == status and found["cpu_accuracy"] == float(accuracy_on_cpu)
    assert [cmd[-1] for cmd in runs] == ["cuda", "cpu"] * 2
    assert str(runs[0][1]).endswith("examples/mnist_mlp.py") and runs[0][2:4] == ["--epochs", "1"]
    monkeypatch.setattr(gpu_check, "run_process", lambda *a, **k: (None, ""))
    found = gpu_check.item_mnist_cnn(ctx)
    assert found["status"] == "fail" and "--device cuda: ran out of its time budget" in found["summary"]


def test_example_item_runs_the_example(tmp_path):
    """The tiny preset's path for real: a small MNIST, one epoch of the MLP example."""
    _mnist_or_skip()
    found = gpu_check.item_mnist_mlp(_ctx(tmp_path))
    assert found["status"] == "pass", found
    assert 0 <= found["accuracy"] <= 1 and found["accuracy"] == found["cpu_accuracy"]  # the same run twice
    assert (tmp_path / "mnist_mlp_cpu.log").exists()


def test_mnist_subset_is_an_mnist(tmp_path):
    _mnist_or_skip()
    from minigrad.data import MNIST

    folder = gpu_check.mnist_subset(None, tmp_path / "small", 20, 10)
    full, small = MNIST(train=True, download=False), MNIST(folder, train=True, download=False)
    assert len(small) == 20 and len(MNIST(folder, train=False, download=False)) == 10
    assert np.array_equal(small.data.numpy(), full.data.numpy()[:20])
    assert np.array_equal(small.targets.numpy(), full.targets.numpy()[:20])


# ----------------------------------------------------------------------------------------
# The tests
PYTEST_OUTPUT = """collecting ... collected 10 items / 4 deselected / 6 selected

tests/test_a.py::test_x[cuda] PASSED [ 16%]
tests/test_a.py::test_y[cuda] FAILED [ 33%]
tests/test_b.py::test_z[cuda-float32] SKIPPED [ 50%]
tests/test_b.py::test_w[cuda] ERROR [ 66%]
"""
SUMMARY = """=================== skipped, by reason ===================

     1  no CUDA GPU (or CuPy) on this machine
================ 1 failed, 1 passed, 1 skipped, 1 error in 2.00s ================
"""


def test_test_outcome_of_a_complete_and_a_cut_run():
    complete = gpu_check.test_outcome(1, PYTEST_OUTPUT + SUMMARY)
    assert complete["counts"] == {"passed": 1, "failed": 1, "skipped": 1, "error": 1}
    assert complete["selected"] == 6 and complete["ran"] == 4 and complete["finished"]
    assert complete["failed"] == ["tests/test_a.py::test_y[cuda]", "tests/test_b.py::test_w[cuda]"]
    assert complete["skip_reasons"] == {"no CUDA GPU (or CuPy) on this machine": 1}
    cut = gpu_check.test_outcome(None, PYTEST_OUTPUT.split("tests/test_b")[0])
    assert cut["ran"] == 2 and not cut["finished"] and cut["skip_reasons"] == {}


def test_tests_item_verdicts(tmp_path, monkeypatch):
    outputs = {}
    monkeypatch.setattr(gpu_check, "run_process", lambda cmd, timeout, log, env=None: outputs["now"])
    ctx, gpu = _ctx(tmp_path), _ctx(tmp_path, name="cuda")
    outputs["now"] = (1, PYTEST_OUTPUT + SUMMARY)
    found = gpu_check.item_tests(ctx)
    assert found["status"] == "fail" and "test_y[cuda]" in found["summary"]
    clean = PYTEST_OUTPUT.replace("FAILED", "PASSED").replace("ERROR", "PASSED")
    outputs["now"] = (0, clean + SUMMARY)
    assert gpu_check.item_tests(ctx)["status"] == "pass"
    found = gpu_check.item_tests(gpu)  # on a GPU, "no CUDA GPU" skips mean the tests were blind
    assert found["status"] == "fail" and "did not see the device" in found["summary"]
    outputs["now"] = (None, clean.split("tests/test_b")[0])
    found = gpu_check.item_tests(gpu)
    assert found["status"] == "pass" and "2 passed of 6 selected (stopped at the time budget)" in found["summary"]
    outputs["now"] = (4, "ERROR: file or directory not found: tests/nothing.py\n")
    assert gpu_check.item_tests(ctx)["status"] == "fail"


def test_test_files_put_the_core_first():
    files = gpu_check.test_files(gpu_check.FULL)
    assert files[:len(gpu_check.CORE_TESTS)] == list(gpu_check.CORE_TESTS)
    assert len(files) == len(set(files)) and all((REPO / f).exists() for f in files)
    assert "tests/test_gpu_check.py" in files and "tests/test_cuda_sources.py" not in files
    assert gpu_check.test_files(gpu_check.TINY) == list(gpu_check.TINY.test_files)


def test_tests_item_runs_pytest(tmp_path):
    found = gpu_check.item_tests(_ctx(tmp_path))
    assert found["finished"] and found["selected"] == found["ran"] > 0, found
    assert found["status"] == "pass"
    assert "-k" in (tmp_path / "pytest.log").read_text().splitlines()[0]


# ----------------------------------------------------------------------------------------
# The whole tiny preset on the emulated device
@pytest.mark.slow
def test_tiny_preset_on_the_emulated_device(tmp_path):
    env = dict(os.environ, MINIGRAD_CUDA_EMULATOR="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--preset", "tiny", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode == 2 and "no CUDA device" in proc.stderr:
        pytest.skip(f"this checkout has no emulated CUDA device: {proc.stderr.strip()[-200:]}")
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    statuses = {i["name"]: (i["status"], i["summary"]) for i in report["items"]}
    assert proc.returncode == 0, statuses
    for name in ("sgemm", "elementwise", "mnist_mlp", "mnist_cnn", "tests"):
        assert statuses[name][0] == "pass", statuses[name]
