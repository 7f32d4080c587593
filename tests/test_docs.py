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


# -- the docs' claims that a test can check --------------------------------------------------------
# (Every claim below was false at some point: a deleted script still cited, an optimizer missing
# from the README's list, a CuPy version nobody had run.)

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
TOP_DIRS = ("minigrad", "docs", "tests", "benchmarks", "examples", "tools", ".ci")
# a path as the docs and comments write one: dir/.../name.ext, or name.ext alone
PATH = re.compile(r"(?<![\w/.:~$-])((?:[\w.-]+/)+[\w.-]+\.(?:py|md|cu|cuh|h|cpp|c|toml|cfg|png))(?![\w/])")
SOURCES = sorted(p for d in ("minigrad", "benchmarks", "examples", "tools") for p in (ROOT / d).rglob("*")
                 if p.suffix in (".py", ".cu", ".cuh", ".h", ".cpp") and "__pycache__" not in p.parts)
REPO_FILES = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
              if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts]
REPO_DIRS = {part for f in REPO_FILES for part in f.split("/")[:-1]}


def _prose(page):
    """A page without its fenced blocks (commands there may name files they create)."""
    return FENCE.sub("", page.read_text())


def _stale_paths(text):
    """Paths in ``text`` that name no file of the repository.  One that starts at a top-level
    folder must exist as written; a shorter one (``kernels/optim.cu``, ``cuda/emulator/...``)
    must be the tail of some file's path when it starts at a folder the repository has.
    Placeholders (``OUT/x.json``), system headers (``sys/mman.h``), other projects' files and
    data the user downloads (``tinyshakespeare/input.txt``) are none of these and pass."""
    stale = []
    for ref in PATH.findall(text):
        if ref.split("/")[0] in TOP_DIRS:
            if not (ROOT / ref).exists():
                stale.append(ref)
        elif ref.split("/")[0] in REPO_DIRS:
            if not any(f == ref or f.endswith("/" + ref) for f in REPO_FILES):
                stale.append(ref)
    return stale


@pytest.mark.parametrize("page", PAGES + [ROOT / "benchmarks" / "README.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_page_cites_exists(page):
    text = _prose(page)
    links = [t for t in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in t]
    missing = [t for t in links if not (page.parent / t).exists()] + _stale_paths(text)
    assert not missing, f"{page.relative_to(ROOT)} cites files that do not exist: {missing}"


def test_every_path_a_source_comment_cites_exists():
    stale = {str(p.relative_to(ROOT)): s for p in SOURCES if (s := _stale_paths(p.read_text()))}
    assert not stale, f"comments and docstrings cite files that do not exist: {stale}"


def test_no_pointers_to_issue_numbers():
    """The issue tracker is not part of the repository: "issue 10" tells a reader nothing.
    Comments and docs say the reason (or cite a test, a doc, a date) instead."""
    pattern = re.compile(r"\bissues? #?\d+", re.I)
    pages = [p for p in PAGES if p.name != "CHANGELOG.md"]
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in SOURCES + pages for m in pattern.finditer(p.read_text())]
    assert not hits, hits


def test_readme_and_optim_docstrings_name_every_optimizer():
    from minigrad import optim

    names = sorted(n for n, c in vars(optim).items()
                   if isinstance(c, type) and issubclass(c, optim.Optimizer) and c is not optim.Optimizer)
    assert {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"} <= set(names)
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"optimizers \(([^)]*)\)", readme)
    assert listed, "README.md lists the optimizers as 'optimizers (SGD, Adam, ...)'"
    for where, text in (("README.md", listed.group(1)), ("minigrad/optim/__init__.py", optim.__doc__),
                        ("minigrad/optim/optimizer.py", optim.optimizer.__doc__)):
        missing = [n for n in names if not re.search(rf"\b{n}\b", text)]
        assert not missing, f"{where} leaves out {missing}"


def test_readme_states_the_cupy_requirement_of_the_gpu_extra():
    """README's GPU paragraph names the package and version the [gpu] extra installs, and
    claims no CuPy version nobody has run."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    (requirement,) = [r.strip() for r in cfg["options.extras_require"]["gpu"].splitlines() if r.strip()]
    package, version = re.fullmatch(r"(cupy-cuda\d+x)\[ctk\]>=(\d+)", requirement).groups()
    readme = (ROOT / "README.md").read_text()
    assert f"`{package}[ctk]`" in readme and f"CuPy >= {version}" in readme
    claimed = {int(v) for v in re.findall(r"CuPy (\d+)", readme)}
    assert claimed <= {int(version)}, f"README names CuPy versions {sorted(claimed)}; the extra pins >= {version}"


def test_no_module_defines_a_name_twice():
    """A second ``def kernel_source`` silently replaces the first, and a reader who finds the
    first reads the wrong one: each module-level function and class is defined once (also
    across the branches of an ``if``/``try`` at module level)."""
    import ast
    from collections import Counter

    def names(statements):
        for s in statements:
            if isinstance(s, (ast.FunctionDef, ast.ClassDef)):
                yield s.name
            elif isinstance(s, ast.If):
                yield from names(s.body + s.orelse)
            elif isinstance(s, ast.Try):
                yield from names(s.body + [x for h in s.handlers for x in h.body] + s.orelse)

    twice = {}
    for path in sorted((ROOT / "minigrad").rglob("*.py")):
        counts = Counter(names(ast.parse(path.read_text()).body))
        if any(c > 1 for c in counts.values()):
            twice[str(path.relative_to(ROOT))] = sorted(n for n, c in counts.items() if c > 1)
    assert not twice, f"defined more than once: {twice}"
