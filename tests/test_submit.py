"""`irob-bench submit --local`: submitit's local executor runs the shard jobs and the merge job (the SLURM pipeline on
one machine); the merged run equals one process and is stored once. Bad options fail before any job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from irob_bench.cli import main
from irob_bench.leaderboard.store import Store
from tests.factories import staged_card

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
    assert main(["submit", str(TOY), "--local", "--shards", "2", "--folder", str(folder), "--evaluate-args=--n-examples 0"]) == 2
    assert "expected a positive integer or 'all'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["submit", str(TOY), "--shards", "2"])  # neither --slurm nor --local
    assert "one of the arguments --slurm --local is required" in capsys.readouterr().err
    # found by an audit: each was a traceback (or, for the shards, a failed job) before
    for extra, message in [
        (["--evaluate-args", '"unclosed'], "--evaluate-args: No closing quotation"),
        (["--evaluate-args", "--dataset mnist --n-examples 5"], "--shard 1/2: the 5 points make 1 chunks"),
        (["--evaluate-args", "--n-examples 5"], "--shard 1/2: the 5 points make 1 chunks"),  # no dataset needed for n
        (["--evaluate-args", "--json x.json"], "--json is set by submit itself (each shard's JSON and the merged"),
        (["--no-store", "--db", "x.db"], "--db names where to store the run, but --no-store stores nothing"),
        (["--evaluate-args", f"--dataset {staged_card(tmp_path)}"], "the shards are merged into a run at once, which"),
        # the merge's own check, so also a newer card of the same data, which the merge refuses as newer
        (["--evaluate-args", f"--dataset {staged_card(tmp_path, same_data=True)}"], "is newer than the card this irob-bench ships"),
    ]:
        assert main(["submit", str(TOY), "--local", "--shards", "2", "--folder", str(folder), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    if shutil.which("sbatch") is None:
        assert main(["submit", str(TOY), "--slurm", "--shards", "2", "--folder", str(folder)]) == 2
        assert "no SLURM here (sbatch not found)" in capsys.readouterr().err
    assert not folder.exists() and not Store(db).rows()


@pytest.mark.slow  # two local shard jobs that fail at once: about 15 s
def test_a_failing_shard_job_is_one_line_naming_its_error(db, tmp_path, capsys):
    """Without --dataset the eps range needs the submission's METADATA (the card's image size), so the shards find
    it: that was a long FailedJobError traceback; now it is the shard's own one-line error. Control: the local run
    above succeeds."""
    folder = tmp_path / "jobs"
    args = ["submit", str(TOY), "--local", "--shards", "2", "--folder", str(folder), "--no-store",
            "--evaluate-args", "--n-examples 40 --batch-size 16 --eps 100 --attacks quick"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("irob-bench: error: a shard job failed: --eps 100 is larger"), err
