"""Sharded evaluation: `evaluate --shard K/N` + `runs merge` give exactly what one process gives; bad shards are refused
with one line and no row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from irob_bench.artifacts import code_sha256
from irob_bench.attacks.outcomes import load_outcomes
from irob_bench.cli import main
from irob_bench.evaluate import shard_chunks
from irob_bench.leaderboard.store import Store
from tests.factories import staged_card

SUBMISSIONS = Path(__file__).parent / "submissions"
TOY = SUBMISSIONS / "toy.py"
MASKED = SUBMISSIONS / "masked_gradients.py"
SIXTY = ["--n-examples", "60", "--eps", "1", "2", "--quiet", "--batch-size", "16"]
# What may differ between two runs of the same evaluation: when and where it ran, and how long it took.
VOLATILE = {"created_at", "timings", "environment", "outcomes_file"}


@pytest.fixture
def db(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'board.db'}"
    monkeypatch.setenv("IROB_BENCH_DB", url)
    monkeypatch.setenv("IROB_BENCH_CACHE", str(tmp_path / "cache"))  # checkpoints of interrupted runs go here
    return url


def rows(url: str) -> int:
    return len(Store(url).rows())


def sharded(tmp_path: Path, submission: Path, args: list[str], n: int, tag: str = "s") -> list[str]:
    """Evaluate every shard K/n into tmp_path; return their JSON paths."""
    paths = []
    for k in range(1, n + 1):
        path = str(tmp_path / f"{tag}{k}.json")
        assert main(["evaluate", str(submission), *args, "--shard", f"{k}/{n}", "--json", path]) == 0
        paths.append(path)
    return paths


def same_run(a: Path, b: Path) -> None:
    """Equal results (but for time and place) and byte-identical outcomes files."""
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    assert {k: v for k, v in first.items() if k not in VOLATILE} == {k: v for k, v in second.items() if k not in VOLATILE}
    assert Path(f"{a}.outcomes.npz").read_bytes() == Path(f"{b}.outcomes.npz").read_bytes()


def test_shards_are_whole_chunks_disjoint_contiguous_and_cover_every_point():
    whole = shard_chunks(60, 16)
    assert [len(c) for c in whole] == [16, 16, 16, 12]
    parts = [shard_chunks(60, 16, (k, 3)) for k in (1, 2, 3)]
    assert [len(p) for p in parts] == [1, 1, 2]
    assert [c.tolist() for p in parts for c in p] == [c.tolist() for c in whole]  # the same batches, in order


def test_two_shards_merged_equal_one_process_on_60_points_at_two_eps(db, tmp_path, capsys):
    one = tmp_path / "one.json"
    assert main(["evaluate", str(TOY), *SIXTY, "--json", str(one), "--no-store"]) == 0
    merged = tmp_path / "merged.json"
    assert main(["runs", "merge", *sharded(tmp_path, TOY, SIXTY, 2), "--json", str(merged)]) == 0
    assert "2 shards merged; stored as run" in capsys.readouterr().out
    same_run(one, merged)
    result = json.loads(merged.read_text())
    assert result["settings"]["n_examples"] == 60 and result["shard"] is None and rows(db) == 1
    assert Store(db).rows()[0].provenance == "imported"  # shard files from anywhere: labelled as checked files
    outcomes = load_outcomes(f"{merged}.outcomes.npz")
    assert outcomes.robust_pgd.shape == (60, 2) and outcomes.robust_in is not None  # the in-distribution attack ran

    # control: the comparison can fail -- another attack seed gives other outcomes bytes
    other = tmp_path / "seed1.json"
    assert main(["evaluate", str(TOY), *SIXTY, "--seed", "1", "--json", str(other), "--no-store"]) == 0
    with pytest.raises(AssertionError):
        same_run(one, other)


def test_merged_flags_equal_one_process_flags(db, tmp_path):
    """Count flags (vanishing gradients, black-box hits) and array flags (stages, in-distribution) of a masked model:
    three shards merged carry exactly the flags of one process."""
    args = [*SIXTY, "--attacks", "quick"]
    one = tmp_path / "one.json"
    assert main(["evaluate", str(MASKED), *args, "--json", str(one), "--no-store"]) == 0
    merged = tmp_path / "merged.json"
    assert main(["runs", "merge", *sharded(tmp_path, MASKED, args, 3), "--json", str(merged), "--no-store"]) == 0
    flags = {f["name"] for f in json.loads(one.read_text())["flags"]}
    assert {"vanishing_gradients", "black_box_finds_errors", "later_stage_breaks_more"} <= flags
    same_run(one, merged)
    shard_flags = json.loads((tmp_path / "s1.json").read_text())["flags"]
    assert shard_flags != json.loads(one.read_text())["flags"], "control: a shard alone has other counts"


def one_line_error(capsys, text: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and text in err, err


def test_bad_shards_are_refused_with_one_line_and_no_row(db, tmp_path, capsys):
    args = ["--n-examples", "12", "--eps", "1", "--quiet", "--attacks", "quick", "--batch-size", "6"]
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(TOY), *args, "--shard", "3/2", "--json", str(tmp_path / "x.json")])
    assert exit_.value.code == 2
    one_line_error(capsys, "expected K/N with 1 <= K <= N, got '3/2'")
    assert main(["evaluate", str(TOY), *args, "--shard", "1/2"]) == 2
    one_line_error(capsys, "--shard 1/2 needs --json FILE")
    assert main(["evaluate", str(TOY), *args[:-2], "--shard", "2/2", "--json", str(tmp_path / "x.json")]) == 2
    one_line_error(capsys, "the 12 points make 1 chunks of --batch-size 250")

    first, second = sharded(tmp_path, TOY, args, 2)
    other = sharded(tmp_path, TOY, [*args, "--seed", "1"], 2, tag="seed1-")
    whole = str(tmp_path / "whole.json")
    assert main(["evaluate", str(TOY), *args, "--json", whole, "--no-store"]) == 0
    capsys.readouterr()
    other_code = tmp_path / "other-code2.json"  # shard 2 as another checkout of irob-bench would have made it
    raw = json.loads(Path(second).read_text())
    raw["environment"]["irob_bench_code"] = "f" * 64
    other_code.write_text(json.dumps(raw))
    shutil.copy(f"{second}.outcomes.npz", f"{other_code}.outcomes.npz")
    cases = {
        (first, str(other_code)): f"runs merge: {other_code} was made by other irob-bench code than {first}",
        (first, other[1]): "not shards of one evaluation",
        (first, first): "shard 1/2 given more than once (overlap)",
        (second,): "shard 1/2 missing",
        (first, second, second): "given more than once",
        (whole, second): "is a whole run, not a shard",
    }
    for paths, message in cases.items():
        assert main(["runs", "merge", *paths]) == 2
        one_line_error(capsys, message)
    assert rows(db) == 0
    # control: the right shards merge and store one row, which records the code that made it
    assert main(["runs", "merge", first, second]) == 0 and rows(db) == 1
    [row] = Store(db).rows()
    assert Store(db).get(row.run_id).environment["irob_bench_code"] == code_sha256()


def test_a_shard_is_never_stored_alone(db, tmp_path, capsys):
    shard = sharded(tmp_path, TOY, ["--n-examples", "8", "--eps", "1", "--quiet", "--attacks", "quick",
                                    "--batch-size", "4"], 2)[0]
    capsys.readouterr()
    assert main(["runs", "import", shard]) == 2
    one_line_error(capsys, "part of a run, not a run")
    assert rows(db) == 0



def test_shard_files_may_be_made_on_a_staged_card_but_merge_only_on_the_shipped_data(db, tmp_path, capsys):
    """`--shard K/N` files wait for `runs merge`, so a card staged for release may be evaluated in shards (how the
    saturated-cifar v1.0 rows were made); the merge records the run on the shipped card, so it refuses shards whose
    data is not that card's (it used to merge them as if they were). Control: the shards of the other tests merge."""
    out = tmp_path / "s1.json"
    assert main(["evaluate", str(TOY), *SIXTY, "--shard", "1/1", "--json", str(out), "--dataset", str(staged_card(tmp_path))]) == 0
    capsys.readouterr()
    assert main(["runs", "merge", str(out), "--no-store"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "images_sha256 differ from the mnist" in err, err


def test_merge_refuses_a_db_it_would_ignore(db, tmp_path, capsys):
    """`runs merge --no-store --db X` stored nothing and said nothing of X. Control: the merges above, with a --db."""
    (tmp_path / "s1.json").write_text("{}")  # refused before it is read
    assert main(["runs", "merge", str(tmp_path / "s1.json"), "--no-store", "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--db names where to store the run, but --no-store stores nothing" in err, err
