"""`irob-bench generators train NAME`: train a benchmark generator on real data."""

from __future__ import annotations

import argparse


def _train(args: argparse.Namespace) -> None:
    from irob_bench.generators.train import train_generator

    summary = train_generator(
        args.name,
        args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, quiet=args.quiet
    )
    print(f"wrote {args.out}/generator.pt (sha256 {summary.weights_sha256[:12]}) in {summary.seconds:.0f}s")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("generators", help="train benchmark generators").add_subparsers(dest="action", required=True)
    train = group.add_parser("train", help="train a benchmark generator on real data")
    train.add_argument("name", choices=["mnist", "cifar"], help="which generator: mnist (ACGAN) or cifar (saturated-cifar base)")
    train.add_argument("--data", default=None, help="../shared/data/mnist (IDX .gz) or ../shared/data/cifar10 (.npz); default: torchvision download")
    train.add_argument("--out", required=True, help="output folder for generator.pt and training_summary.json")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)
