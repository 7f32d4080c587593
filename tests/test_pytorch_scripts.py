"""PyTorch scripts run on minigrad with only their import lines changed.

tests/pytorch_scripts/ holds PyTorch scripts of the kinds users bring, written as PyTorch code:
pytorch/examples' MNIST main.py style, the "Learning PyTorch with Examples" polynomial fits
(with the custom autograd.Function LegendrePolynomial3), a nanoGPT-style model with a small
training loop, micrograd-style autograd checks, and a CNN + BatchNorm loop with checkpoints.

Each test rewrites the script's import lines by the rule in the README (``torch`` ->
``minigrad``, ``torchvision`` -> ``minigrad.vision``, aliases kept; nothing else changes, and
a test checks that), runs it (a short run, in a subprocess, in a temporary folder) and requires
it to succeed: every script checks itself (gradients against differences, a resumed run against
an uninterrupted one, the loss going down).  Where PyTorch is installed the original script runs
under PyTorch too, from the same starting weights (the minigrad run saves them with
--save-init, converted to a .pt file for the PyTorch run's --init) on the same data, and the
results must agree within the bound stated for that script.  A script that uses a name minigrad
lacks fails (it never skips: every name they use is part of the package).
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

import minigrad as mg

from tests.idx_files import make_dataset_dir

HERE = pathlib.Path(__file__).resolve().parent
SCRIPTS = HERE / "pytorch_scripts"
# a stand-in for torchvision's MNIST, ToTensor and Normalize, for the PyTorch run of the MNIST
# script where torchvision is not installed (see its docstring)
TORCHVISION_STANDIN = SCRIPTS / "torchvision_standin"


# -- the import rule ---------------------------------------------------------------------------

_FROM = re.compile(r"^(\s*)from\s+(\S+)(\s+import\b.*)$")
_IMPORT = re.compile(r"^(\s*)import\s+([^#]+?)(\s*(#.*)?)$")


def _module(path):
    """The minigrad module for a PyTorch module path (unchanged when it is neither's)."""
    for old, new in (("torchvision", "minigrad.vision"), ("torch", "minigrad")):
        if path == old or path.startswith(old + "."):
            return new + path[len(old):]
    return path


def _import_item(item):
    """One ``a.b [as c]`` of an import statement.  The name the script uses (``torch``, an
    alias) stays bound: ``import torch`` -> ``import minigrad as torch``; ``import torch.nn``
    (which binds ``torch``) -> ``import minigrad.nn, minigrad as torch``."""
    name, _, alias = (part.strip() for part in item.partition(" as "))
    new = _module(name)
    if new == name:
        return item.strip()
    if alias:
        return f"{new} as {alias}"
    top = name.split(".")[0]
    return f"{new} as {top}" if name == top else f"{new}, {_module(top)} as {top}"


def rewrite_imports(source):
    """The import rule (README, "Coming from PyTorch"): on import lines only, ``torch`` becomes
    ``minigrad`` and ``torchvision`` ``minigrad.vision``, keeping the names the script uses."""
    out = []
    for line in source.splitlines(keepends=True):
        body, end = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")):]
        m = _FROM.match(body)
        if m:
            body = f"{m.group(1)}from {_module(m.group(2))}{m.group(3)}"
        elif (m := _IMPORT.match(body)):
            items = ", ".join(_import_item(i) for i in m.group(2).split(","))
            body = f"{m.group(1)}import {items}{m.group(3)}"
        out.append(body + end)
    return "".join(out)


@pytest.mark.parametrize("line, expected", [
    ("import torch", "import minigrad as torch"),
    ("import torch as T", "import minigrad as T"),
    ("import torch.nn as nn", "import minigrad.nn as nn"),
    ("import torch.nn.functional as F  # the functions", "import minigrad.nn.functional as F  # the functions"),
    ("import torch.utils.data", "import minigrad.utils.data, minigrad as torch"),
    ("import math, torch", "import math, minigrad as torch"),
    ("import torchvision", "import minigrad.vision as torchvision"),
    ("from torch import nn, optim", "from minigrad import nn, optim"),
    ("from torch.optim.lr_scheduler import StepLR", "from minigrad.optim.lr_scheduler import StepLR"),
    ("from torch.utils.data import DataLoader, TensorDataset",
     "from minigrad.utils.data import DataLoader, TensorDataset"),
    ("from torchvision import datasets, transforms", "from minigrad.vision import datasets, transforms"),
    ("    from torch.autograd import Function", "    from minigrad.autograd import Function"),
    ("import torchaudio", "import torchaudio"),
    ("from torch_geometric import nn", "from torch_geometric import nn"),
    ("x = torch.zeros(3)  # import torch", "x = torch.zeros(3)  # import torch"),
])
def test_the_import_rule(line, expected):
    assert rewrite_imports(line + "\n") == expected + "\n"


def test_the_rewritten_imports_run():
    """Every form of the rule imports, and binds what PyTorch's would."""
    namespace = {}
    exec(rewrite_imports("import torch\nimport torch.utils.data\nimport torch.nn.functional as F\n"
                         "from torch.utils.data import DataLoader\nimport torch.autograd\n"
                         "from torchvision import datasets, transforms\nimport torchvision\n"
                         "from torch.optim.lr_scheduler import StepLR\nfrom torch import nn, optim\n"), namespace)
    assert namespace["torch"] is mg and namespace["F"] is mg.nn.functional
    assert namespace["DataLoader"] is mg.utils.data.DataLoader is mg.data.DataLoader
    assert namespace["torch"].autograd.Function is mg.autograd.Function
    assert namespace["datasets"].MNIST is mg.data.MNIST and namespace["torchvision"] is mg.vision
    assert namespace["StepLR"] is mg.optim.lr_scheduler.StepLR and namespace["optim"] is mg.optim


# -- the scripts -------------------------------------------------------------------------------


def load_script(script, framework="minigrad"):
    """A script's definitions (its classes and functions) as a module, without running main():
    rewritten for minigrad, or as it is for PyTorch."""
    source = (SCRIPTS / script).read_text()
    if framework == "minigrad":
        source = rewrite_imports(source)
    module = types.ModuleType(f"{framework}_{script.removesuffix('.py')}")
    exec(compile(source, str(SCRIPTS / script), "exec"), module.__dict__)
    return module



@dataclass
class Script:
    args: tuple                 # a short run
    init: bool = False          # --save-init / --init: the PyTorch run starts from minigrad's weights
    save: bool = False          # --save: the final weights are compared too
    mnist: bool = False         # reads MNIST (synthetic IDX files, 256 + 64 images) from --data


SCRIPTS_RUN = {
    "autograd_checks.py": Script(args=()),
    "cnn_batchnorm_checkpoint.py": Script(
        args=("--epochs", "3", "--resume-at", "1", "--n-train", "128", "--n-test", "64"),
        init=True, save=True),
    "polynomial_legendre.py": Script(args=("--steps", "300")),
    "polynomial_nn.py": Script(args=("--steps", "300"), init=True, save=True),
    "mnist_main.py": Script(
        args=("--epochs", "2", "--batch-size", "32", "--test-batch-size", "64", "--log-interval", "2",
              "--dropout", "0", "--lr", "0.1"), init=True, save=True, mnist=True),
    "nanogpt.py": Script(
        args=("--max-iters", "8", "--eval-interval", "4", "--eval-iters", "2", "--sample", "20"),
        init=True, save=True),
}


def _torchvision_installed():
    try:
        import torchvision  # noqa: F401
    except Exception:  # not installed, or built for another torch
        return False
    return True


def run_script(script, framework, workdir, extra=()):
    """Run ``script`` (rewritten for minigrad, or as it is for torch) in ``workdir`` with its
    short-run arguments; return (results, stdout).  Fails with the script's output if it fails."""
    spec = SCRIPTS_RUN[script]
    source = (SCRIPTS / script).read_text()
    if framework == "minigrad":
        source = rewrite_imports(source)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / script
    path.write_text(source)
    results = workdir / "results.json"
    args = [*spec.args, *extra, "--results", str(results)]
    if spec.mnist:
        args += ["--data", str(workdir.parent / "data")]
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    if framework == "torch" and spec.mnist and not _torchvision_installed():
        env["PYTHONPATH"] = os.pathsep.join([str(TORCHVISION_STANDIN), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(path), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"{script} failed under {framework} (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(results.read_text()), proc.stdout


@pytest.mark.parametrize("script", sorted(SCRIPTS_RUN))
def test_only_import_lines_change(script):
    original = (SCRIPTS / script).read_text().splitlines()
    rewritten = rewrite_imports((SCRIPTS / script).read_text()).splitlines()
    assert len(original) == len(rewritten)
    changed = [(a, b) for a, b in zip(original, rewritten) if a != b]
    assert changed, f"{script} imports nothing from torch?"
    for a, _ in changed:
        assert re.match(r"\s*(import|from)\s", a), f"a line that is not an import changed: {a!r}"
    assert not any(re.match(r"\s*(import|from)\s+torch", b) for b in rewritten)


_RUNS = {}  # script -> (folder, results): each script runs once under minigrad per session


def minigrad_run(script, tmp_path_factory):
    """The minigrad run of ``script`` (saving its starting and final weights where it can)."""
    if script not in _RUNS:
        spec = SCRIPTS_RUN[script]
        base = tmp_path_factory.mktemp(script.removesuffix(".py"))
        if spec.mnist:
            make_dataset_dir(base / "data" / "mnist", n_train=256, n_test=64, seed=3)
        extra = (("--save-init", str(base / "init.npz")) if spec.init else ()) + \
                (("--save", str(base / "final.npz")) if spec.save else ())
        results, _ = run_script(script, "minigrad", base / "minigrad", extra)
        _RUNS[script] = (base, results)
    return _RUNS[script]


@pytest.mark.parametrize("script", sorted(SCRIPTS_RUN))
def test_runs_on_minigrad_with_only_its_imports_changed(script, tmp_path_factory):
    base, results = minigrad_run(script, tmp_path_factory)
    assert results
    if SCRIPTS_RUN[script].save:  # what torch.save wrote, minigrad.load reads: a state dict
        state = mg.load(base / "final.npz")
        assert state and all(isinstance(v, (mg.Tensor, dict)) for v in state.values())


# -- the same scripts under PyTorch ------------------------------------------------------------


def _leaves(tree, prefix=""):
    """Nested dicts/lists of numbers or tensors -> {path: float64 array}."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        value = tree.numpy() if hasattr(tree, "numpy") else tree
        return {prefix: np.asarray(value, dtype=np.float64)}
    out = {}
    for k, v in items:
        out.update(_leaves(v, f"{prefix}/{k}"))
    return out


def _to_torch(tree, torch):
    if isinstance(tree, dict):
        return type(tree)((k, _to_torch(v, torch)) for k, v in tree.items())
    return torch.from_numpy(tree.numpy().copy()) if isinstance(tree, mg.Tensor) else tree


def assert_close(name, ours, theirs, rtol, atol):
    ours, theirs = _leaves(ours), _leaves(theirs)
    assert ours.keys() == theirs.keys(), f"{name}: different entries"
    for key in ours:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=rtol, atol=atol,
                                   err_msg=f"{name}{key}: minigrad vs PyTorch")


# (rtol, atol) for the results and for the final weights, and why.  float32 rounds at 6e-8
# relative, and minigrad sums in other orders than PyTorch (NumPy's pairwise sums, im2col + GEMM
# against PyTorch's convolutions), so results that agree to 1e-7 at the first step drift apart
# slowly; "seen" is what this machine gave, the bounds leave room for other CPUs and BLASes.
BOUNDS = {
    # float64 scalars and a float64 gradcheck: only the last bits can differ
    "autograd_checks.py": ((1e-12, 1e-12), None),
    # 2000-term float32 sums (error ~ log2(2000) * 6e-8 = 7e-7 relative), 300 plain gradient steps
    # that contract errors: seen 2.2e-7 on the losses; c and a end near 1e-10, hence the atol
    "polynomial_legendre.py": ((1e-6, 1e-8), None),
    # the same fits through nn.Linear, RMSprop and momentum SGD: seen 9.5e-7 relative on the
    # losses, 6e-8 on the weights
    "polynomial_nn.py": ((1e-5, 1e-6), (1e-5, 1e-7)),
    # The CNNs below pass millions of activations through ReLU and max pooling, whose derivative
    # jumps at 0: an activation within rounding of 0 can take the other branch in one run, which
    # changes that step's gradient by one example's share.  So the weights get an absolute bound
    # of 1e-4 (a few such events in 16 steps of lr 0.1), while the losses stay close.
    # CNN + BatchNorm, 12 SGD steps: seen 2e-6 relative on the losses, 3e-7 on the weights, 3e-5
    # on a running variance of 14
    "cnn_batchnorm_checkpoint.py": ((2e-5, 1e-6), (1e-5, 1e-4)),
    # MNIST Net, 16 Adadelta steps at lr 0.1: seen 2.4e-7 on the losses, 1.6e-5 on the weights
    "mnist_main.py": ((1e-5, 1e-6), (1e-5, 1e-4)),
    # GPT, 8 AdamW steps: seen 1.4e-7 relative on the losses, 7e-7 on the weights.  Adam divides
    # by the gradient's own scale, so a weight whose gradient is zero but for rounding (the key
    # biases: softmax ignores a shift shared by a row) moves by up to lr |g| / eps
    "nanogpt.py": ((1e-5, 1e-6), (1e-4, 1e-5)),
}


@pytest.mark.torch
@pytest.mark.parametrize("script", sorted(SCRIPTS_RUN))
def test_matches_pytorch(script, tmp_path_factory):
    torch = pytest.importorskip("torch")
    spec = SCRIPTS_RUN[script]
    base, ours = minigrad_run(script, tmp_path_factory)
    extra = ()
    if spec.init:
        torch.save(_to_torch(mg.load(base / "init.npz"), torch), base / "init.pt")
        extra += ("--init", str(base / "init.pt"))
    if spec.save:
        extra += ("--save", str(base / "final.pt"))
    theirs, _ = run_script(script, "torch", base / "torch", extra)
    results_bound, weights_bound = BOUNDS[script]
    assert_close(script, ours, theirs, *results_bound)
    if spec.save:
        assert_close(script, mg.load(base / "final.npz"), torch.load(base / "final.pt"), *weights_bound)
