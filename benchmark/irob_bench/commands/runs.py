"""`irob-bench runs list | show | import | merge | verify | ceilings`: the stored evaluation runs, and their ceilings from the current cards."""

from __future__ import annotations

import argparse
import sys

from irob_bench.commands.arguments import (
    add_isolation_options,
    existing_result,
    isolation_of,
    non_negative_float,
    positive_int,
    probability,
    result_file,
    seed,
    submission_file,
)
from irob_bench.commands.leaderboard import add_db_option


def _list(args: argparse.Namespace) -> None:
    from irob_bench.commands.leaderboard import dataset_rows
    from irob_bench.leaderboard.render import percent, text_table
    from irob_bench.leaderboard.store import Store

    with Store.reading(args.db) as store:
        rows = dataset_rows(store, args.dataset)
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
    from irob_bench.commands.leaderboard import run_text
    from irob_bench.leaderboard.store import Store

    with Store.reading(args.db) as store:
        resolved = store.resolve(args.ref, args.dataset)
        result = store.get(resolved.run_id)
    if resolved.note:
        print(f"note: {resolved.note}", file=sys.stderr)  # stdout stays the run (or pure JSON)
    print(result.model_dump_json(indent=2) if args.json else run_text(result, resolved.run_id))


def _import(args: argparse.Namespace) -> None:
    from pathlib import Path

    from irob_bench.attacks.outcomes import load_outcomes
    from irob_bench.errors import IrobError
    from irob_bench.evaluate import Evaluation
    from irob_bench.import_checks import verify_import
    from irob_bench.leaderboard.store import Store
    from irob_bench.persist import persist
    from irob_bench.results import read_result_file

    result = read_result_file(args.path)
    outcomes_path = Path(args.outcomes or f"{args.path}.outcomes.npz")
    if not outcomes_path.is_file():
        raise IrobError(f"outcomes file not found: {outcomes_path} (an import is checked against its per-example "
                        "outcomes; pass --outcomes FILE)")
    outcomes = load_outcomes(outcomes_path)
    card = verify_import(result, outcomes)
    Store.check_writable(args.db)
    with Store(args.db) as store:
        stored, saved = persist(Evaluation(result=result, outcomes=outcomes), store=store, provenance="imported")
        print(f"{stored.submission.metadata.name}: checked against {card.name} v{card.version} and its outcomes; "
              f"{saved.summary(store.label)}")


def _merge(args: argparse.Namespace) -> None:
    from irob_bench.commands.leaderboard import refuse_ignored_db, run_text
    from irob_bench.leaderboard.store import Store
    from irob_bench.persist import open_store, persist
    from irob_bench.shards import merge_shards, read_shard

    refuse_ignored_db(args.db, "--no-store" if args.no_store else None)
    if not args.no_store:
        Store.check_writable(args.db)  # a bad URL or an unwritable file fails before the work; creates nothing
    evaluation = merge_shards([read_shard(p) for p in args.paths], list(args.paths))
    store = None if args.no_store else open_store(args.db, evaluation, args.json)
    # shard files, wherever they were scored: checked like an import (metrics from outcomes), labelled like one
    result, saved = persist(evaluation, json_path=args.json, store=store, provenance="imported")
    print(run_text(result, saved.run_id if saved else None))
    if saved is not None:
        print(f"{len(args.paths)} shards merged; {saved.summary(store.label)}")


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from irob_bench.leaderboard.store import Store

    with Store.reading(args.db) as store:  # a mistyped --db or an unknown run fails before the torch import
        resolved = store.resolve(args.ref)
    from irob_bench.gate.settings import GateOptions
    from irob_bench.gate.spotcheck import spot_check

    run_id = resolved.run_id
    if resolved.note:
        print(f"note: {resolved.note}")
    options = GateOptions(tolerance_pp=args.tolerance_pp, alpha=args.alpha, progress=not args.quiet,
                          isolation=isolation_of(args))
    check = spot_check(run_id, args.db, Path(args.submission), args.n, seed=args.seed, options=options)
    for note in check.notes:
        print(f"note: {note}")
    for m in check.metrics:
        print(f"{m.verdict:10}  {m.label}: stored {m.baseline:.1%}, here {m.new:.1%} "
              f"(lost {m.lost}, gained {m.gained}; {m.reason})")
    with Store(args.db) as store:
        record = store.record_verification(run_id, check.verification)
    print(f"run {run_id}: {check.verification.verdict} on {check.verification.n} re-evaluated examples, sample seed "
          f"{check.verification.seed} ({check.verification.detail})")
    if record.checks > 1:
        stays = "; an earlier dispute stays with the run" if record.verdict != check.verification.verdict else ""
        print(f"run {run_id} over its {record.checks} checks: {record.summary()}{stays}")
    return 0 if record.verdict == "verified" else 1  # the run's record: a dispute stays, so does its exit code


def _examples(args: argparse.Namespace) -> None:
    from pathlib import Path

    from irob_bench.gate.examples import add_examples

    done = add_examples(Path(args.path), Path(args.submission), progress=not args.quiet, isolation=isolation_of(args))
    for note in done.notes:
        print(f"note: {note}")
    matching = int(done.examples.matches.sum())
    print(f"{args.path}: {len(done.examples.indices)} example points re-evaluated ({matching} with PGD outcomes equal "
          f"to the stored ones); added to {done.outcomes_file}")


def _ceilings(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.artifacts import atomic_write_text
    from irob_bench.metrics import with_card_ceilings
    from irob_bench.results import read_result_file

    for path in args.paths:
        result = read_result_file(path)
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
    """Add the `runs` command and its actions to the CLI (its arguments are checked while parsing, before any heavy import)."""
    group = sub.add_parser("runs", help="list, show, import, merge, verify and re-bound stored runs, and draw their examples")
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

    imported = actions.add_parser(
        "import", help="check a result JSON written by `evaluate --json` elsewhere against its outcomes, then store it"
    )
    imported.add_argument("path", type=existing_result, help="the result .json file")
    imported.add_argument("--outcomes", default=None, metavar="NPZ", help="its outcomes (default: PATH.outcomes.npz)")
    add_db_option(imported)
    imported.set_defaults(handler=_import)

    merge = actions.add_parser(
        "merge", help="join the shards of one evaluation (evaluate --shard K/N --json FILE) into its run, then store it"
    )
    merge.add_argument("paths", nargs="+", type=existing_result, metavar="PATH", help="the shards' result .json files (outcomes beside them)")
    merge.add_argument("--json", type=result_file, default=None, help="write the merged result as JSON to this file")
    merge.add_argument("--no-store", action="store_true", help="do not write to the leaderboard")
    add_db_option(merge)
    merge.set_defaults(handler=_merge)

    verify = actions.add_parser(
        "verify", help="re-evaluate a random sample of a stored run here and test it against the stored outcomes"
    )
    verify.add_argument("ref", metavar="ID", help="run id, or a submission name (its latest run)")
    verify.add_argument("--submission", type=submission_file, required=True, metavar="FILE", help="the run's submission .py (hash-checked)")
    verify.add_argument("--n", type=positive_int, default=100, help="examples to re-evaluate (default 100)")
    verify.add_argument("--seed", type=seed, default=None,
                        help="seed of the random sample (default: drawn afresh, so that no one can foresee which points "
                        "are checked; printed and stored with the verdict, give it to repeat a check)")
    verify.add_argument("--tolerance-pp", type=non_negative_float, default=0.5,
                        help="stored minus re-evaluated accuracy always accepted, in points (default 0.5)")
    verify.add_argument("--alpha", type=probability, default=0.05, help="level of the one-sided McNemar test (0.05)")
    verify.add_argument("--quiet", action="store_true", help="no progress bars")
    add_db_option(verify)
    add_isolation_options(verify)
    verify.set_defaults(handler=_verify)

    rebound = actions.add_parser(
        "ceilings", help="recompute the ceilings of result files from the current dataset cards (same test data only)"
    )
    rebound.add_argument("paths", nargs="+", type=existing_result, metavar="PATH", help="result .json files, rewritten in place")
    rebound.set_defaults(handler=_ceilings)

    examples = actions.add_parser(
        "examples", help="add the example points (clean and adversarial images) to a result made before they were kept"
    )
    examples.add_argument("path", type=existing_result, metavar="PATH", help="the result .json (its outcomes file PATH.outcomes.npz gets them)")
    examples.add_argument("--submission", type=submission_file, required=True, metavar="FILE", help="the run's submission .py (hash-checked)")
    examples.add_argument("--quiet", action="store_true", help="no progress bars")
    add_isolation_options(examples)
    examples.set_defaults(handler=_examples)
