"""`irob-bench leaderboard`: the stored runs ranked by PGD robust accuracy, as a table, Markdown, JSON or CSV."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import output_file, positive_float
from irob_bench.leaderboard import FORMATS


def _leaderboard(args: argparse.Namespace) -> None:
    from irob_bench.artifacts import atomic_write_text
    from irob_bench.errors import IrobError
    from irob_bench.leaderboard.render import render
    from irob_bench.leaderboard.store import Store

    with Store(args.db, readonly=True) as store:
        rows = store.rows(args.dataset)
        if args.dataset is not None and not rows:
            stored = ", ".join(store.datasets()) or "none"
            raise IrobError(f"no runs for dataset {args.dataset!r} in {store.label} (datasets with runs: {stored})")
        if args.plot:
            from irob_bench.leaderboard.plot import plot_runs

            latest = _latest_results(store, rows)
            print(f"wrote {plot_runs(latest, args.plot)} ({len(latest)} submissions)")
        if args.plot_saturation:
            _plot_saturation(store, rows, args)
        outcomes = run_outcomes(store, rows)
    text = render(rows, args.eps, args.format, ceiling_notes({r.dataset for r in rows}), outcomes)
    if args.out:
        atomic_write_text(args.out, text + "\n")
        print(f"wrote {args.out} ({len(rows)} runs)")
    else:
        print(text)


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


def _latest_results(store, rows) -> list:
    """The full result of the latest run of each (submission, dataset) among `rows`."""
    latest = {(r.submission, r.dataset): r.run_id for r in sorted(rows, key=lambda r: r.created_at)}
    return [store.get(i) for i in latest.values()]


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


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """The shared --db option: a SQLAlchemy URL or a SQLite file path."""
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="database URL or SQLite file path (default: $IROB_BENCH_DB, else ~/.local/share/irob-bench/leaderboard.db)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("leaderboard", help="rank the stored runs by robust accuracy")
    parser.add_argument("--dataset", default=None, metavar="NAME",
                        help="only runs on this dataset, or on every dataset matching a glob (saturated-cifar-*)")
    parser.add_argument("--eps", type=positive_float, default=None, help="rank at this eps (default: the largest evaluated)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    add_db_option(parser)
    parser.add_argument("--out", type=output_file, default=None, metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--plot", type=output_file, default=None, metavar="PNG", help="also plot robust accuracy vs eps with ceilings")
    parser.add_argument("--plot-saturation", type=output_file, default=None, metavar="PNG",
                        help="also plot accuracy and ceilings against the saturation level p (at --eps, default the "
                        "grid's middle eps)")
    parser.set_defaults(handler=_leaderboard)
