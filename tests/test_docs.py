"""Every ```python block in README.md and docs/ runs as written.

The blocks of one page run in order in one namespace (a page reads like a session), in a
temporary working folder.  A block whose first line is ``# needs: cuda`` (or ``torch``,
``mpi4py``, ``matplotlib``) is skipped, with the reason, where that is missing.  Pages that
train on MNIST get a small generated MNIST through MINIGRAD_DATA.
"""
import contextlib
import io
import pathlib
import re

import pytest

import minigrad as mg
from minigrad.autograd import REGISTRY
from tests.idx_files import make_dataset_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _missing(needs):
    if needs == "cuda":
        return None if mg.cuda_available() else "no CUDA GPU here"
    if needs in ("torch", "mpi4py", "matplotlib", "graphviz"):
        try:
            __import__(needs)
        except ImportError:
            return f"{needs} is not installed"
        return None
    return f"unknown requirement {needs!r}"


def blocks(page):
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run_as_written(page, tmp_path, monkeypatch):
    # a small generated MNIST (50 + 20 images): the pages' code runs as written, in seconds
    # (the accuracy the examples reach on real MNIST is the slow tests' business)
    make_dataset_dir(tmp_path / "data" / "mnist")
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    registry = dict(REGISTRY)  # a page may register an example op; the registry test must not see it
    try:
        _run_page(page)
    finally:
        REGISTRY.clear()
        REGISTRY.update(registry)


def _run_page(page):
    namespace = {"__name__": "__docs__"}
    for i, code in enumerate(blocks(page)):
        first = code.splitlines()[0] if code.strip() else ""
        if first.startswith("# needs:"):
            reasons = [r for r in (_missing(n.strip()) for n in first[8:].split(",")) if r]
            if reasons:
                pytest.skip(f"{page.name} block {i + 1}: {', '.join(reasons)}")
        mg.manual_seed(0)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, f"{page.name}[block {i + 1}]", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"{page.relative_to(ROOT)}, python block {i + 1} failed: "
                                 f"{type(e).__name__}: {e}\n---\n{code}") from e


TEST_PATH = re.compile(r"\btests/([\w/]+\.py)(?:::(\w+))?")
MADE_UP_NAMES = {"tests/test_gpu_check.py"}  # parses pytest output with made-up test names


def test_every_test_file_named_in_the_docs_and_the_code_exists():
    """Tests get merged and moved (one file per module or family of the package): a test file,
    or ``file::test``, that README, docs/, CI's script, the tests, the package or the benchmarks
    name must be there."""
    sources = PAGES + [ROOT / ".ci" / "run"] + sorted(p for folder in ("tests", "minigrad", "benchmarks", "examples")
                             for p in (ROOT / folder).rglob("*.py")
                             if str(p.relative_to(ROOT)) not in MADE_UP_NAMES)
    stale = []
    for source in sources:
        for m in TEST_PATH.finditer(source.read_text()):
            target = ROOT / "tests" / m.group(1)
            if not target.is_file() or (m.group(2) and f"def {m.group(2)}(" not in target.read_text()):
                stale.append(f"{source.relative_to(ROOT)}: {m.group(0)}")
    assert not stale, "named but not there:\n" + "\n".join(stale)
