"""`irob-bench train METHOD`: train a reference defense and write it as a ready submission."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import output_file, output_folder, positive_float, positive_int, seed

METHODS = ("standard", "pgd", "trades", "lipschitz")  # irob_bench.reference.baselines.METHODS.list(), without importing torch


def _train(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.reference.baselines import check_method, train_reference

    check_method(args.method, args.eps, args.train_points, args.name)
    record = train_reference(
        args.method,
        datasets.load(args.dataset),
        args.out,
        eps=args.eps,
        epochs=args.epochs,
        seed=args.seed,
        beta=args.beta,
        attack_steps=args.attack_steps,
        train_points=args.train_points,
        width=args.width,
        name=args.name,
        progress=not args.quiet,
        checkpoint=args.checkpoint,
    )
    print(
        f"wrote {args.out}/submission.py and model.pt ({record.method}, {record.fit.epochs} epochs, "
        f"{record.fit.seconds:.0f}s); evaluate with: irob-bench evaluate {args.out}/submission.py"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` command to the CLI (its arguments are checked while parsing, before any heavy import)."""
    parser = sub.add_parser("train", help="train a reference defense on a benchmark's generated train split")
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--eps", type=positive_float, default=None, help="L2 training radius (pgd, trades, lipschitz)")
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--beta", type=positive_float, default=6.0, help="TRADES robustness weight")
    parser.add_argument("--attack-steps", type=positive_int, default=10, help="inner PGD steps (pgd, trades)")
    parser.add_argument("--train-points", type=positive_int, default=None, help="use only the first N train points")
    parser.add_argument("--width", type=positive_int, default=32, help="SmallCNN base width (channels of the first conv); LipschitzMLP hidden width")
    parser.add_argument("--name", default=None, help="leaderboard name (default: DATASET-METHOD[-epsE])")
    parser.add_argument("--out", required=True, type=output_folder, help="folder for submission.py, model.pt and training.json")
    parser.add_argument("--checkpoint", type=output_file, default=None, metavar="FILE",
                        help="save the training state here after every epoch; run again with it to resume")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=_train)
