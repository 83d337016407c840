"""Resumable evaluation: finished chunks are checkpointed atomically; after a kill the same command continues where
it stopped, recomputes no finished chunk and ends with the result of an uninterrupted run; --no-resume starts afresh."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import irob_bench.evaluate as evaluate_module
from irob_bench.cli import main

TOY = Path(__file__).parent / "submissions" / "toy.py"
ARGS = ["--n-examples", "30", "--eps", "1", "2", "--quiet", "--attacks", "quick", "--batch-size", "5", "--no-store"]
CHUNKS = 6
VOLATILE = {"created_at", "timings", "environment", "outcomes_file"}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("IROB_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "checkpoints"


class Counter:
    """Counts the chunks actually attacked (calls of run_attacks) and can crash the call numbered `fail_at`."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real, self.calls, self.fail_at = real, 0, 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("simulated crash")
        return self.real(*args, **kwargs)

    def reset(self, fail_at: int = 0) -> None:
        self.calls, self.fail_at = 0, fail_at


@pytest.fixture
def counted(monkeypatch) -> Counter:
    counter = Counter(evaluate_module.run_attacks)
    monkeypatch.setattr(evaluate_module, "run_attacks", counter)
    return counter


def same(a: Path, b: Path) -> None:
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    assert {k: v for k, v in first.items() if k not in VOLATILE} == {k: v for k, v in second.items() if k not in VOLATILE}
    assert Path(f"{a}.outcomes.npz").read_bytes() == Path(f"{b}.outcomes.npz").read_bytes()


def test_a_crash_resumes_without_recomputing_finished_chunks(cache, counted, tmp_path, capsys):
    whole = tmp_path / "whole.json"
    assert main(["evaluate", str(TOY), *ARGS, "--json", str(whole)]) == 0
    assert counted.calls == CHUNKS and not any(cache.rglob("*.npz")), "a finished run leaves no checkpoints"

    counted.reset(fail_at=4)  # chunks 1-3 finish, the 4th crashes
    assert main(["evaluate", str(TOY), *ARGS, "--json", str(tmp_path / "crashed.json")]) == 3  # the crash: exit 3
    assert len(list(cache.rglob("chunk-*.npz"))) == 3

    counted.reset()
    resumed = tmp_path / "resumed.json"
    assert main(["evaluate", str(TOY), *ARGS, "--json", str(resumed)]) == 0
    assert counted.calls == CHUNKS - 3, "the 3 finished chunks were not attacked again"
    assert "resumed 3 of 6 finished chunks" in capsys.readouterr().err
    assert json.loads(resumed.read_text())["environment"]["resumed_chunks"] == "3 of 6"
    same(whole, resumed)


def test_no_resume_starts_afresh(cache, counted, tmp_path):
    counted.reset(fail_at=3)
    assert main(["evaluate", str(TOY), *ARGS, "--json", str(tmp_path / "crashed.json")]) == 3  # the crash: exit 3
    assert len(list(cache.rglob("chunk-*.npz"))) == 2
    counted.reset()
    assert main(["evaluate", str(TOY), *ARGS, "--no-resume", "--json", str(tmp_path / "fresh.json")]) == 0
    assert counted.calls == CHUNKS, "--no-resume attacks every chunk again"


def test_a_forged_or_foreign_chunk_is_recomputed(cache, counted, tmp_path):
    """A checkpoint of other points (or a truncated file) is never trusted: it is attacked again."""
    counted.reset(fail_at=3)
    assert main(["evaluate", str(TOY), *ARGS, "--json", str(tmp_path / "crashed.json")]) == 3  # the crash: exit 3
    first, second = sorted(cache.rglob("chunk-*.npz"))
    first.write_bytes(second.read_bytes())  # chunk 0 now holds chunk 1's points
    second.write_bytes(second.read_bytes()[:100])  # chunk 1 truncated
    counted.reset()
    assert main(["evaluate", str(TOY), *ARGS, "--json", str(tmp_path / "again.json")]) == 0
    assert counted.calls == CHUNKS


def wait_until_gone(marker: str, seconds: float = 30) -> None:
    """Wait until no process has `marker` in its command line (bwrap's, which names the checkpoint folder it binds;
    its pid namespace's first process exits only after every process in the namespace has)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        alive = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                alive.append(marker.encode() in cmdline.read_bytes())
            except OSError:
                continue
        if not any(alive):
            return
        time.sleep(0.02)
    raise AssertionError(f"a process naming {marker} outlived its killed parent by {seconds} s")


@pytest.mark.parametrize("isolation", [
    "none",
    pytest.param("sandbox", marks=pytest.mark.skipif(not shutil.which("bwrap"), reason="no bubblewrap (bwrap)")),
])
def test_sigkill_mid_run_then_the_same_command_resumes_to_the_same_result(cache, tmp_path, isolation):
    """In the sandbox, the checkpoint folder is the one place besides its scratch folder where the worker writes.
    Both runs use one thread: results are bit-identical for one machine and thread count, not across counts."""
    out = tmp_path / "killed.json"
    command = [sys.executable, "-m", "irob_bench", "evaluate", str(TOY), *ARGS, "--isolation", isolation]
    env = {**os.environ, "IROB_BENCH_CACHE": str(cache.parent), "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole.json"
    subprocess.run([*command, "--json", str(whole), "--no-resume"], env=env, check=True, timeout=300,
                   capture_output=True)
    command += ["--json", str(out)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.rglob("chunk-*.npz"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    wait_until_gone(str(cache.resolve()))  # the sandboxed worker dies with its parent, asynchronously: count after it is gone
    finished = len(list(cache.rglob("chunk-*.npz")))
    assert 2 <= finished < CHUNKS and not out.exists()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(out.read_text())["environment"]["resumed_chunks"] == f"{finished} of {CHUNKS}"
    same(whole, out)
