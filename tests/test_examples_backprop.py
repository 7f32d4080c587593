"""examples/backprop_by_hand.py runs, agrees with autograd, and prints the worked numbers."""
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_backprop_by_hand_example_runs_and_prints_the_numbers():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "backprop_by_hand.py")],
                            capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # forward: z = [0.2, -0.3, 1.0] (unit 2 dead), y = 0.47, L = (0.47 - 1)^2 = 0.2809
    assert re.search(r"z = xW1 \+ b1\s+= \[\[ 0\.2, -0\.3,  1\. \]\]", out)
    assert re.search(r"y = hW2 \+ b2\s+= \[\[0\.47\]\]", out)
    assert re.search(r"L = \(y - t\)\^2\s+= 0\.2809", out)
    # backward: dL/dy = 2 (y - t) = -1.06; dL/dW2 = h * dL/dy; the dead unit's column is 0
    assert re.search(r"dL/dy\s+= \[\[-1\.06\]\]", out)
    assert re.search(r"dL/dW2\s+= \[-0\.212,  0\.   , -1\.06 \]\s+= h\^T", out)
    assert re.search(r"dL/db1\s+= \[-0\.636,  0\.   , -0\.318\]\s+matches", out)
    assert "all gradients agree" in out and "MISMATCH" not in out
    # the tape listing and the SGD step
    assert re.search(r"#\d+\s+ReLU\s+\(1, 3\) #\d+ -> \(1, 3\)", out)
    # explain narrates autograd's own backward: the ReLU gate, and the leaves' gradients
    assert "(elementwise: the Jacobian's diagonal)" in out
    assert re.search(r"local\s+d#\d+/d#\d+ = \[\[1\., 0\., 1\.\]\]", out)
    assert re.search(r"b1\.grad = \[-0\.636,  0\.   , -0\.318\]", out)
    assert re.search(r"new b2\s+= \[0\.156\]", out)  # 0.05 - 0.1 * (-1.06)
    assert re.search(r"new W1\s+= \[\[ 0\.5636, -0\.3   ,  0\.4318\]", out)
