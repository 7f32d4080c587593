"""README.md's two commands stay true: CI runs the test command verbatim, and the training
command names a script and flags that exist."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_block_after(heading):
    tail = README[README.index(heading):]
    return re.search(r"```bash\n(.*?)\n```", tail, re.S).group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = _bash_block_after("Run the tests:")
    assert command == 'pip install -e ".[test]" && pytest'
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines, f".ci/run must run the README's test command as written: {command}"


def test_the_training_command_uses_real_flags():
    command = _bash_block_after("## Two commands")
    install, run = command.split(" && ")
    assert install == 'pip install -e ".[plot]"'
    words = run.split()
    assert words[:2] == ["python", "examples/mnist_mlp.py"] and (ROOT / words[1]).exists()
    flags = [w for w in words[2:] if w.startswith("--")]
    help_text = subprocess.run([sys.executable, str(ROOT / words[1]), "--help"], capture_output=True,
                               text=True, check=True).stdout
    for flag in flags:
        assert flag in help_text, f"README's training command uses {flag}, which the script lacks"
    assert "../shared" not in README  # written for users, who have no ../shared beside them


def test_license_and_changelog_exist():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "## " in (ROOT / "CHANGELOG.md").read_text()
