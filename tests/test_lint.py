"""ruff (configured in pyproject.toml: pyflakes, pycodestyle errors, import order, docstrings of the package's public
names) finds nothing in the code or tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ruff", reason="ruff is in the test extra; without it there is no linter to run")

REPO = Path(__file__).resolve().parents[1]


def ruff(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True)


def test_ruff_finds_nothing_in_benchmark_and_tests():
    run = ruff("check", "--no-cache", "benchmark", "tests")
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_reports_an_unsorted_import(tmp_path):
    """Control: the same configuration fails on a file whose imports are out of order."""
    bad = tmp_path / "unsorted.py"
    bad.write_text('"""A module."""\n\nimport sys\nimport os\n\nprint(os, sys)\n')
    run = ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(bad))
    assert run.returncode == 1 and "I001" in run.stdout, run.stdout + run.stderr
    bad.write_text('"""A module."""\n\nimport os\nimport sys\n\nprint(os, sys)\n')
    assert ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(bad)).returncode == 0


def test_ruff_reports_a_public_function_without_a_docstring(tmp_path):
    """Control: the package's rule that every public name says what it is for fails on a bare public function."""
    bad = tmp_path / "bare.py"
    bad.write_text('"""A module."""\n\n\ndef scale(x):\n    return 2 * x\n')
    run = ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(bad))
    assert run.returncode == 1 and "D103" in run.stdout, run.stdout + run.stderr
    bad.write_text('"""A module."""\n\n\ndef scale(x):\n    """Twice x."""\n    return 2 * x\n')
    assert ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(bad)).returncode == 0
