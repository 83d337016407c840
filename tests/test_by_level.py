"""Runs pivoted by saturation level (`irob-bench leaderboard --by-p`): one row per method and level, its numbers and
intervals, the run it picks, and its refusals."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from irob_bench.cli import main
from irob_bench.errors import IrobError
from irob_bench.leaderboard.by_level import level_runs, render_by_level
from irob_bench.leaderboard.intervals import accuracy_interval
from irob_bench.leaderboard.store import Store

from .factories import leaderboard_row, make_result

LEVELS = {"sat-p2": 2.0, "sat-p8": 8.0, "sat-pinf": math.inf}
AT = "PGD-L2 adversarial training"


@pytest.fixture
def rows():
    return [
        leaderboard_row(1, "at-p8", {0.5: 0.97, 1.0: 0.90}, dataset="sat-p8", training=AT, n=1000),
        leaderboard_row(2, "at-p2", {0.5: 0.98, 1.0: 0.83}, dataset="sat-p2", training=AT, ceiling=0.99, n=1000),
        leaderboard_row(3, "std-p2", {0.5: 0.88, 1.0: 0.28}, dataset="sat-p2", training="standard", in_dist=0.93),
        leaderboard_row(4, "at-pinf", {0.5: 0.95, 1.0: 0.91}, dataset="sat-pinf", training=AT, n=2000),
        leaderboard_row(5, "at-p8-small", {1.0: 0.99}, dataset="sat-p8", training=AT, n=100),  # fewer points: not shown
        leaderboard_row(6, "mnist", {1.0: 0.5}, dataset="mnist", training=AT),  # no saturation level: not shown
    ]


def test_a_method_reads_down_its_levels_in_order_of_p(rows) -> None:
    picked = [(p, r.run_id) for p, r in level_runs(rows, LEVELS)]
    assert picked == [(2.0, 2), (8.0, 1), (math.inf, 4), (2.0, 3)]


def test_the_run_on_the_most_points_represents_its_level_and_the_first_stored_among_equals(rows) -> None:
    more = leaderboard_row(7, "at-p8-later", {1.0: 0.10}, dataset="sat-p8", training=AT, n=1000)
    assert [r.run_id for p, r in level_runs([*rows, more], LEVELS) if p == 8.0] == [1]
    most = leaderboard_row(8, "at-p8-most", {1.0: 0.10}, dataset="sat-p8", training=AT, n=5000)
    assert [r.run_id for p, r in level_runs([*rows, most], LEVELS) if p == 8.0] == [8]


def test_other_presets_and_versions_get_rows_of_their_own(rows) -> None:
    thorough = leaderboard_row(7, "at-p8", {1.0: 0.85}, dataset="sat-p8", training=AT, preset="thorough")
    newer = leaderboard_row(8, "at-p8", {1.0: 0.80}, dataset="sat-p8", training=AT, version="2.0")
    picked = [r.run_id for p, r in level_runs([*rows, thorough, newer], LEVELS) if p == 8.0]
    assert sorted(picked) == [1, 7, 8]


def test_json_carries_the_numbers_and_their_wilson_intervals(rows) -> None:
    records = json.loads(render_by_level(rows, LEVELS, 1.0, "json"))
    first = records[0]
    assert (first["p"], first["run_id"], first["eps"]) == ("2", 2, 1.0)
    assert first["robust_accuracy_pgd"] == 0.83 and first["ceiling_classifier"] == 0.99
    ci = accuracy_interval(0.83, 1000)
    assert (first["robust_accuracy_pgd_low"], first["robust_accuracy_pgd_high"]) == (ci.low, ci.high)
    assert first["robust_accuracy_in_distribution"] is None and first["robust_accuracy_in_distribution_low"] is None
    assert [r["p"] for r in records] == ["2", "8", "inf", "2"]
    assert next(r for r in records if r["run_id"] == 3)["robust_accuracy_in_distribution"] == 0.93


def test_a_run_without_the_eps_shows_no_numbers_there(rows) -> None:
    records = json.loads(render_by_level(rows, LEVELS, 0.25, "json"))
    assert all(r["robust_accuracy_pgd"] is None for r in records) and records[0]["clean_accuracy"] == 0.98


def test_table_and_markdown_show_intervals_and_each_levels_ceiling_or_its_reason(rows) -> None:
    notes = {"sat-p8": "not established: s_8 has an infinite slope at 1/2"}
    table = render_by_level(rows, LEVELS, 1.0, "table", notes)
    lines = table.splitlines()
    at_p2 = next(line for line in lines if line.rstrip().endswith(" 2"))
    assert "83.0% [" in at_p2 and "99.0%" in at_p2 and " 2  " in at_p2
    at_p8 = next(line for line in lines if line.rstrip().endswith(" 1"))
    assert "90.0% [" in at_p8 and "not established" in at_p8
    assert "p = 8: not established: s_8 has an infinite slope at 1/2" in table
    markdown = render_by_level(rows, LEVELS, 1.0, "markdown", notes)
    assert "| training | attacks | version | p | clean | PGD@1 | in-dist@1 | ceiling@1 | n | run |" in markdown
    assert "| inf |" in markdown


def test_csv_has_one_line_per_level_run(rows) -> None:
    lines = list(csv.DictReader(io.StringIO(render_by_level(rows, LEVELS, 1.0, "csv"))))
    assert [line["run_id"] for line in lines] == ["2", "1", "4", "3"]
    assert lines[1]["ceiling_classifier"] == "" and lines[0]["ceiling_classifier"] == "0.99"


def test_nothing_to_pivot_and_unknown_formats_are_refused(rows) -> None:
    with pytest.raises(IrobError, match="no run on a dataset with a saturation level"):
        render_by_level([r for r in rows if r.dataset == "mnist"], LEVELS, 1.0)
    with pytest.raises(IrobError, match="unknown format 'xml'"):
        render_by_level(rows, LEVELS, 1.0, "xml")


def test_the_command_pivots_stored_saturated_runs_and_refuses_boards_without_them(tmp_path, capsys) -> None:
    db = f"sqlite:///{tmp_path / 'board.db'}"
    with Store(db) as store:
        for k, name in enumerate(["saturated-cifar-p2", "saturated-cifar-p8", "mnist"]):
            store.save(make_result(f"sub-{k}", dataset=name))
    assert main(["leaderboard", "--db", db, "--by-p", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted(r["dataset"] for r in records) == ["saturated-cifar-p2", "saturated-cifar-p8"]
    assert main(["leaderboard", "--db", db, "--dataset", "mnist", "--by-p"]) == 2
    assert "--by-p: no run on a shipped dataset with a saturation level (datasets with runs: mnist)" in capsys.readouterr().err
    assert main(["leaderboard", "--db", db, "--by-p", "--format", "html", "--out", str(tmp_path / "site")]) == 2
    assert "--by-p prints a table" in capsys.readouterr().err
