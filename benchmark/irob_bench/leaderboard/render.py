"""Leaderboard output: ranked rows as a text table, Markdown, JSON or CSV, and a readable summary of one run.

Rows are grouped by dataset (name and version) and ranked within each group by PGD robust accuracy at one
eps (default: the largest that more than half of the group's runs evaluated). Given the runs' per-example outcomes, rows the paired test cannot tell apart
share a rank, marked '=' (leaderboard/intervals.py). Table and Markdown show accuracies in percent with one
decimal (Markdown with their Wilson 95% intervals) and the gap in percentage points, and leave out columns that
are empty in every row; JSON and CSV carry raw fractions as numbers, and every column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

from irob_bench.common import DEFAULT_N_EXAMPLES, same_eps
from irob_bench.errors import IrobError
from irob_bench.leaderboard import FORMATS
from irob_bench.leaderboard.intervals import accuracy_interval, tie_groups
from irob_bench.leaderboard.migrations import NOT_CERTIFIED_BEFORE
from irob_bench.leaderboard.paired import RunOutcomes, aligned_pgd
from irob_bench.leaderboard.store import EPS_FIELDS, LeaderboardRow
from irob_bench.metrics import VIOLATION
from irob_bench.results import CertificateRecord, EpsMetrics, EvaluationResult, SanityFlag, StageAccuracy

MISSING = "—"

# Per-eps values in the leaderboard table (field, header prefix) and in `runs show` (field -> header).
_TABLE_EPS_COLUMNS = (
    ("certified_accuracy", "certified"),
    ("robust_accuracy_pgd", "PGD"),
    ("robust_accuracy_in_distribution", "in-dist"),
    ("ceiling_classifier", "ceiling"),
    ("gap", "gap"),
)
_KINDS = {"certified_accuracy": "acc", "robust_accuracy_pgd": "acc", "robust_accuracy_in_distribution": "acc", "ceiling_classifier": "pct", "gap": "pp"}
UNITS_NOTE = ("Accuracies and ceilings in %; in brackets the Wilson 95% interval over the n test points; gap = ceiling "
              "- PGD in percentage points (pp). A rank marked '=' ties with the row ranked first in its group: the "
              "two-sided exact McNemar test on their paired per-example PGD outcomes gives p >= 0.05. Unranked (—): runs on "
              f"fewer than {DEFAULT_N_EXAMPLES} test points (or than the table's largest n, if smaller), a submission's "
              "further runs (each submission is ranked once, by its run on the most points, the first stored among "
              "equals), runs whose numbers are contradicted (robust accuracy above their own ceiling, flag 'above "
              "ceiling', or disputed by `irob-bench runs verify`) and runs that did not evaluate the ranking eps.")
_RUN_EPS_HEADERS = {
    "certified_accuracy": "certified",
    "robust_accuracy_pgd": "PGD",
    "robust_accuracy_in_distribution": "in-dist",
    "ceiling_classifier": "ceiling (classifier)",
    "ceiling_dataset_overall": "ceiling (dataset)",
    "ceiling_dataset_per_class": "ceiling (per class, card alpha)",
    "gap": "gap",
}


@dataclass(frozen=True)
class Ranked:
    """One row of a ranked table: the stored run, its rank (None: listed without one) and whether it ties."""

    rank: int | None  # None: the run did not evaluate the ranking eps
    row: LeaderboardRow
    tied: bool = False  # not significantly different from the first row of its rank (paired test)


@dataclass(frozen=True)
class _Column:
    header: str
    value: Callable[[Ranked], object]
    kind: str  # "pct" (fraction shown as %), "acc" (an accuracy: % with its interval), "pp" (points), "text", "int"


def bounds_note(certified: bool) -> str:
    """What each number guarantees, in one sentence; the certified part only where certified accuracy is shown."""
    true = ("certified is a lower bound and PGD an upper bound on the true robust accuracy (certified counts the points "
            "proven robust, PGD the points the attacks could not break)" if certified else
            "PGD is an upper bound on the true robust accuracy (the points the attacks could not break)")
    return (f"What each number guarantees: {true}; in-dist is an upper bound on the in-distribution robust accuracy "
            "(adversarials on the generator's manifold only); a ceiling is an upper bound on the robust accuracy of the "
            "classifiers it names: the classifier ceiling (Thm 4.3; the tables' 'ceiling') of any classifier with this "
            "run's per-class risks, the risk ceiling (Thm 4.4, first form) of any whose overall risk is at least this "
            "run's, the per-class one (Thm 4.4, second form) of any whose every class risk is at least the card's "
            "alpha, which need not include this run.")


def render(
    rows: Sequence[LeaderboardRow],
    eps: float | None = None,
    fmt: str = "table",
    notes: dict[str, str] | None = None,
    outcomes: dict[int, RunOutcomes] | None = None,
    verified_only: bool = False,
) -> str:
    """The leaderboard in one format; ranked by PGD robust accuracy at `eps` (default: per table, _default_eps).

    `notes` (dataset name -> text), e.g. what the ceilings rest on, is printed under each table and Markdown heading.
    `outcomes` (run id -> its per-example outcomes) lets rows that the paired test cannot separate share a rank.
    `verified_only` ranks only runs evaluated into this leaderboard or confirmed by `runs verify` (`distrust`).
    """
    notes = notes or {}
    if fmt not in FORMATS:
        raise IrobError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    groups = ranked_groups(rows, eps, outcomes, verified_only)
    if fmt == "json":
        return json.dumps([_json_row(r, at) for _, (at, ranked) in groups for r in ranked], indent=2)
    if fmt == "csv":
        return _csv(groups)
    if not groups:
        return "no runs stored yet"
    blocks = []
    for (name, version, attacks), (at, ranked) in groups:
        title = f"{name} v{version}, attacks {attacks}: ranked by robust accuracy at eps {at:g}{VERIFIED_TITLE * verified_only}"
        columns = [c for c in _table_columns(ranked) if c.kind in ("text", "int") or any(c.value(r) is not None for r in ranked)]
        headers = [c.header for c in columns]
        cells = [[_cell(c, r, fmt) for c in columns] for r in ranked]
        right = [c.kind != "text" for c in columns]
        note = f"{notes[name]}\n\n" if name in notes else ""
        guarantees = bounds_note(any(h.startswith("certified") for h in headers))
        if fmt == "markdown":
            note += f"{guarantees}\n\n{UNITS_NOTE}\n\n"
            blocks.append(f"### {title}\n\n{note}" + markdown_table(headers, cells, right))
        else:  # the terminal: the table right under its title, what its numbers guarantee under it
            blocks.append(f"{title}\n{note}" + text_table(headers, cells, right) + f"\n{guarantees}")
    return "\n\n".join(blocks)


Group = tuple[tuple[str, str, str], tuple[float, list["Ranked"]]]


def ranked_groups(rows: Sequence[LeaderboardRow], eps: float | None, outcomes: dict[int, RunOutcomes] | None,
                  verified_only: bool = False) -> list[Group]:  # fmt: skip
    """One ((dataset, version, preset), (ranking eps, ranked rows)) per table, tables in name order."""
    return [(key, _rank(list(group), eps, outcomes or {}, verified_only))
            for key, group in groupby(sorted(rows, key=_group_key), key=_group_key)]  # fmt: skip


def _group_key(row: LeaderboardRow) -> tuple[str, str, str]:
    """One table per dataset, version and attack preset: runs attacked differently are never ranked together."""
    return row.dataset, row.dataset_version, row.attack_preset


def _rank(rows: list[LeaderboardRow], eps: float | None, outcomes: dict[int, RunOutcomes], verified_only: bool
          ) -> tuple[float, list[Ranked]]:  # fmt: skip
    """The ranking eps and the rows ranked by PGD robust accuracy there (equal values, and rows the paired test
    cannot separate, share a rank). Listed after them without a rank: a submission's further runs (one submission,
    one rank: re-running it with another batch size or device, or simply again, cannot fill the table or pick its
    luckiest run), runs whose numbers are contradicted (`distrust`), runs on fewer points than `ranked_min_n` (a
    10-point run at 100% would otherwise lead), then runs that did not evaluate the ranking eps."""
    grid = sorted({v.eps for row in rows for v in row.per_eps})
    if not grid:
        raise IrobError(f"{rows[0].dataset}: no stored run has robust accuracy at any eps")
    at = _default_eps(rows, grid) if eps is None else eps
    if not any(same_eps(e, at) for e in grid):
        raise IrobError(f"{rows[0].dataset}: no run evaluated eps {at:g} (stored eps: {', '.join(f'{e:g}' for e in grid)})")
    floor = ranked_min_n(rows)
    scored = sorted(
        ((value, row) for row in rows if (value := row.at(at)) is not None),
        key=lambda p: (-p[0].robust_accuracy_pgd, -p[1].clean_accuracy, p[1].created_at, p[1].run_id),
    )
    eligible = [pair for pair in scored if pair[1].n_examples >= floor]
    trusted = [distrust(row, verified_only) is None for _, row in eligible]
    distrusted = [Ranked(None, row) for (_, row), ok in zip(eligible, trusted) if not ok]
    eligible = [pair for pair, ok in zip(eligible, trusted) if ok]
    ranked_run = _ranked_run_per_submission([row for _, row in eligible])
    ordered = [pair for pair in eligible if ranked_run[pair[1].submission_id] == pair[1].run_id]
    again = [Ranked(None, row) for _, row in eligible if ranked_run[row.submission_id] != row.run_id]
    ranks = [1 + sum(o.robust_accuracy_pgd > value.robust_accuracy_pgd for o, _ in ordered) for value, _ in ordered]
    leaders = tie_groups(aligned_pgd([row.run_id for _, row in ordered], outcomes, at))
    ranked = [Ranked(ranks[g], row, tied=g != k) for k, (g, (_, row)) in enumerate(zip(leaders, ordered))]
    too_few = [Ranked(None, row) for _, row in scored if row.n_examples < floor]
    return at, ranked + again + distrusted + too_few + [Ranked(None, row) for row in rows if row.at(at) is None]


VERIFIED_TITLE = " (--verified: imported runs ranked once `runs verify` confirmed them)"


def distrust(row: LeaderboardRow, verified_only: bool = False) -> str | None:
    """Why a run is not ranked though it has the numbers, or None. A `runs verify` re-evaluation disputed them, or a
    robust accuracy exceeds the run's own ceiling (flag VIOLATION), which is a theorem's upper bound: the attacks
    missed adversarials, the ceiling's Lipschitz constants are too small, or the numbers were altered. Either way the
    table must not rank it, least of all first. With `verified_only`, also an imported run that no `runs verify`
    check has confirmed: a consistent forgery below the ceiling is caught only by re-evaluating it."""
    if row.verification is not None and row.verification.verdict == "disputed":
        return "disputed by `runs verify`"
    if verified_only and row.provenance == "imported" and row.verification is None:
        return "imported, not verified by `runs verify`"
    if any(f.name == VIOLATION for f in row.flags):
        at = sorted({f.eps for f in row.flags if f.name == VIOLATION and f.eps is not None})
        return f"{VIOLATION} at eps " + ", ".join(f"{e:g}" for e in at)
    return None


def flag_summary(flags: Sequence[SanityFlag]) -> str:
    """A run's sanity flags on one line, each name once with the eps it was raised at: 'later_stage_breaks_more@2,3;
    verification_rejected', or 'none'."""
    at: dict[str, list[str]] = {}
    for f in flags:
        shown = at.setdefault(f.name, [])
        if f.eps is not None and f"{f.eps:g}" not in shown:
            shown.append(f"{f.eps:g}")
    return "; ".join(name + (f"@{','.join(e)}" if e else "") for name, e in at.items()) or "none"


def _ranked_run_per_submission(rows: Sequence[LeaderboardRow]) -> dict[int, int]:
    """submission id -> the run that represents it: the one on the most points, the first stored among equals (never
    the best-scoring, which would reward re-running until the noise is kind)."""
    chosen: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: (-r.n_examples, r.created_at, r.run_id)):
        chosen.setdefault(row.submission_id, row.run_id)
    return chosen


def ranked_min_n(rows: Sequence[LeaderboardRow]) -> int:
    """The fewest test points a run of this table needs to be ranked: the default evaluation's, or the table's largest
    n when no run has that many (a table of small runs still ranks its largest)."""
    return min(DEFAULT_N_EXAMPLES, max(row.n_examples for row in rows))


def _default_eps(rows: list[LeaderboardRow], grid: list[float]) -> float:
    """The largest eps that more than half of the runs evaluated (else the one most runs did), so that one run with
    an unusual eps cannot choose the ranking of everyone else."""
    count = {e: sum(row.at(e) is not None for row in rows) for e in grid}
    majority = [e for e in grid if 2 * count[e] > len(rows)]
    return majority[-1] if majority else max(grid, key=lambda e: (count[e], e))


def _eps_grid(ranked: Sequence[Ranked]) -> list[float]:
    return sorted({v.eps for r in ranked for v in r.row.per_eps})


def _per_eps(field: str, eps: float) -> Callable[[Ranked], object]:
    def value(r: Ranked) -> object:
        found = r.row.at(eps)
        return None if found is None else getattr(found, field)

    return value


def certified_cell(value: float | None, reason: str | None) -> str:
    """Certified accuracy as a percentage, 'none' when there is no certificate, 'not run' for runs made before
    irob-bench certified, '—' when the run did not evaluate that eps: never a silent blank or 0."""
    if value is not None:
        return percent(value)
    if reason is None:
        return MISSING
    return "not run" if reason.startswith("not computed") else "none"


def has_certificates(per_eps: Sequence[EpsMetrics]) -> bool:
    """Whether a run has a certified accuracy at some eps (its views then say what certified guarantees)."""
    return any(m.certified_accuracy is not None for m in per_eps)


def with_certified_reason(m: EpsMetrics) -> EpsMetrics:
    """`m` as a run view shows it: a run made before irob-bench certified says so instead of leaving a blank."""
    if m.certified_accuracy is not None or m.certified_reason is not None:
        return m
    return m.model_copy(update={"certified_reason": NOT_CERTIFIED_BEFORE})


def _certified(eps: float) -> Callable[[Ranked], object]:
    def value(r: Ranked) -> object:
        found = r.row.at(eps)
        if found is None or found.certified_accuracy is None and found.certified_reason is None:
            return None  # a column that is empty in every row is left out
        if found.certified_accuracy is not None:
            return found.certified_accuracy  # a number: formatted (with its interval) as the other accuracies
        return certified_cell(found.certified_accuracy, found.certified_reason)

    return value


def _table_columns(ranked: Sequence[Ranked]) -> list[_Column]:
    grid = _eps_grid(ranked)
    return [
        _Column("rank", rank_label, "int"),
        _Column("submission", lambda r: r.row.submission, "text"),
        _Column("training", lambda r: r.row.training, "text"),
        _Column("clean", lambda r: r.row.clean_accuracy, "acc"),
        *(_Column(f"{label}@{e:g}", _certified(e) if field == "certified_accuracy" else _per_eps(field, e), _KINDS[field])
          for field, label in _TABLE_EPS_COLUMNS for e in grid),
        _Column("n", lambda r: r.row.n_examples, "int"),
        _Column("date", lambda r: r.row.created_at.date().isoformat(), "text"),
        _Column("flags", lambda r: flag_summary(r.row.flags), "text"),
        _Column("source", lambda r: source(r.row), "text"),
        _Column("run", lambda r: r.row.run_id, "int"),
    ]


def rank_label(ranked: Ranked) -> str | None:
    """'3', or '3=' for a row tied with the first row of rank 3."""
    return None if ranked.rank is None else f"{ranked.rank}{'=' if ranked.tied else ''}"


def source(row: LeaderboardRow) -> str:
    """Where a row's numbers come from, and its spot-checks: 'imported, verified (n=100)' (Verification.summary)."""
    return row.provenance + ("" if row.verification is None else f", {row.verification.summary()}")


def _cell(column: _Column, ranked: Ranked, fmt: str) -> str:
    value = column.value(ranked)
    if value is None:
        return MISSING
    if isinstance(value, str) and column.kind == "acc":
        return value  # a certified cell, already worded ('none', 'not run')
    if column.kind == "pp":
        return points(value)  # type: ignore[arg-type]
    if column.kind == "acc" and fmt == "markdown":
        return with_interval(value, ranked.row.n_examples)  # type: ignore[arg-type]
    if column.kind in ("pct", "acc"):
        return percent(value)  # type: ignore[arg-type]
    text = str(value)
    return text.replace("|", "\\|") if fmt == "markdown" else text


def percent(fraction: float) -> str:
    """A fraction as a percentage with one decimal, e.g. 0.9123 -> '91.2%'."""
    return f"{100 * fraction:.1f}%"


def points(difference: float) -> str:
    """A difference of two fractions in percentage points, e.g. 0.483 -> '48.3 pp'."""
    return f"{100 * difference:.1f} pp"


def with_interval(fraction: float, n: int) -> str:
    """An accuracy measured on n points with its Wilson 95% interval, e.g. '48.9% [47.9, 49.9]'."""
    ci = accuracy_interval(fraction, n)
    return f"{percent(fraction)} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def text_table(headers: Sequence[str], cells: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A plain aligned text table with a rule under the header; `right` marks right-aligned columns."""
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def markdown_table(headers: Sequence[str], cells: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A GitHub-flavoured Markdown table; `right` marks right-aligned columns."""
    rule = ["---:" if r else "---" for r in right]
    return "\n".join("| " + " | ".join(row) + " |" for row in [list(headers), rule, *cells])


def _json_row(ranked: Ranked, at: float) -> dict[str, object]:
    return {"rank": ranked.rank, "tied": ranked.tied, "ranked_at_eps": at, **ranked.row.model_dump(mode="json")}


def _csv(groups: list[tuple[tuple[str, str, str], tuple[float, list[Ranked]]]]) -> str:
    """All rows in one CSV: one column per (metric, eps) over every eps present; empty cell = no value."""
    grid = sorted({e for _, (_, ranked) in groups for e in _eps_grid(ranked)})
    eps_columns = [(field, e) for field in EPS_FIELDS if field != "eps" for e in grid]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["rank", "tied", "ranked_at_eps", "run_id", "submission", "training", "dataset", "dataset_version", "attack_preset",
         "clean_accuracy"]
        + [f"{field}@{e:g}" for field, e in eps_columns]
        + ["n_examples", "created_at", "fingerprint", "flags", "source"]
    )
    for _, (at, ranked) in groups:
        for r in ranked:
            row = r.row
            values = [_per_eps(field, e)(r) for field, e in eps_columns]
            writer.writerow(
                [r.rank, r.tied, at, row.run_id, row.submission, row.training, row.dataset, row.dataset_version,
                 row.attack_preset, row.clean_accuracy]
                + ["" if v is None else v for v in values]
                + [row.n_examples, row.created_at.isoformat(), row.fingerprint, flag_summary(row.flags), source(row)]
            )
    return out.getvalue().rstrip("\n")


def render_run(result: EvaluationResult, run_id: int | None = None, ceiling_note: str | None = None) -> str:
    """A readable multi-section summary of one run (`evaluate`, `runs show`): every number with what it guarantees,
    accuracies with their intervals, and `ceiling_note` (what the card's ceilings rest on) under the eps table."""
    sub, data, settings, metrics = result.submission, result.dataset, result.settings, result.metrics
    title = f"run {run_id}: " if run_id is not None else ""
    n = sum(metrics.per_class_count)  # the points these numbers are over: a shard's, not its run's
    part = "" if result.shard is None else (f"shard {result.shard.index}/{result.shard.of}: {n} of the run's; joined "
                                            "by `irob-bench runs merge`, never stored alone; ")
    sections = [
        (
            f"{title}{sub.metadata.name} on {data.name} v{data.version}",
            [
                ("fingerprint", result.fingerprint()),
                ("created", result.created_at),
                ("irob-bench", result.irob_bench_version),
                ("outcomes file", result.outcomes_file or MISSING),
            ],
        ),
        (
            "submission",
            [
                ("name", sub.metadata.name),
                ("authors", ", ".join(sub.metadata.authors)),
                ("training", sub.metadata.training),
                ("description", sub.metadata.description or MISSING),
                ("paper", sub.metadata.paper_url or MISSING),
                ("randomized", "yes" if sub.metadata.randomized else "no"),
                ("file sha256", sub.file_sha256),
                *((f"weights {path}", digest) for path, digest in sub.weights_sha256.items()),
            ],
        ),
        (
            "dataset",
            [
                (f"{part} sha256", getattr(data, f"{part}_sha256") or MISSING)
                for part in ("generator", "latents", "labels", "images")
            ]
            + [("lipschitz", _lipschitz(result))],
        ),
        (
            "settings",
            [
                ("eps", ", ".join(f"{e:g}" for e in settings.eps)),
                ("examples", f"{settings.n_examples} ({part}subset seed {settings.subset_seed}, indices "
                             f"{settings.indices_sha256[:12]})"),
                ("seed", str(settings.seed)),
                ("batch size / device", f"{settings.batch_size} / {settings.device}"),
                *((f"attack {name}", json.dumps(cfg, sort_keys=True)) for name, cfg in settings.attacks.items()),
            ],
        ),
        (
            "clean accuracy",
            [("overall", percent(metrics.clean_accuracy))]
            + [
                (f"class {c}", f"{percent(acc)} of {n}" if n else "no test points")
                for c, (acc, n) in enumerate(zip(metrics.per_class_accuracy, metrics.per_class_count))
            ],
        ),
    ]
    blocks = [_key_values(head, pairs) for head, pairs in sections]
    legend = [bounds_note(has_certificates(metrics.per_eps)), f"In brackets: the Wilson 95% interval over the {n} test points; gap = "
              "ceiling (classifier) - PGD in percentage points (pp).", *([ceiling_note] if ceiling_note else [])]
    blocks.append("robust accuracy and ceilings\n" + _eps_table(metrics.per_eps, n) + "\n"
                  + "\n".join(f"  {line}" for line in legend))
    if metrics.unconstrained_stages:
        blocks.append(_stage_table(settings.attacks.get("preset", "custom"), settings.eps, metrics.unconstrained_stages))
    reasons = [f"eps {m.eps:g} {key}: {why}" for m in metrics.per_eps for key, why in m.ceiling_reasons.items()]
    if metrics.certificate is not None:
        blocks.append(_key_values("certificate", _certificate(metrics.certificate)))
    flags = [f"{f.name}{'' if f.eps is None else f' (eps {f.eps:g})'}: {f.message}" for f in result.flags]
    timings = [f"{stage}: {seconds:.1f}s" for stage, seconds in result.timings.items()]
    environment = [f"{key}: {value}" for key, value in result.environment.items()]
    for head, lines in (("ceilings not established", reasons), ("flags", flags), ("timings", timings), ("environment", environment)):
        if lines:
            blocks.append(head + "\n" + "\n".join(f"  {line}" for line in lines))
    return "\n\n".join(blocks)


def _certificate(record: CertificateRecord) -> list[tuple[str, str]]:
    loose = MISSING if record.looseness is None else f"{record.looseness:.3g} (bound / largest slope seen on the points)"
    return [
        ("source", f"{record.source}: {record.method}"),
        ("lipschitz bound", MISSING if record.lipschitz_bound is None else f"{record.lipschitz_bound:.4g}"),
        ("looseness", loose),
        ("likely", {"tight": "tight (a Lipschitz-constrained network)", "loose": "loose (the bound overstates the "
                    "slopes: true robust accuracy may be well above it)", "unknown": "unknown"}[record.tightness]),
        *([("reason", record.reason)] if record.reason else []),
    ]


def _stage_table(preset: str, eps: Sequence[float], stages: Sequence[StageAccuracy]) -> str:
    """AutoAttack's per-stage report: robust accuracy at each eps after each stage of the cascade."""
    headers = ["after stage", *(f"eps {e:g}" for e in eps)]
    cells = [[s.name, *(percent(v) for v in s.robust_accuracy)] for s in stages]
    return f"unconstrained cascade ({preset} preset)\n" + text_table(headers, cells, [False, *([True] * len(eps))])


def _lipschitz(result: EvaluationResult) -> str:
    data = result.dataset
    if data.lipschitz_constants is None:
        return "not estimated"
    values = ", ".join(f"{v:.2f}" for v in data.lipschitz_constants)
    return f"r = {data.lipschitz_radius}, delta = {data.lipschitz_delta}: {values}"


def _run_cell(field: str, m: EpsMetrics, n: int) -> str:
    """One cell of a run's eps table: accuracies with their interval over the n points, ceilings in %, the gap in pp."""
    value = getattr(m, field)
    if value is None:
        return certified_cell(None, with_certified_reason(m).certified_reason) if field == "certified_accuracy" else MISSING
    if field == "gap":
        return points(value)
    return percent(value) if field.startswith("ceiling") else with_interval(value, n)


def _key_values(head: str, pairs: Sequence[tuple[str, str]]) -> str:
    width = max(len(key) for key, _ in pairs)
    return head + "\n" + "\n".join(f"  {key:<{width}}  {value}" for key, value in pairs)


def _eps_table(per_eps: Sequence[EpsMetrics], n: int) -> str:
    headers = ["eps", *_RUN_EPS_HEADERS.values()]
    cells = [[f"{m.eps:g}", *(_run_cell(field, m, n) for field in _RUN_EPS_HEADERS)] for m in per_eps]
    table = text_table(headers, cells, [True] * len(headers))
    return "\n".join(f"  {line}" for line in table.splitlines())

