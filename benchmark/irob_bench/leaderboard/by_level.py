"""Runs on saturation levels pivoted by p: Ding et al.'s table in kind, one row per training method and level.

The ranked tables compare submissions on one dataset; the saturation experiment compares one training method across
datasets (clean accuracy roughly flat while robust accuracy moves with p), so this view puts a method's levels one
under the other, each with its Wilson 95% intervals and its level's ceiling, or the reason the level has none.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence

from irob_bench.errors import IrobError
from irob_bench.leaderboard import FORMATS
from irob_bench.leaderboard.intervals import accuracy_interval
from irob_bench.leaderboard.render import MISSING, markdown_table, percent, text_table, with_interval
from irob_bench.leaderboard.store import LeaderboardRow


def level_runs(rows: Sequence[LeaderboardRow], levels: Mapping[str, float]) -> list[tuple[float, LeaderboardRow]]:
    """(p, run) per training method, attack preset, dataset version and level: the run on the most points, the first
    stored among equals (as a ranked table picks a submission's run), sorted by method, preset, version, then p."""
    chosen: dict[tuple[str, str, str, float], LeaderboardRow] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.run_id)):
        if (p := levels.get(row.dataset)) is None:
            continue
        key = (row.training, row.attack_preset, row.dataset_version, p)
        if key not in chosen or row.n_examples > chosen[key].n_examples:
            chosen[key] = row
    return [(key[3], chosen[key]) for key in sorted(chosen)]


def _record(p: float, row: LeaderboardRow, eps: float) -> dict[str, object]:
    """One pivoted row as raw numbers: fractions with their Wilson 95% bounds, None where the run has no value."""
    values = row.at(eps)

    def with_bounds(name: str, fraction: float | None) -> dict[str, object]:
        ci = None if fraction is None else accuracy_interval(fraction, row.n_examples)
        return {name: fraction, f"{name}_low": ci and ci.low, f"{name}_high": ci and ci.high}

    return {
        "training": row.training, "attack_preset": row.attack_preset, "p": f"{p:g}", "dataset": row.dataset,
        "dataset_version": row.dataset_version, "eps": eps, "n_examples": row.n_examples, "run_id": row.run_id,
        **with_bounds("clean_accuracy", row.clean_accuracy),
        **with_bounds("robust_accuracy_pgd", values and values.robust_accuracy_pgd),
        **with_bounds("robust_accuracy_in_distribution", values and values.robust_accuracy_in_distribution),
        "ceiling_classifier": values and values.ceiling_classifier,
    }  # fmt: skip


def render_by_level(
    rows: Sequence[LeaderboardRow], levels: Mapping[str, float], eps: float, fmt: str = "table",
    notes: Mapping[str, str] | None = None,
) -> str:
    """The pivot at `eps` in one format. `levels` maps dataset names to their saturation level p; `notes` (dataset
    name -> text: what its ceilings rest on, or why it has none) are printed under the table by level."""
    if fmt not in FORMATS:
        raise IrobError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    runs = level_runs(rows, levels)
    if not runs:
        raise IrobError("no run on a dataset with a saturation level (p) to pivot")
    records = [_record(p, row, eps) for p, row in runs]
    if fmt == "json":
        return json.dumps(records, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
        return out.getvalue().rstrip("\n")
    headers = ["training", "attacks", "version", "p", "clean", f"PGD@{eps:g}", f"in-dist@{eps:g}", f"ceiling@{eps:g}", "n",
               "run"]  # fmt: skip
    cells = [[row.training, row.attack_preset, row.dataset_version, f"{p:g}",
              *(MISSING if r[k] is None else with_interval(r[k], row.n_examples)  # type: ignore[arg-type]
                for k in ("clean_accuracy", "robust_accuracy_pgd", "robust_accuracy_in_distribution")),
              "not established" if r["ceiling_classifier"] is None else percent(r["ceiling_classifier"]),  # type: ignore[arg-type]
              str(row.n_examples), str(row.run_id)] for (p, row), r in zip(runs, records)]  # fmt: skip
    if fmt == "markdown":
        cells = [[cell.replace("|", "\\|") for cell in line] for line in cells]
    right = [False, False, False, True, True, True, True, True, True, True]
    table = (markdown_table if fmt == "markdown" else text_table)(headers, cells, right)
    title = (f"Saturation levels at eps {eps:g}: accuracy in % with its Wilson 95% interval; ceiling: the classifier "
             "ceiling (Thm 4.3) of each run, where its level has Lipschitz constants")
    shown = sorted({(p, row.dataset) for p, row in runs})
    legend = [f"p = {p:g}: {(notes or {})[name]}" for p, name in shown if name in (notes or {})]
    if fmt == "markdown":
        return "\n\n".join([f"### {title}", table, *legend])
    return "\n".join([title, table, *legend])
