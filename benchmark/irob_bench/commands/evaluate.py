"""`irob-bench evaluate PATH`: validate, score, print, save JSON and store one run in the leaderboard."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import (
    add_isolation_options,
    device,
    isolation_of,
    n_examples,
    output_file,
    positive_float,
    positive_int,
)
from irob_bench.commands.leaderboard import add_db_option
from irob_bench.commands.validate import add_submission_arguments

ATTACK_PRESETS = ("quick", "standard", "thorough")  # irob_bench.attacks.presets.PRESETS, without importing torch

def _evaluate(args: argparse.Namespace) -> int:
    from irob_bench.evaluate import EvaluateOptions
    from irob_bench.isolation.sandbox import evaluate_isolated
    from irob_bench.leaderboard.render import render_run
    from irob_bench.leaderboard.store import Store
    from irob_bench.persist import persist

    options = EvaluateOptions(
        dataset=args.dataset,
        eps=args.eps,
        n_examples=args.n_examples,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        preset=args.attacks,
        progress=not args.quiet,
    )
    if not args.no_store:
        Store(args.db, readonly=True).close()  # a bad URL or a foreign file fails before the work; creates nothing
    evaluation = evaluate_isolated(args.path, options, isolation_of(args))
    store = None if args.no_store else Store(args.db)
    result, saved = persist(evaluation, json_path=args.json, store=store)
    print(render_run(result, saved.run_id if saved else None))
    if saved is not None:
        verb = "stored as" if saved.created else "already in the leaderboard as"
        print(f"{verb} run {saved.run_id} ({store.label})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="validate and score a submission, then store the result")
    add_submission_arguments(parser)
    parser.add_argument("--eps", type=positive_float, nargs="+", default=None, help="default: the card's eps grid (1 2 3)")
    parser.add_argument("--n-examples", type=n_examples, default=300, help="N or 'all' (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="attack seed (default 0)")
    parser.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batch-size", type=positive_int, default=250)
    parser.add_argument("--attacks", choices=ATTACK_PRESETS, default="standard",
                        help="attack preset: quick, standard (default; the leaderboard's protocol) or thorough")
    add_db_option(parser)
    parser.add_argument("--json", type=output_file, default=None, help="write the result as JSON to this file")
    parser.add_argument("--no-store", action="store_true", help="do not write to the leaderboard")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_isolation_options(parser)
    parser.set_defaults(handler=_evaluate)


