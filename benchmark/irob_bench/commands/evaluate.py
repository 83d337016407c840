"""`irob-bench evaluate PATH`: validate, score, print, save JSON and store one run in the leaderboard."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import (
    add_isolation_options,
    device,
    isolation_of,
    n_examples,
    positive_float,
    positive_int,
    result_file,
    seed,
    shard,
)
from irob_bench.commands.leaderboard import add_db_option, refuse_ignored_db, run_text
from irob_bench.commands.validate import add_submission_arguments
from irob_bench.common import DEFAULT_N_EXAMPLES

ATTACK_PRESETS = ("quick", "standard", "thorough")  # irob_bench.attacks.presets.PRESETS, without importing torch

def _evaluate(args: argparse.Namespace) -> int:
    from irob_bench.distributed import evaluate_distributed, torchrun_launch  # light: the checks below need no torch
    from irob_bench.errors import IrobError

    launch = torchrun_launch()
    if args.shard and launch is not None:
        raise IrobError("--shard under torchrun: the ranks are the shards")
    if args.shard and args.json is None:
        raise IrobError(f"--shard {args.shard[0]}/{args.shard[1]} needs --json FILE (shards are joined by "
                        "`irob-bench runs merge`, never stored alone)")
    refuse_ignored_db(args.db, "--no-store" if args.no_store else "--shard" if args.shard else None)
    from irob_bench.common import user_dir
    from irob_bench.evaluate import EvaluateOptions, check_options
    from irob_bench.import_checks import check_shards_mergeable
    from irob_bench.isolation.sandbox import evaluate_isolated
    from irob_bench.leaderboard.store import Store
    from irob_bench.persist import open_store, persist

    options = EvaluateOptions(
        dataset=args.dataset,
        eps=args.eps,
        n_examples=args.n_examples,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        preset=args.attacks,
        progress=not args.quiet,
        shard=args.shard,
        checkpoint_root=str(user_dir("cache", "checkpoints")),
        resume=not args.no_resume,
    )
    if launch is None:
        check_options(options)
    else:  # each rank's shard is checked as --shard K/N is, and rank 0 merges at once: only on a shipped card
        check_options(options.model_copy(update={"shard": (launch.rank + 1, launch.world_size)}))
        check_shards_mergeable(options.dataset)
    storing = not (args.no_store or args.shard) and (launch is None or launch.rank == 0)
    if storing:
        Store.check_writable(args.db)  # a bad URL, a foreign or unwritable file fails before the work; creates nothing
    if launch is None:
        evaluation = evaluate_isolated(args.path, options, isolation_of(args))
    else:
        evaluation = evaluate_distributed(args.path, options, isolation_of(args), launch)
        if evaluation is None:
            return 0  # not rank 0: rank 0 merges, prints and stores
    store = open_store(args.db, evaluation, args.json) if storing else None
    result, saved = persist(evaluation, json_path=args.json, store=store)
    print(run_text(result, saved.run_id if saved else None))
    if saved is not None:
        print(saved.summary(store.label))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` command to the CLI (its arguments are checked while parsing, before any heavy import)."""
    parser = sub.add_parser("evaluate", help="validate and score a submission, then store the result")
    add_submission_arguments(parser)
    parser.add_argument("--eps", type=positive_float, nargs="+", default=None, help="default: the card's eps grid (irob-bench datasets list shows it)")
    parser.add_argument("--n-examples", type=n_examples, default=DEFAULT_N_EXAMPLES,
                        help=f"N or 'all' (default {DEFAULT_N_EXAMPLES})")
    parser.add_argument("--seed", type=seed, default=0, help="attack seed (default 0)")
    parser.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batch-size", type=positive_int, default=250)
    parser.add_argument("--attacks", choices=ATTACK_PRESETS, default="standard",
                        help="attack preset: quick, standard (default; the leaderboard's protocol) or thorough")
    add_db_option(parser)
    parser.add_argument("--json", type=result_file, default=None, help="write the result as JSON to this file")
    parser.add_argument("--no-store", action="store_true", help="do not write to the leaderboard")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--shard", type=shard, default=None, metavar="K/N",
                        help="evaluate only the K-th of N disjoint slices of the points (needs --json; join the "
                        "shards with `irob-bench runs merge`)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start afresh instead of continuing from the finished chunks of an interrupted run")
    add_isolation_options(parser)
    parser.set_defaults(handler=_evaluate)


