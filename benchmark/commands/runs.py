"""`irob-bench runs list | show | import | ceilings`: the stored evaluation runs, and their ceilings from the current cards."""

from __future__ import annotations

import argparse

from irob_bench.commands.leaderboard import add_db_option


def _list(args: argparse.Namespace) -> None:
    from irob_bench.leaderboard.render import percent, text_table
    from irob_bench.leaderboard.store import Store

    with Store(args.db) as store:
        rows = store.rows(args.dataset)
    if not rows:
        print(f"no runs stored in {store.label}")
        return
    headers = ["run", "created", "submission", "dataset", "n", "clean", "fingerprint"]
    cells = [
        [
            str(r.run_id),
            r.created_at.isoformat(sep=" ", timespec="seconds"),
            r.submission,
            f"{r.dataset} v{r.dataset_version}",
            str(r.n_examples),
            percent(r.clean_accuracy),
            r.fingerprint[:12],
        ]
        for r in rows
    ]
    print(text_table(headers, cells, [True, False, False, False, True, True, False]))


def _show(args: argparse.Namespace) -> None:
    from irob_bench.leaderboard.render import render_run
    from irob_bench.leaderboard.store import Store

    with Store(args.db) as store:
        run_id = store.resolve(args.ref, args.dataset)
        result = store.get(run_id)
    print(result.model_dump_json(indent=2) if args.json else render_run(result, run_id))


def _read_result(path: str):
    """A result JSON file, or a one-line IrobError."""
    from pydantic import ValidationError

    from irob_bench.errors import IrobError
    from irob_bench.results import EvaluationResult

    try:
        return EvaluationResult.model_validate_json(open(path).read())
    except OSError as exc:
        raise IrobError(f"cannot read {path}: {exc.strerror}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise IrobError(f"{path}: not an irob-bench result: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def _import(args: argparse.Namespace) -> None:
    from irob_bench.leaderboard.store import Store

    result = _read_result(args.path)
    with Store(args.db) as store:
        saved = store.save(result)
        verb = "stored as" if saved.created else "already in the leaderboard as"
        print(f"{result.submission.metadata.name}: {verb} run {saved.run_id} ({store.label})")


def _ceilings(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.artifacts import atomic_write_text
    from irob_bench.metrics import with_card_ceilings

    for path in args.paths:
        result = _read_result(path)
        card = datasets.load_card(result.dataset.name)
        updated = with_card_ceilings(result, card)
        atomic_write_text(path, updated.model_dump_json(indent=2, exclude_unset=True) + "\n")  # the fields it had
        moved = ", ".join(
            f"eps {a.eps:g}: {_pct(a.ceiling_classifier)} -> {_pct(b.ceiling_classifier)}"
            for a, b in zip(result.metrics.per_eps, updated.metrics.per_eps)
        )
        print(f"{path}: ceilings from {card.name} v{card.version} (measured on v{result.dataset.version}); classifier ceiling {moved}")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("runs", help="list, show, import and re-bound stored evaluation runs")
    actions = group.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="every stored run, oldest first")
    listing.add_argument("--dataset", default=None, metavar="NAME", help="only runs on this dataset")
    add_db_option(listing)
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one stored run in full")
    show.add_argument("ref", metavar="ID", help="run id, or a submission name (its latest run)")
    show.add_argument("--dataset", default=None, metavar="NAME", help="with a name: its latest run on this dataset")
    show.add_argument("--json", action="store_true", help="the stored result as JSON")
    add_db_option(show)
    show.set_defaults(handler=_show)

    imported = actions.add_parser("import", help="store a result JSON written by `evaluate --json` (e.g. on a GPU box)")
    imported.add_argument("path", help="the result .json file")
    add_db_option(imported)
    imported.set_defaults(handler=_import)

    rebound = actions.add_parser(
        "ceilings", help="recompute the ceilings of result files from the current dataset cards (same test data only)"
    )
    rebound.add_argument("paths", nargs="+", metavar="PATH", help="result .json files, rewritten in place")
    rebound.set_defaults(handler=_ceilings)
