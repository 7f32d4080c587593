"""examples/mnist_rnn.py end to end: the slow test trains the default bidirectional LSTM on real
MNIST and asserts the accuracy the example promises (>= 98.5%; it skips without real MNIST);
the quick tests run the command-line path (train, save, plot, predict) on small generated IDX
files for each cell."""
import os
import subprocess
import sys

import pytest

from tests.helpers import real_mnist_dir
from tests.test_examples_mnist import EXAMPLES, ROOT, final_accuracy, run_example


@pytest.mark.slow
@pytest.mark.skipif(real_mnist_dir() is None,
                    reason="real MNIST not found in $MINIGRAD_DATA or the cache (run an example once to download it)")
def test_lstm_example_reaches_98_5_percent():
    out = run_example("mnist_rnn.py", data=real_mnist_dir(), timeout=4 * 3600)
    assert "LSTM(28, 128, batch_first=True, bidirectional=True)" in out
    assert final_accuracy(out) >= 0.985, out[-2000:]


def test_lstm_command_line_trains_saves_plots_and_predicts(tmp_path):
    from tests.idx_files import make_dataset_dir

    make_dataset_dir(tmp_path / "data" / "mnist", n_train=200, n_test=100)
    model, plot = tmp_path / "lstm.npz", tmp_path / "lstm.png"
    out = run_example("mnist_rnn.py", "--epochs", "2", "--batch-size", "50", "--save", str(model),
                      "--plot", str(plot), data=tmp_path / "data")
    assert "epoch 2/2" in out and "confusion matrix" in out and "precision" in out
    accuracy = final_accuracy(out)
    assert model.stat().st_size > 164_362 * 4     # the BiLSTM's float32 parameters
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    env = dict(os.environ, MINIGRAD_DATA=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "predict.py"), str(model), "--count", "2"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"accuracy on all 100 test images: {accuracy:.4f}" in proc.stdout  # the saved weights reload


@pytest.mark.parametrize("cell, layer", [("gru", "GRU(28, 128"), ("rnn", "RNN(28, 128")])
def test_other_cells_train_a_few_steps(tmp_path, cell, layer):
    from tests.idx_files import make_dataset_dir

    make_dataset_dir(tmp_path / "data" / "mnist", n_train=100, n_test=50)
    out = run_example("mnist_rnn.py", "--cell", cell, "--epochs", "1", "--batch-size", "50", data=tmp_path / "data")
    assert layer in out and "epoch 1/1" in out
    assert 0.0 <= final_accuracy(out) <= 1.0
