"""`irob-bench leaderboard`: the stored runs ranked by PGD robust accuracy, as a table, Markdown, JSON or CSV, or as a
static website (--format html --out DIR)."""

from __future__ import annotations

import argparse
from pathlib import Path

from irob_bench.commands.arguments import figure_file, output_target, positive_float, write_error
from irob_bench.errors import IrobError
from irob_bench.leaderboard import FORMATS, SITE_FORMAT


def _leaderboard(args: argparse.Namespace) -> None:
    from irob_bench.artifacts import atomic_write_text
    from irob_bench.errors import IrobError
    from irob_bench.leaderboard.render import render
    from irob_bench.leaderboard.store import Store

    if args.by_p and args.verified:
        raise IrobError("--verified chooses which runs are ranked; --by-p ranks none (it pivots every run by p)")
    if args.format == SITE_FORMAT:
        if args.by_p:
            raise IrobError(f"--by-p prints a table (--format {'|'.join(FORMATS)}); the website's saturated-cifar page "
                            "has it already")
        if args.plot or args.plot_saturation:
            raise IrobError(f"--plot and --plot-saturation write a figure beside a table (--format {'|'.join(FORMATS)}); "
                            "the website draws its own")
        _site(args)
        return
    if args.out and Path(args.out).is_dir():
        raise IrobError(f"--out {args.out} is a folder; only --format {SITE_FORMAT} writes a folder")
    with Store.reading(args.db) as store:
        rows = dataset_rows(store, args.dataset)
        if args.plot:
            from irob_bench.leaderboard.plot import plot_runs

            latest = _latest_results(store, rows)
            print(f"wrote {plot_runs(latest, args.plot)} ({len(latest)} submissions)")
        if args.plot_saturation:
            _plot_saturation(store, rows, args)
        outcomes = run_outcomes(store, rows)
    notes = ceiling_notes({r.dataset for r in rows})
    text = _by_level(rows, args, notes) if args.by_p else render(rows, args.eps, args.format, notes, outcomes, args.verified)
    if args.out:
        atomic_write_text(args.out, text + "\n")
        print(f"wrote {args.out} ({len(rows)} runs)")
    else:
        print(text)


def _site(args: argparse.Namespace) -> None:
    """Write the static website into --out (checked writable before any work)."""
    from irob_bench import datasets
    from irob_bench.errors import IrobError
    from irob_bench.leaderboard.site import SiteInputs, SiteRun, shipped_samples, stored_examples, write_site
    from irob_bench.leaderboard.store import Store

    if not args.out:
        raise IrobError(f"--format {SITE_FORMAT} writes a folder: give it with --out DIR")
    out = Path(args.out)
    check_writable_folder(out)
    with Store.reading(args.db) as store:
        rows = dataset_rows(store, args.dataset)
        outcomes = run_outcomes(store, rows)
        results = {r.run_id: store.get(r.run_id) for r in rows}
        runs = [SiteRun(row=r, result=results[r.run_id], outcomes=outcomes.get(r.run_id),
                        examples=stored_examples(results[r.run_id])) for r in rows]  # fmt: skip
        label = store.label
    names = {r.dataset for r in rows}
    shipped = set(datasets.available())
    cards = {n: datasets.load_card(n) for n in names & shipped}
    if any(n.startswith("saturated-cifar-") for n in names):  # the pivot by p shows every shipped level
        cards |= {n: datasets.load_card(n) for n in shipped if n.startswith("saturated-cifar-")}
    inputs = SiteInputs(runs=runs, source_label=label, cards=cards, notes=ceiling_notes(names), eps=args.eps, verified_only=args.verified,
                        sample_images=shipped_samples)  # fmt: skip
    pages = write_site(inputs, out)
    print(f"wrote {len(pages)} pages to {out} ({len(rows)} runs); open {out / 'index.html'}")


def dataset_rows(store, dataset: str | None) -> list:
    """The stored runs of `dataset` (a name or glob; None: all), or a one-line IrobError naming the datasets that
    have runs when the pattern matches none (an empty table would read as an empty leaderboard)."""
    from irob_bench.errors import IrobError

    rows = store.rows(dataset)
    if dataset is not None and not rows:
        stored = ", ".join(store.datasets()) or "none"
        raise IrobError(f"no runs for dataset {dataset!r} in {store.label} (datasets with runs: {stored})")
    return rows


def check_writable_folder(out: Path) -> None:
    """Create `out` if needed and prove it takes a file, or a one-line IrobError (before any work is done)."""
    from irob_bench.errors import IrobError

    if out.exists() and not out.is_dir():
        raise IrobError(f"--out {out} is a file; --format {SITE_FORMAT} writes a folder")
    try:
        out.mkdir(parents=False, exist_ok=True)
    except OSError as exc:
        raise IrobError(f"cannot write the site into {out}: {exc.strerror or exc}") from None
    if problem := write_error(out):
        raise IrobError(f"cannot write the site into {out}: {problem}")


def run_outcomes(store, rows) -> dict:
    """Run id -> its stored per-example outcomes (for the paired tie test), for the runs whose outcomes file is found."""
    from irob_bench.leaderboard.paired import load_run_outcomes

    found = {row.run_id: load_run_outcomes(store.get(row.run_id)) for row in rows}
    return {run_id: o for run_id, o in found.items() if o is not None}


def ceiling_notes(names: set[str]) -> dict[str, str]:
    """Per shipped dataset, what its card's ceilings rest on (or why there are none), for the rendered tables."""
    from irob_bench import datasets

    notes = {}
    for name in sorted(names & set(datasets.available())):
        card = datasets.load_card(name)
        lip = card.lipschitz
        if lip is not None:
            notes[name] = (f"Ceilings from the {name} v{card.version} card: each {lip.statement()}. The per-class "
                           f"form (Thm 4.4) is at the card's reference alpha = {card.reference_alpha:g}.")
        elif "ceiling" in card.notes:
            notes[name] = f"Ceilings ({name} v{card.version} card): {card.notes['ceiling']}."
    return notes


def run_text(result, run_id: int | None = None) -> str:  # type: ignore[no-untyped-def]
    """One run as `evaluate` and `runs show` print it, with what its dataset's ceilings rest on."""
    from irob_bench.leaderboard.render import render_run

    return render_run(result, run_id, ceiling_notes({result.dataset.name}).get(result.dataset.name))


def _latest_results(store, rows) -> list:
    """The full result of the latest run of each (submission, dataset) among `rows`."""
    latest = {(r.submission, r.dataset): r.run_id for r in sorted(rows, key=lambda r: r.created_at)}
    return [store.get(i) for i in latest.values()]


def _by_level(rows, args: argparse.Namespace, notes: dict[str, str]) -> str:
    """--by-p: the runs on shipped saturation levels pivoted by p, at --eps (default: the grid's middle eps)."""
    from irob_bench import datasets
    from irob_bench.errors import IrobError
    from irob_bench.leaderboard.by_level import render_by_level
    from irob_bench.leaderboard.plot import saturation_p

    cards = {n: datasets.load_card(n) for n in sorted({r.dataset for r in rows} & set(datasets.available()))}
    levels = {n: p for n, c in cards.items() if (p := saturation_p(c)) is not None}
    if not levels:
        have = ", ".join(sorted({r.dataset for r in rows})) or "none"
        raise IrobError(f"--by-p: no run on a shipped dataset with a saturation level (datasets with runs: {have})")
    grid = cards[min(levels, key=levels.__getitem__)].eps_grid
    return render_by_level(rows, levels, args.eps if args.eps is not None else grid[len(grid) // 2], args.format, notes)


def _plot_saturation(store, rows, args: argparse.Namespace) -> None:
    """The saturated-cifar plot: the latest run of each (submission, dataset) and every shipped saturation level."""
    from fnmatch import fnmatch

    from irob_bench import datasets
    from irob_bench.leaderboard.plot import plot_saturation, saturation_p

    pattern = args.dataset or "*"
    cards = [c for n in datasets.available() if fnmatch(n, pattern) and saturation_p(c := datasets.load_card(n)) is not None]
    if not cards:
        from irob_bench.errors import IrobError

        raise IrobError(f"--plot-saturation: no shipped dataset matching {pattern!r} has a saturation level")
    eps = args.eps if args.eps is not None else cards[0].eps_grid[len(cards[0].eps_grid) // 2]
    results = _latest_results(store, rows)
    print(f"wrote {plot_saturation(results, cards, eps, args.plot_saturation)} ({len(cards)} levels, {len(results)} runs)")


def refuse_ignored_db(db: str | None, storing_nothing: str | None) -> None:
    """--db names where to store a run; with an option that stores nothing (`storing_nothing`, e.g. "--no-store")
    it would be silently ignored, so it is one line instead."""
    if db is not None and storing_nothing:
        raise IrobError(f"--db names where to store the run, but {storing_nothing} stores nothing; drop one of them")


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """The shared --db option: a SQLAlchemy URL or a SQLite file path."""
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="database URL or SQLite file path (default: $IROB_BENCH_DB, else ~/.local/share/irob-bench/leaderboard.db)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `leaderboard` command to the CLI (its arguments are checked while parsing, before any heavy import)."""
    parser = sub.add_parser("leaderboard", help="rank the stored runs by robust accuracy")
    parser.add_argument("--dataset", default=None, metavar="NAME",
                        help="only runs on this dataset, or on every dataset matching a glob (saturated-cifar-*)")
    parser.add_argument("--eps", type=positive_float, default=None, help="rank at this eps (default: the largest eps that more than half of the table's runs evaluated)")
    parser.add_argument("--format", choices=(*FORMATS, SITE_FORMAT), default="table",
                        help=f"{SITE_FORMAT}: a static website written into the folder --out")
    add_db_option(parser)
    parser.add_argument("--out", type=output_target, default=None, metavar="PATH",
                        help="write to this file instead of standard output (--format html: this folder)")
    parser.add_argument("--plot", type=figure_file, default=None, metavar="PNG", help="also plot robust accuracy vs eps with ceilings")
    parser.add_argument("--plot-saturation", type=figure_file, default=None, metavar="PNG",
                        help="also plot accuracy and ceilings against the saturation level p (at --eps, default the "
                        "grid's middle eps)")
    parser.add_argument("--verified", action="store_true",
                        help="rank imported runs only once `irob-bench runs verify` has confirmed them (runs evaluated "
                        "into this leaderboard are ranked as before); the others are listed unranked")
    parser.add_argument("--by-p", action="store_true",
                        help="instead of ranking, pivot the runs on saturation levels by p (Ding et al.'s table: one "
                        "row per training method and level, at --eps, default the grid's middle eps)")
    parser.set_defaults(handler=_leaderboard)
