"""Leaderboard rendering: ranking, omitted empty columns, and each format's numbers."""

from __future__ import annotations

import csv
import io
import json

import pytest

from irob_bench.errors import IrobError
from irob_bench.leaderboard.intervals import accuracy_interval
from irob_bench.leaderboard.render import (
    UNITS_NOTE,
    bounds_note,
    distrust,
    markdown_table,
    ranked_groups,
    render,
    render_run,
    text_table,
)
from irob_bench.leaderboard.store import LeaderboardRow, Verification
from irob_bench.metrics import VIOLATION
from irob_bench.results import CertificateRecord, SanityFlag

from .factories import leaderboard_row as _row
from .factories import make_result


@pytest.fixture
def rows() -> list[LeaderboardRow]:
    return [
        _row(1, "alpha", {1.0: 0.90, 3.0: 0.20}, in_dist=0.5),
        _row(2, "beta", {1.0: 0.70, 3.0: 0.40}, ceiling=0.8),
        _row(3, "gamma", {1.0: 0.80, 3.0: 0.40}, clean=0.99),
        _row(4, "delta", {1.0: 0.95}),  # never evaluated at eps 3
    ]


def _ranking(text: str) -> list[tuple[str, str]]:
    table = [line.split() for line in text.splitlines()[3:-1]]  # the last line says what the numbers guarantee
    return [(cells[0], cells[1]) for cells in table]


def test_ranks_by_pgd_at_largest_eps_with_ties_sharing_a_rank(rows: list[LeaderboardRow]) -> None:
    text = render(rows)
    assert text.splitlines()[0] == "mnist v1.0, attacks standard: ranked by robust accuracy at eps 3"
    # gamma and beta tie at 40.0% (gamma first: higher clean accuracy); delta has no eps-3 number: unranked, last
    assert _ranking(text) == [("1", "gamma"), ("1", "beta"), ("3", "alpha"), ("—", "delta")]


def test_chosen_eps_changes_the_ranking(rows: list[LeaderboardRow]) -> None:
    assert _ranking(render(rows, eps=1.0)) == [("1", "delta"), ("2", "alpha"), ("3", "gamma"), ("4", "beta")]
    with pytest.raises(IrobError, match=r"no run evaluated eps 2 \(stored eps: 1, 3\)"):
        render(rows, eps=2.0)
    with pytest.raises(IrobError, match="unknown format 'xml'"):
        render(rows, fmt="xml")


def test_table_shows_percentages_and_omits_empty_columns(rows: list[LeaderboardRow]) -> None:
    header = render(rows).splitlines()[1].split()
    assert header == ["rank", "submission", "training", "clean", "PGD@1", "PGD@3", "in-dist@1", "in-dist@3",
                      "ceiling@1", "ceiling@3", "gap@1", "gap@3", "n", "date", "flags", "source", "run"]  # fmt: skip
    beta = next(line for line in render(rows).splitlines() if " beta " in line).split()
    # the gap is a difference of accuracies: percentage points, not a percentage
    assert beta[4:15] == ["98.0%", "70.0%", "40.0%", "—", "—", "80.0%", "80.0%", "10.0", "pp", "40.0", "pp"]
    assert beta[15:] == ["500", "2025-03-02", "none", "evaluated", "2"]
    no_ceilings = render([r for r in rows if r.submission != "beta"]).splitlines()[1]
    assert "ceiling@" not in no_ceilings and "gap@" not in no_ceilings and "in-dist@1" in no_ceilings


def test_markdown_is_a_table_per_dataset(rows: list[LeaderboardRow]) -> None:
    piped = _row(9, "pipe", {1.0: 0.5}, dataset="imagenet10").model_copy(update={"training": "trades | beta=6"})
    text = render([*rows, piped], fmt="markdown")
    blocks = text.split("\n\n")
    assert blocks[0] == "### imagenet10 v1.0, attacks standard: ranked by robust accuracy at eps 1"
    assert blocks[1] == bounds_note(certified=False) and blocks[2] == UNITS_NOTE and "trades \\| beta=6" in blocks[3]
    assert blocks[4] == "### mnist v1.0, attacks standard: ranked by robust accuracy at eps 3"
    lines = blocks[7].splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[1].startswith("| ---: | --- | --- | ---: |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    # accuracies carry their Wilson 95% interval over the n = 500 points; the gap is in points
    assert lines[2].startswith("| 1 | gamma | pgd-l2 eps=2 | 99.0% [97.7, 99.6] | 80.0% [76.3, 83.3] | 40.0% [35.8, 44.4] |")
    beta = next(line for line in lines if "| beta |" in line)
    assert "| 10.0 pp | 40.0 pp |" in beta


def test_json_carries_raw_numbers(rows: list[LeaderboardRow]) -> None:
    parsed = json.loads(render(rows, fmt="json"))
    assert [(r["rank"], r["submission"]) for r in parsed] == [(1, "gamma"), (1, "beta"), (3, "alpha"), (None, "delta")]
    beta = parsed[1]
    assert beta["ranked_at_eps"] == 3.0 and beta["clean_accuracy"] == 0.98 and beta["n_examples"] == 500
    assert beta["per_eps"][1] == rows[1].per_eps[1].model_dump()
    assert LeaderboardRow.model_validate({k: v for k, v in beta.items() if k not in ("rank", "tied", "ranked_at_eps")}) == rows[1]


def test_csv_cells_are_numbers_or_empty(rows: list[LeaderboardRow]) -> None:
    records = list(csv.DictReader(io.StringIO(render(rows, fmt="csv"))))
    assert [r["submission"] for r in records] == ["gamma", "beta", "alpha", "delta"]
    beta = records[1]
    assert float(beta["robust_accuracy_pgd@3"]) == 0.40 and float(beta["gap@3"]) == pytest.approx(0.40)
    assert float(beta["clean_accuracy"]) == 0.98 and int(beta["n_examples"]) == 500
    assert beta["robust_accuracy_in_distribution@1"] == "" and records[3]["rank"] == ""
    assert beta["created_at"] == "2025-03-02T12:00:00+00:00"
    assert float(records[2]["robust_accuracy_in_distribution@3"]) == 0.5


def test_empty_board_in_each_format() -> None:
    assert render([], fmt="table") == "no runs stored yet"
    assert json.loads(render([], fmt="json")) == []
    assert render([], fmt="csv").startswith("rank,tied,ranked_at_eps,run_id,submission")


def test_render_run_has_every_section() -> None:
    result = make_result(with_ceilings=False)
    text = render_run(result, run_id=7)
    assert text.startswith("run 7: smallcnn-pgd on mnist v1.0\n")
    for head in ("submission", "dataset", "settings", "clean accuracy", "robust accuracy and ceilings",
                 "ceilings not established", "flags", "timings", "environment"):  # fmt: skip
        assert f"\n\n{head}\n" in text
    eps_block = text.split("robust accuracy and ceilings\n")[1].split("\n\n")[0].splitlines()
    # accuracies with their Wilson interval over the run's points, then what each number guarantees
    n = result.settings.n_examples
    pgd, in_dist = accuracy_interval(0.912, n), accuracy_interval(0.957, n)
    assert eps_block[2].split() == ["1", "not", "run", "91.2%", f"[{100 * pgd.low:.1f},", f"{100 * pgd.high:.1f}]", "95.7%",
                                    f"[{100 * in_dist.low:.1f},", f"{100 * in_dist.high:.1f}]", "—", "—", "—", "—"]
    assert eps_block[-2] == f"  {bounds_note(certified=False)}" and f"over the {n} test points" in eps_block[-1]
    assert "Ceilings from" not in text  # control: without a card note, none is invented
    assert "eps 1 ceiling_classifier: no Lipschitz estimate in the card" in text
    assert result.fingerprint() in text


def test_table_helpers_align() -> None:
    text = text_table(["a", "num"], [["xyz", "1"], ["b", "100"]], [False, True])
    assert text.splitlines() == ["a    num", "---  ---", "xyz    1", "b    100"]
    assert markdown_table(["a", "n"], [["x", "1"]], [False, True]).splitlines() == ["| a | n |", "| --- | ---: |", "| x | 1 |"]


def test_notes_say_under_each_heading_what_the_ceilings_rest_on(rows: list[LeaderboardRow]) -> None:
    from irob_bench.commands.leaderboard import ceiling_notes

    notes = ceiling_notes({"mnist", "saturated-cifar-p8", "not-shipped"})
    assert set(notes) == {"mnist", "saturated-cifar-p8"}
    assert "over the latent space" in notes["mnist"] and "reference alpha = 0.015" in notes["mnist"]
    assert "not established" in notes["saturated-cifar-p8"]
    text = render(rows, fmt="markdown", notes=notes).splitlines()
    heading = text.index("### mnist v1.0, attacks standard: ranked by robust accuracy at eps 3")
    assert text[heading + 2] == notes["mnist"] and text[heading + 4] == bounds_note(certified=False)
    assert text[heading + 6] == UNITS_NOTE and text[heading + 8].startswith("| rank")
    assert notes["mnist"] not in render(rows, fmt="markdown")  # control: no notes, no line


def test_runs_with_different_attack_presets_are_never_ranked_in_one_table() -> None:
    rows = [_row(1, "a", {1.0: 0.5}), _row(2, "b", {1.0: 0.6}, preset="quick"), _row(3, "c", {1.0: 0.4})]
    blocks = render(rows, fmt="markdown").split("### ")[1:]
    assert [b.splitlines()[0] for b in blocks] == [
        "mnist v1.0, attacks quick: ranked by robust accuracy at eps 1",
        "mnist v1.0, attacks standard: ranked by robust accuracy at eps 1",
    ]
    assert "| b |" in blocks[0] and "| a |" not in blocks[0] and "| c |" not in blocks[0]
    assert "| a |" in blocks[1] and "| c |" in blocks[1] and "| b |" not in blocks[1]
    same = render([_row(1, "a", {1.0: 0.5}), _row(3, "c", {1.0: 0.4})])
    assert same.count("ranked by") == 1, "control: one preset, one table"


def test_render_run_shows_the_per_stage_report() -> None:
    from irob_bench.results import StageAccuracy

    result = make_result(with_ceilings=False)
    assert "unconstrained cascade" not in render_run(result), "control: no stages, no report"
    stages = [StageAccuracy(name="apgd-ce", robust_accuracy=[0.95, 0.7, 0.4]),
              StageAccuracy(name="apgd-t", robust_accuracy=[0.912, 0.655, 0.301])]
    result = result.model_copy(update={"metrics": result.metrics.model_copy(update={"unconstrained_stages": stages})})
    block = render_run(result).split("unconstrained cascade (standard preset)\n")[1].split("\n\n")[0].splitlines()
    assert block[0].split() == ["after", "stage", "eps", "1", "eps", "2", "eps", "3"]
    assert block[2].split() == ["apgd-ce", "95.0%", "70.0%", "40.0%"]
    assert block[3].split() == ["apgd-t", "91.2%", "65.5%", "30.1%"]


def test_a_run_made_with_an_earlier_definition_of_a_preset_gets_its_own_label() -> None:
    """The current `standard` reads as `standard`; the same name with other budgets as `standard@<fingerprint>`
    (the control: changing one budget changes the label), so old and new runs are never ranked together."""
    from irob_bench.attacks.presets import PRESETS
    from irob_bench.leaderboard.store import attack_preset

    current = PRESETS["standard"].model_dump()
    assert attack_preset(current) == "standard"
    assert attack_preset({**current, "eot_samples": 20, "verify_draws": 5}) == "standard", "randomized copies match"
    older = {**current, "latent": {**current["latent"], "precondition": None}}
    label = attack_preset(older)
    assert label.startswith("standard@") and len(label) == len("standard@") + 8
    assert attack_preset({**older, "latent": {**older["latent"], "steps": 100}}) not in (label, "standard")
    assert attack_preset({"pgd": {"steps": 40}}) == "pgd-2x40"


def test_custom_configurations_share_a_table_only_when_identical() -> None:
    """A 1-step custom attack used to share the one "custom" table with every other custom run, where its high
    robust accuracy ranked first. Now each custom configuration is its own `custom@<fingerprint>`; the control: the
    same custom configuration twice gets one label."""
    from irob_bench.attacks.presets import PRESETS
    from irob_bench.leaderboard.store import attack_preset

    strong = {**PRESETS["thorough"].model_dump(), "preset": "custom"}
    weak = {**strong, "unconstrained": [{**strong["unconstrained"][0], "steps": 1}]}
    assert attack_preset(weak).startswith("custom@") and attack_preset(strong).startswith("custom@")
    assert attack_preset(weak) != attack_preset(strong)
    assert attack_preset(dict(weak)) == attack_preset(weak)


def test_certified_column_shows_a_value_none_or_not_run_never_a_silent_blank() -> None:
    board = [
        _row(1, "lipschitz", {2.0: 0.60}, certified=(0.45, None)),
        _row(2, "tanh-net", {2.0: 0.70}, certified=(None, "no certificate: layer Tanh is not one the benchmark can bound")),
        _row(3, "old-run", {2.0: 0.50}, certified=(None, "not computed: the run was made before irob-bench certified")),
    ]
    table = render(board, fmt="markdown")
    header = next(i for i, line in enumerate(table.splitlines()) if line.startswith("| rank"))
    assert "certified@2" in table.splitlines()[header]
    cells = {line.split("|")[2].strip(): line.split("|")[5].strip() for line in table.splitlines()[header + 2 :]}
    assert cells == {"lipschitz": "45.0% [40.7, 49.4]", "tanh-net": "none", "old-run": "not run"}
    dumped = {r["submission"]: r["per_eps"][0] for r in json.loads(render(board, fmt="json"))}
    assert dumped["lipschitz"]["certified_accuracy"] == 0.45
    assert dumped["tanh-net"]["certified_accuracy"] is None and "Tanh" in dumped["tanh-net"]["certified_reason"]


def test_control_boards_without_certification_keep_their_old_columns(rows: list[LeaderboardRow]) -> None:
    assert "certified" not in render(rows, fmt="markdown")


def test_render_run_shows_the_certificate_and_its_tightness() -> None:
    result = make_result()
    record = CertificateRecord(source="benchmark", method="Lipschitz margin", lipschitz_bound=1.0, looseness=1.0,
                               tightness="tight")
    per_eps = [m.model_copy(update={"certified_accuracy": 0.4}) for m in result.metrics.per_eps]
    metrics = result.metrics.model_copy(update={"per_eps": per_eps, "certificate": record})
    text = render_run(result.model_copy(update={"metrics": metrics}))
    assert "\n\ncertificate\n" in text and "tight (a Lipschitz-constrained network)" in text
    eps_block = text.split("robust accuracy and ceilings\n")[1].split("\n\n")[0].splitlines()
    cells = eps_block[2].split()
    assert [cells[0], cells[1], cells[4]] == ["1", "40.0%", "91.2%"] and cells[2].startswith("[")
    assert f"  {bounds_note(certified=True)}" in eps_block and "certified is a lower bound" in bounds_note(True)


def test_one_run_with_an_unusual_eps_does_not_choose_the_ranking_eps(rows: list[LeaderboardRow]) -> None:
    odd = _row(5, "odd", {1.5: 0.99, 3.5: 0.99})  # would rank alone at 3.5, every other row unranked
    assert ranked_groups([*rows, odd], None, None)[0][1][0] == 3.0
    assert ranked_groups([rows[0], odd], None, None)[0][1][0] == 3.5  # no majority: the largest of the most evaluated
    assert ranked_groups([odd, _row(6, "odd2", {3.5: 0.5})], None, None)[0][1][0] == 3.5  # control: a real majority


def test_a_run_on_few_points_is_listed_after_the_ranked_ones_without_a_rank(rows: list[LeaderboardRow]) -> None:
    """A 10-point run at 100% would lead a table of 500-point runs on a fluke; it is shown, unranked, before the runs
    that lack the ranking eps. Control: a table with no run of 300 points ranks its runs of the largest n."""
    tiny = _row(5, "tiny", {1.0: 1.0, 3.0: 1.0}, n=10)
    assert _ranking(render([*rows, tiny])) == [("1", "gamma"), ("1", "beta"), ("3", "alpha"), ("—", "tiny"), ("—", "delta")]
    assert [r["rank"] for r in json.loads(render([*rows, tiny], fmt="json"))][-2:] == [None, None]
    small = [tiny, _row(6, "small", {1.0: 0.9, 3.0: 0.5}, n=10)]
    assert _ranking(render(small)) == [("1", "tiny"), ("2", "small")]
    assert _ranking(render([*small, _row(7, "larger", {3.0: 0.4}, n=20)]))[0] == ("1", "larger")  # the largest n decides


def test_a_submission_is_ranked_once_by_its_run_on_the_most_points_not_its_best(rows: list[LeaderboardRow]) -> None:
    """The same submission run again (another batch size, device, or just again) cannot fill the table or pick its
    luckiest run: its run on the most points is ranked (the first stored among equals), its others are listed
    unranked after the ranked rows. Control: the same numbers from different submissions are all ranked."""
    gamma = rows[2]
    assert gamma.submission == "gamma" and gamma.n_examples == 500
    luckier = _row(5, "gamma", {1.0: 0.99, 3.0: 0.99}, submission_id=gamma.submission_id)  # stored later, n = 500
    larger = _row(6, "gamma", {1.0: 0.1, 3.0: 0.1}, submission_id=gamma.submission_id, n=1000)
    ranking = _ranking(render([*rows, luckier, larger]))
    assert ranking == [("1", "beta"), ("2", "alpha"), ("3", "gamma"), ("—", "gamma"), ("—", "gamma"), ("—", "delta")]
    ranks = {r["run_id"]: r["rank"] for r in json.loads(render([*rows, luckier, larger], fmt="json"))}
    assert (ranks[6], ranks[gamma.run_id], ranks[5]) == (3, None, None)  # the 1,000-point run, at 10%
    ranks = {r["run_id"]: r["rank"] for r in json.loads(render([*rows, luckier], fmt="json"))}
    assert (ranks[gamma.run_id], ranks[5]) == (1, None)  # equal n: the first stored (tied with beta), not the luckier
    control = [*rows, *(r.model_copy(update={"submission_id": 100 + r.run_id}) for r in (luckier, larger))]
    assert [rank for rank, _ in _ranking(render(control))].count("—") == 1  # only delta (no ranking eps)


def _flagged(row: LeaderboardRow, *flags: tuple[str, float | None]) -> LeaderboardRow:
    return row.model_copy(update={"flags": [SanityFlag(name=n, message="m", eps=e) for n, e in flags]})


def test_a_run_above_its_own_ceiling_is_not_ranked_however_high(rows: list[LeaderboardRow]) -> None:
    """A robust accuracy above the run's ceiling contradicts a theorem's upper bound (a missed attack, a wrong card or
    an altered result): such a run is listed after the ranked rows, without a rank, with its flag in every format.
    Control: the same run without the flag ranks first."""
    forged = _row(5, "forged", {1.0: 0.99, 3.0: 0.97}, ceiling=0.9)
    flagged = _flagged(forged, (VIOLATION, 3.0), (VIOLATION, 1.0), ("later_stage_breaks_more", 3.0))
    assert _ranking(render([*rows, forged]))[0] == ("1", "forged")
    assert _ranking(render([*rows, flagged])) == [("1", "gamma"), ("1", "beta"), ("3", "alpha"), ("—", "forged"),
                                                  ("—", "delta")]  # fmt: skip
    line = next(line for line in render([*rows, flagged]).splitlines() if " forged " in line)
    assert "above ceiling@3,1; later_stage_breaks_more@3" in line
    assert "above ceiling@3,1" in render([*rows, flagged], fmt="markdown")
    record = next(r for r in csv.DictReader(io.StringIO(render([*rows, flagged], fmt="csv"))) if r["submission"] == "forged")
    assert (record["rank"], record["flags"]) == ("", "above ceiling@3,1; later_stage_breaks_more@3")
    parsed = next(r for r in json.loads(render([*rows, flagged], fmt="json")) if r["submission"] == "forged")
    assert parsed["rank"] is None and [f["name"] for f in parsed["flags"]] == [VIOLATION, VIOLATION, "later_stage_breaks_more"]
    assert distrust(flagged) == "above ceiling at eps 1, 3" and distrust(forged) is None


def test_flags_that_question_no_number_leave_a_run_ranked(rows: list[LeaderboardRow]) -> None:
    """Warnings such as later_stage_breaks_more are shown, not punished: the run's numbers already count what the
    later stage broke. Control (above): 'above ceiling' unranks."""
    noted = _flagged(rows[2], ("later_stage_breaks_more", 3.0), ("in_distribution_not_converged", 3.0))
    assert _ranking(render([rows[0], rows[1], noted]))[0] == ("1", "gamma")
    assert distrust(noted) is None


def test_a_run_disputed_by_verification_is_not_ranked(rows: list[LeaderboardRow]) -> None:
    """A run whose `runs verify` re-evaluation disputed its numbers is listed unranked. Control: verified, it keeps
    its rank."""
    def checked(verdict: str) -> LeaderboardRow:
        record = Verification(verdict=verdict, n=100, seed=1, checked_at="2026-01-01T00:00:00Z", detail="d")
        return rows[2].model_copy(update={"verification": record, "provenance": "imported"})

    assert _ranking(render([rows[0], rows[1], checked("verified")]))[0] == ("1", "gamma")
    assert _ranking(render([rows[0], rows[1], checked("disputed")])) == [("1", "beta"), ("2", "alpha"), ("—", "gamma")]
    assert distrust(checked("disputed")) == "disputed by `runs verify`"


def test_verified_only_ranks_imported_runs_once_runs_verify_confirmed_them(rows: list[LeaderboardRow]) -> None:
    """With --verified an imported run that no check confirmed is listed unranked (a consistent forgery below the
    ceiling is caught only by re-evaluating it); a verified import and a run evaluated into the leaderboard rank.
    Control: without --verified the unchecked import ranks where its numbers put it."""
    record = Verification(verdict="verified", n=100, seed=1, checked_at="2026-01-01T00:00:00Z", detail="d")
    unchecked = rows[2].model_copy(update={"provenance": "imported"})
    checked = rows[1].model_copy(update={"provenance": "imported", "verification": record})
    board = [rows[0], checked, unchecked]  # alpha evaluated, beta verified, gamma unchecked
    assert _ranking(render(board)) == [("1", "gamma"), ("1", "beta"), ("3", "alpha")]
    text = render(board, verified_only=True)
    assert text.splitlines()[0].endswith("at eps 3 (--verified: imported runs ranked once `runs verify` confirmed them)")
    assert _ranking(text) == [("1", "beta"), ("2", "alpha"), ("—", "gamma")]
    assert [r["rank"] for r in json.loads(render(board, fmt="json", verified_only=True))] == [1, 2, None]
    assert distrust(unchecked, verified_only=True) == "imported, not verified by `runs verify`"
    assert distrust(unchecked) is None and distrust(checked, verified_only=True) is None


def test_a_shard_is_printed_over_its_own_points():
    """Found by an audit: a shard's numbers were printed with the whole run's n (its intervals too narrow) and nothing
    said it was a shard. Control: the whole run prints its n."""
    from irob_bench.results import ShardRecord

    whole = make_result()
    counts = [c // 2 for c in whole.metrics.per_class_count]
    half = whole.model_copy(update={"shard": ShardRecord(index=1, of=2),
                                    "metrics": whole.metrics.model_copy(update={"per_class_count": counts})})
    text = render_run(half)
    assert f"shard 1/2: {sum(counts)} of the run's" in text and f"interval over the {sum(counts)} test points" in text
    assert "interval over the 1000 test points" in render_run(whole) and "shard" not in render_run(whole)
