"""ruff (configured in pyproject.toml: pyflakes, pycodestyle errors, import order, docstrings of the package's public
names) finds nothing in the repository: the package, the tests and the reference submissions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ruff", reason="ruff is in the test extra; without it there is no linter to run")

REPO = Path(__file__).resolve().parents[1]


def ruff(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True)


def test_ruff_finds_nothing_in_the_repository():
    run = ruff("check", "--no-cache", ".")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("rule, bad, fixed", [
    ("I001", '"""A module."""\n\nimport sys\nimport os\n\nprint(os, sys)\n',  # imports out of order
     '"""A module."""\n\nimport os\nimport sys\n\nprint(os, sys)\n'),
    ("D103", '"""A module."""\n\n\ndef scale(x):\n    return 2 * x\n',  # a public function that does not say what for
     '"""A module."""\n\n\ndef scale(x):\n    """Twice x."""\n    return 2 * x\n'),
])
def test_ruff_reports_each_rule_on_a_file_that_breaks_it(tmp_path, rule, bad, fixed):
    """Control: the same configuration fails on a file that breaks the rule, and passes once it is fixed."""
    path = tmp_path / "module.py"
    path.write_text(bad)
    run = ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(path))
    assert run.returncode == 1 and rule in run.stdout, run.stdout + run.stderr
    path.write_text(fixed)
    assert ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(path)).returncode == 0
