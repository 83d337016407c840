"""`irob-bench generators train NAME`: train a benchmark generator on real data."""

from __future__ import annotations

import argparse

from irob_bench.errors import IrobError


def _train(args: argparse.Namespace) -> None:
    from irob_bench.generators.train import train_acgan

    if args.name != "mnist":
        raise IrobError(f"no generator trainer for {args.name!r} (known: mnist)")
    summary = train_acgan(
        args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, quiet=args.quiet
    )
    print(f"wrote {args.out}/generator.pt (sha256 {summary.weights_sha256[:12]}) in {summary.seconds:.0f}s")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("generators", help="train benchmark generators").add_subparsers(dest="action", required=True)
    train = group.add_parser("train", help="train a benchmark generator on real data")
    train.add_argument("name", help="dataset whose generator to train (mnist)")
    train.add_argument("--data", default=None, help="folder of gzipped IDX files (default: torchvision download)")
    train.add_argument("--out", required=True, help="output folder for generator.pt and training_summary.json")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)
