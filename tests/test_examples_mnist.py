"""The MNIST examples end to end.

The slow tests train with each example's defaults on real MNIST and assert the accuracy the
project promises (MLP >= 97.5%, CNN >= 99.0%); they skip when real MNIST is not available.
The quick test runs the whole command-line path (train, save, plot, predict) on small
generated IDX files."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.helpers import real_mnist_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(script, *args, data=None, timeout=1500, **env_vars):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **env_vars)
    if data is not None:
        env["MINIGRAD_DATA"] = str(data)
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--no-progress", *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def final_accuracy(output):
    match = re.search(r"test accuracy: ([0-9.]+)", output)
    assert match, f"no final accuracy in the output:\n{output[-2000:]}"
    return float(match.group(1))


@pytest.mark.slow
@pytest.mark.skipif(real_mnist_dir() is None, reason="real MNIST not found in $MINIGRAD_DATA or the cache (run an example once to download it)")
def test_mlp_example_reaches_97_5_percent():
    out = run_example("mnist_mlp.py", data=real_mnist_dir())
    assert final_accuracy(out) >= 0.975, out[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(real_mnist_dir() is None, reason="real MNIST not found in $MINIGRAD_DATA or the cache (run an example once to download it)")
def test_cnn_example_reaches_99_percent():
    out = run_example("mnist_cnn.py", data=real_mnist_dir())
    assert final_accuracy(out) >= 0.990, out[-2000:]


def test_mlp_command_line_trains_saves_plots_and_predicts(tmp_path):
    """The whole command-line path on small generated IDX files (runs without real MNIST)."""
    from tests.idx_files import make_dataset_dir

    make_dataset_dir(tmp_path / "data" / "mnist", n_train=300, n_test=100)
    model, plot = tmp_path / "mlp.npz", tmp_path / "mlp.png"
    out = run_example("mnist_mlp.py", "--epochs", "2", "--batch-size", "50",
                      "--save", str(model), "--plot", str(plot), data=tmp_path / "data")
    assert "epoch 2/2" in out and "confusion matrix" in out and "precision" in out
    accuracy = final_accuracy(out)
    assert 0.0 <= accuracy <= 1.0
    assert model.stat().st_size > 100_000      # 101,770 float32 parameters
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    env = dict(os.environ, MINIGRAD_DATA=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "predict.py"), str(model), "--count", "3"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("predicted") == 3
    # predict.py reloads the saved weights: its accuracy is the training script's final one
    assert f"accuracy on all 100 test images: {accuracy:.4f}" in proc.stdout


def test_readme_example_runs_and_converges():
    """The 10-line example at the top of README.md does what the README says."""
    text = (ROOT / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    loss = float(re.search(r"loss ([0-9.]+)", proc.stdout).group(1))
    assert loss < 0.01
    assert "Linear" in proc.stdout and "Tanh" in proc.stdout and "Mean" in proc.stdout


def _epoch_numbers(output):
    match = re.search(r"epoch 1/1  train loss ([0-9.]+) acc ([0-9.]+)  test loss ([0-9.]+) acc ([0-9.]+)", output)
    assert match, f"no epoch line in the output:\n{output[-2000:]}"
    return [float(v) for v in match.groups()]


@pytest.mark.parametrize("script", ["mnist_mlp.py", "mnist_cnn.py"])
def test_example_on_the_emulated_gpu_gives_the_cpu_losses(script, tmp_path):
    """``--device cuda`` on the emulated device (MINIGRAD_CUDA_EMULATOR=1: every kernel is the
    project's CUDA C, run by the emulator) for three steps gives the CPU's numbers.  Bound: the
    epoch line prints 4 decimals (each value off by up to 5e-5 from rounding), and float32
    kernels that add in another order differ by a few 1e-7 after three Adam steps, so the
    losses agree to 2e-4; an accuracy may move by one image of the 64 test images."""
    from minigrad.backend.cuda import emulator
    from tests.idx_files import make_dataset_dir

    if not emulator.available():
        pytest.skip(f"the CUDA emulator cannot run here: {emulator.available()}")
    make_dataset_dir(tmp_path / "data" / "mnist", n_train=96, n_test=64)
    args = ("--epochs", "1", "--batch-size", "32", "--limit", "96")
    cpu = _epoch_numbers(run_example(script, *args, data=tmp_path / "data", MINIGRAD_CUDA_EMULATOR="0"))
    cuda = _epoch_numbers(run_example(script, *args, "--device", "cuda", data=tmp_path / "data",
                                      MINIGRAD_CUDA_EMULATOR="1"))
    print(script, "cpu", cpu, "emulated cuda", cuda)
    for (name, a, b) in zip(("train loss", "train acc", "test loss", "test acc"), cpu, cuda):
        tolerance = 2e-4 if "loss" in name else 1 / 64 + 1e-9
        assert abs(a - b) <= tolerance, f"{script}: {name} {a} on the CPU, {b} on the emulated GPU"
