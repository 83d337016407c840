"""`irob-bench submit --local`: submitit's local executor runs the shard jobs and the merge job (the SLURM pipeline on
one machine); the merged run equals one process and is stored once. Bad options fail before any job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from irob_bench.cli import main
from irob_bench.leaderboard.store import Store

pytest.importorskip("submitit", reason='submit needs submitit: pip install "irob-bench[slurm]"')

TOY = Path(__file__).parent / "submissions" / "toy.py"
ARGS = ["--n-examples", "24", "--eps", "1", "2", "--attacks", "quick", "--batch-size", "8"]
VOLATILE = {"created_at", "timings", "environment", "outcomes_file"}


@pytest.fixture
def db(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'board.db'}"
    monkeypatch.setenv("IROB_BENCH_DB", url)
    monkeypatch.setenv("IROB_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return url


def test_local_executor_runs_shards_and_merge_like_one_process(db, tmp_path, capsys):
    one = tmp_path / "one.json"
    assert main(["evaluate", str(TOY), *ARGS, "--quiet", "--json", str(one), "--no-store"]) == 0
    folder = tmp_path / "jobs"
    assert main(["submit", str(TOY), "--local", "--shards", "3", "--folder", str(folder), "--evaluate-args", " ".join(ARGS)]) == 0
    printed = capsys.readouterr().out
    assert "submitted 3 shard jobs" in printed and f"merged: {folder / 'merged.json'}" in printed
    merged = folder / "merged.json"
    first, second = json.loads(one.read_text()), json.loads(merged.read_text())
    assert {k: v for k, v in first.items() if k not in VOLATILE} == {k: v for k, v in second.items() if k not in VOLATILE}
    assert Path(f"{one}.outcomes.npz").read_bytes() == Path(f"{merged}.outcomes.npz").read_bytes()
    assert len(Store(db).rows()) == 1


def test_bad_submit_options_fail_before_any_job(db, tmp_path, capsys):
    folder = tmp_path / "jobs"
    assert main(["submit", str(TOY), "--local", "--shards", "2", "--folder", str(folder), "--evaluate-args", "--shard 1/2"]) == 2
    assert "--shard is set by submit itself" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["submit", str(TOY), "--local", "--shards", "2", "--folder", str(folder), "--evaluate-args=--n-examples 0"])
    assert "expected a positive integer or 'all'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["submit", str(TOY), "--shards", "2"])  # neither --slurm nor --local
    assert not folder.exists() and not Store(db).rows()
