"""ruff (configured in pyproject.toml: pyflakes, pycodestyle errors, import order) finds nothing in the code or tests."""

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
    bad.write_text("import sys\nimport os\n\nprint(os, sys)\n")
    run = ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(bad))
    assert run.returncode == 1 and "I001" in run.stdout, run.stdout + run.stderr
    bad.write_text("import os\nimport sys\n\nprint(os, sys)\n")
    assert ruff("check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(bad)).returncode == 0
