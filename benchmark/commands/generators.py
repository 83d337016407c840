"""`irob-bench generators train|checker|quality`: train a generator or its real-data checker, or score a generator."""

from __future__ import annotations

import argparse
import json


def _train(args: argparse.Namespace) -> None:
    from irob_bench.generators.train import train_generator

    summary = train_generator(
        args.name, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        width=args.width, fake_class_weight=args.fake_class_weight, quiet=args.quiet,
    )
    print(f"wrote {args.out}/generator.pt (sha256 {summary.weights_sha256[:12]}) in {summary.seconds:.0f}s")


def _checker(args: argparse.Namespace) -> None:
    from irob_bench.generators.train import RECIPES
    from irob_bench.quality import load_checker_file, real_accuracy, train_checker

    recipe = RECIPES[args.name]
    images, labels = recipe.load(args.data, "train")
    report = train_checker(
        images, labels, args.out, epochs=args.epochs, seed=args.seed, augment=args.augment, progress=not args.quiet
    )
    test_images, test_labels = recipe.load(args.data, "test")
    channels = 1 if test_images.ndim == 3 else test_images.shape[3]
    acc = real_accuracy(load_checker_file(args.out, channels, test_images.shape[1]), test_images, test_labels)
    print(f"wrote {args.out}: real {args.name} test accuracy {acc:.2%} after {report.epochs} epochs ({report.seconds:.0f}s)")


def _quality(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.generators.train import recipe_for
    from irob_bench.quality import default_checker_path, fidelity, label_agreement, load_checker

    data = datasets.load(args.dataset)
    source = args.checker or default_checker_path(data)
    checker = load_checker(data, source)
    load = recipe_for(data.card.generator.architecture).load
    generated = data.generate(data.latents("test"), data.labels("test"))
    agreement = label_agreement(data, checker, images=generated)
    fid = fidelity(generated, load(args.data, "test")[0], checker)
    if args.json:
        print(json.dumps({"checker": str(source), "agreement": agreement.model_dump(), "fidelity": fid.model_dump()}))
        return
    print(f"{data.card.name}: real-data checker {source}")
    print(f"  label agreement  {agreement.agreement:.2%} of {agreement.n} generated test images")
    print("  per class        " + " ".join(f"{c}={a:.0%}" for c, a in zip(data.card.classes, agreement.per_class)))
    print(f"  checker Frechet  {fid.generated:.2f} ({fid.n} generated vs {fid.n} real test images; "
          f"real vs real: {fid.real_floor:.2f})")


def _real_data_parser(group: argparse._SubParsersAction, action: str, help_text: str, out_help: str,
                      epochs: int) -> argparse.ArgumentParser:
    """A subcommand that trains on one real dataset: name, --data, --out, --epochs, --seed, --quiet."""
    parser = group.add_parser(action, help=help_text)
    parser.add_argument("name", choices=["mnist", "cifar"], help="which real data: mnist or cifar (saturated-cifar's base)")
    parser.add_argument("--data", default=None, help="../shared/data/mnist (IDX .gz) or ../shared/data/cifar10 (.npz); default: torchvision download")
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("generators", help="train benchmark generators and their quality checkers").add_subparsers(
        dest="action", required=True
    )
    train = _real_data_parser(group, "train", "train a benchmark generator on real data",
                              "output folder for generator.pt and training_summary.json", epochs=10)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--width", type=int, default=None, help="channels of G and D (cifar only; default 32)")
    train.add_argument("--fake-class-weight", type=float, default=1.0,
                       help="weight of D's class loss on generated images (0: D classifies real images only)")
    train.set_defaults(handler=_train)

    checker = _real_data_parser(group, "checker", "train the real-data classifier that scores a generator's label agreement",
                                "checker weights file to write (e.g. checker.pt)", epochs=2)
    checker.add_argument("--augment", action="store_true", help="random flips and shifts (for CIFAR)")
    checker.set_defaults(handler=_checker)

    quality = group.add_parser("quality", help="score a benchmark's generated test set with its real-data checker")
    quality.add_argument("dataset", help="a dataset card, e.g. mnist or saturated-cifar-p2")
    quality.add_argument("--data", default=None, help="the real data folder of its generator (as for `generators train`)")
    quality.add_argument("--checker", default=None, help="checker weights (default: checker.pt beside the generator weights)")
    quality.add_argument("--json", action="store_true", help="print the numbers as JSON")
    quality.set_defaults(handler=_quality)
