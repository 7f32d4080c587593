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


# -- the docs' claims that a test can check --------------------------------------------------------
# (Every claim below was false at some point: a deleted script still cited, an optimizer missing
# from the README's list, a CuPy version nobody had run.)

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
TOP_DIRS = ("minigrad", "docs", "tests", "benchmarks", "examples", "tools", ".ci")
# a path as the docs and comments write one: dir/.../name.ext
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
    Comments, docs and tests say the reason (or cite a test, a doc, a date) instead.
    (CHANGELOG.md is not among PAGES: its entries are the history.)"""
    pattern = re.compile(r"\bissues? #?\d+", re.I)
    tests = sorted(p for p in (ROOT / "tests").rglob("*.py") if p.name != "test_docs.py")  # (this file quotes one)
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in SOURCES + PAGES + tests for m in pattern.finditer(p.read_text())]
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


def _module_level(statements):
    """The functions and classes a module defines, also inside a module-level ``if`` or ``try``
    (cpu_kernels.py defines its numba kernels under ``if numba is not None:``)."""
    import ast

    for s in statements:
        if isinstance(s, (ast.FunctionDef, ast.ClassDef)):
            yield s
        elif isinstance(s, ast.If):
            yield from _module_level(s.body + s.orelse)
        elif isinstance(s, ast.Try):
            yield from _module_level(s.body + [x for h in s.handlers for x in h.body] + s.orelse)


def test_no_module_defines_a_name_twice():
    """A second ``def kernel_source`` silently replaces the first, and a reader who finds the
    first reads the wrong one: each module-level function and class is defined once (also
    across the branches of an ``if``/``try`` at module level)."""
    import ast
    from collections import Counter

    twice = {}
    for path in sorted((ROOT / "minigrad").rglob("*.py")):
        counts = Counter(d.name for d in _module_level(ast.parse(path.read_text()).body))
        if any(c > 1 for c in counts.values()):
            twice[str(path.relative_to(ROOT))] = sorted(n for n, c in counts.items() if c > 1)
    assert not twice, f"defined more than once: {twice}"


# -- the reading path of docs/architecture.md -------------------------------------------------------

READING_PATH = ROOT / "docs" / "architecture.md"
AFTERNOON_MINUTES = 240      # "an afternoon": at most 4 hours
READING_SPEED = (200, 300)   # lines of real code a student reads (and follows) per hour
DRIFT = 0.10                 # a stated count may be off by this much before the doc must change


def count_lines(path, units):
    """Non-blank lines (docstrings and comments included: they are the explanation) of the
    whole file (``units`` empty) or of the named functions and classes, ``Class.method`` for a
    method (a property's getter and setter both count), decorators included."""
    import ast

    lines = path.read_text().splitlines()
    if not units:
        return sum(1 for line in lines if line.strip())
    top = list(_module_level(ast.parse("\n".join(lines)).body))
    total = 0
    for unit in units:
        owner, _, name = unit.rpartition(".")
        scope = [n for c in top if isinstance(c, ast.ClassDef) and c.name == owner for n in c.body] if owner else top
        found = [n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name]
        assert found, f"the reading path names {unit} in {path.relative_to(ROOT)}, which has no such definition"
        for node in found:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            total += sum(1 for line in lines[first - 1:node.end_lineno] if line.strip())
    return total


def reading_path():
    """{table title: [(file, units, stated lines, stated minutes), ...]} of each table of the
    reading path, and the stated totals of the first (the afternoon)."""
    text = READING_PATH.read_text()
    section = text[text.index("## Reading path"):]
    section = section[:section.index("\n## ", 1)]
    tables = {}
    for title, body in re.findall(r"^### (.+?)\n(.*?)(?=^### |\Z)", section, re.S | re.M):
        rows = []
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 6 and cells[0].isdigit():
                path = re.fullmatch(r"`([^`]+)`", cells[1]).group(1)
                units = [] if cells[2] == "all" else re.findall(r"`([^`]+)`", cells[2])
                minutes = re.fullmatch(r"(\d+) min", cells[5])
                rows.append((path, units, int(cells[3]), int(minutes.group(1)) if minutes else None))
        tables[title] = rows
    return tables


def test_the_reading_path_counts_are_measured():
    tables = reading_path()
    assert len(tables) >= 2 and all(tables.values()), "docs/architecture.md: ## Reading path has its tables"
    for title, rows in tables.items():
        for path, units, stated, _ in rows:
            measured = count_lines(ROOT / path, units)
            assert abs(stated - measured) <= DRIFT * measured, (
                f"docs/architecture.md, reading path ({title}): {path} {units or '(all)'} is stated as "
                f"{stated} lines but has {measured} non-blank lines now: update the count (and the times)")


def test_the_core_fits_an_afternoon_and_the_readme_says_what_it_is():
    text = READING_PATH.read_text()
    (title, core), *_ = reading_path().items()
    lines = sum(count_lines(ROOT / path, units) for path, units, _, _ in core)
    minutes = sum(m for *_, m in core)
    assert all(m is not None for *_, m in core), "every step of the afternoon has a time"
    assert minutes <= AFTERNOON_MINUTES, f"the afternoon's steps add up to {minutes} min"
    slow, fast = READING_SPEED
    assert slow <= lines / (minutes / 60) <= fast, (
        f"{lines} lines in {minutes} min is not a student's {slow}-{fast} lines an hour")
    total = re.search(r"\*\*total\*\* \| \| \*\*(\d+)\*\* \| \| \*\*(\d+) min\*\*", text)
    assert total and int(total.group(2)) == minutes, "the afternoon's total row adds its times"
    assert abs(int(total.group(1)) - lines) <= DRIFT * lines
    readme = (ROOT / "README.md").read_text()
    claim = re.search(r"about (\d+) lines[^.]*\]\(docs/architecture\.md#reading-path\)", readme.replace("\n", " "))
    assert claim, "README says what can be read in an afternoon, with a link to the reading path"
    assert abs(int(claim.group(1)) - lines) <= DRIFT * lines


def test_kernels_md_says_which_table_overrides_which_kernel():
    """docs/kernels.md, "Which op runs on which kernel": a CPU column that says numba names at
    least one function cpu_kernels.py overrides, one that says only NumPy / BLAS names none
    (the reference's code runs); a CUDA column that says "(reference)" names no CUDA kernel."""
    import fnmatch

    from minigrad.backend import cpu_kernels, cuda, reference

    text = (ROOT / "docs" / "kernels.md").read_text()
    table = text[text.index("## Which op runs on which kernel"):]
    table = table[:table.index("\n\n", table.index("| op |"))]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()[4:]]
    assert len(rows) >= 15
    for op, functions, cpu, gpu, _ in rows:
        names = set()
        for token in re.findall(r"`([^`]+)`", functions):
            for concrete in ([token.replace("<name>", o) for o in re.findall(r"`([^`]+)`", op)]
                             if "<name>" in token else [token]):
                names |= set(fnmatch.filter(reference.__all__, concrete))
        assert names, f"docs/kernels.md: the row {op!r} names no kernel-table function"
        own_cpu = sorted(n for n in names if getattr(cpu_kernels, n) is not getattr(reference, n))
        own_gpu = sorted(n for n in names if getattr(cuda, n) is not getattr(reference, n))
        if "numba" in cpu:
            assert own_cpu, f"docs/kernels.md says {op} runs numba on the CPU; cpu_kernels overrides none of {sorted(names)}"
        else:
            assert not own_cpu, f"docs/kernels.md says {op} runs {cpu!r} on the CPU; cpu_kernels overrides {own_cpu}"
        assert bool(own_gpu) != ("(reference)" in gpu), f"docs/kernels.md, {op}: CUDA column {gpu!r}, own kernels {own_gpu}"


def test_architecture_md_counts_the_kernel_table():
    from minigrad.backend import reference

    text = (ROOT / "docs" / "architecture.md").read_text()
    stated = re.search(r"Three modules expose the same (\d+) names", text)
    assert stated and int(stated.group(1)) == len(reference.__all__)
