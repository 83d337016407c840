"""`irob-bench leaderboard`: the stored runs ranked by PGD robust accuracy, as a table, Markdown, JSON or CSV."""

from __future__ import annotations

import argparse

from irob_bench.leaderboard import FORMATS


def _leaderboard(args: argparse.Namespace) -> None:
    from irob_bench.artifacts import atomic_write_text
    from irob_bench.errors import IrobError
    from irob_bench.leaderboard.render import render
    from irob_bench.leaderboard.store import Store

    with Store(args.db) as store:
        rows = store.rows(args.dataset)
        if args.dataset is not None and not rows:
            stored = ", ".join(store.datasets()) or "none"
            raise IrobError(f"no runs for dataset {args.dataset!r} in {store.label} (datasets with runs: {stored})")
        if args.plot:
            from irob_bench.leaderboard.plot import plot_runs

            latest = {}
            for row in sorted(rows, key=lambda r: r.created_at):
                latest[(row.submission, row.dataset)] = row.run_id
            print(f"wrote {plot_runs([store.get(i) for i in latest.values()], args.plot)} ({len(latest)} submissions)")
    text = render(rows, args.eps, args.format)
    if args.out:
        atomic_write_text(args.out, text + "\n")
        print(f"wrote {args.out} ({len(rows)} runs)")
    else:
        print(text)


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
    parser.add_argument("--dataset", default=None, metavar="NAME", help="only runs on this dataset")
    parser.add_argument("--eps", type=float, default=None, help="rank at this eps (default: the largest evaluated)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    add_db_option(parser)
    parser.add_argument("--out", default=None, metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--plot", default=None, metavar="PNG", help="also plot robust accuracy vs eps with ceilings")
    parser.set_defaults(handler=_leaderboard)
