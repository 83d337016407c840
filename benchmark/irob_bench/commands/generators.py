"""`irob-bench generators train|train-sngan|export-sngan|checker|quality`: train or export a generator, train its
real-data checker, or score a generator (label agreement, Frechet distance and, on request, hardness)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from irob_bench.commands.arguments import bounded, non_negative_float, output_file, output_folder, positive_int, seed

CHECKER_ARCHITECTURES = ("smallcnn", "resnet9")  # irob_bench.generators.quality.CHECKER_ARCHITECTURES, without torch


def _train(args: argparse.Namespace) -> None:
    from irob_bench.generators.train import train_generator

    summary = train_generator(
        args.name, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        width=args.width, fake_class_weight=args.fake_class_weight, quiet=args.quiet,
    )
    print(f"wrote {args.out}/generator.pt (sha256 {summary.weights_sha256[:12]}) in {summary.seconds:.0f}s")


def _train_sngan(args: argparse.Namespace) -> None:
    import torch

    from irob_bench.generators.train_sngan import DEFAULT_CHECKER, SNGANConfig, train_sngan

    torch.set_num_threads(args.threads)
    config = SNGANConfig(seed=args.seed, batch_size=args.batch_size, g_width=args.g_width, d_width=args.d_width,
                         n_dis=args.n_dis, class_weight=args.class_weight)
    state = train_sngan(
        args.data, args.checkpoint_dir, args.iterations, config=config, resume=args.resume,
        checker=args.checker or DEFAULT_CHECKER, probe_every=args.probe_every, log_every=args.log_every,
        checkpoint_seconds=60 * args.checkpoint_minutes, precision=args.precision, warm_start=args.warm_start,
    )
    print(f"at iteration {state.iteration} ({state.seconds / 3600:.2f} training hours) in {args.checkpoint_dir}", flush=True)
    if args.export:
        _export(args.checkpoint_dir, args.export)


def _export_sngan(args: argparse.Namespace) -> None:
    _export(args.checkpoint_dir, args.out)


def _export(checkpoint_dir: str, out: str) -> None:
    """Write out/generator.pt from a train-sngan checkpoint's EMA generator and say so."""
    from irob_bench.generators.train_sngan import export_generator

    sha = export_generator(checkpoint_dir, out)
    print(f"wrote {out}/generator.pt (sha256 {sha[:12]}) and {out}/export.json")


def _checker(args: argparse.Namespace) -> None:
    from irob_bench.generators.quality import CheckerRecipe, load_checker_file, real_accuracy, train_checker
    from irob_bench.generators.train import RECIPES

    load = RECIPES[args.name].load
    images, labels = load(args.data, "train")
    recipe = CheckerRecipe(architecture=args.architecture, width=args.width, epochs=args.epochs,
                           optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, augment=args.augment)
    report = train_checker(images, labels, args.out, recipe, seed=args.seed, progress=not args.quiet,
                           checkpoint=args.checkpoint)
    test_images, test_labels = load(args.data, "test")
    channels = 1 if test_images.ndim == 3 else test_images.shape[3]
    acc = real_accuracy(load_checker_file(args.out, channels, test_images.shape[1]), test_images, test_labels)
    print(f"wrote {args.out}: real {args.name} test accuracy {acc:.2%} after {report.epochs} epochs ({report.seconds:.0f}s)")


def _quality(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.generators.quality import default_checker_path, fidelity, label_agreement, load_checker
    from irob_bench.generators.train import real_data_for

    data = datasets.load(args.dataset)
    source = args.checker or default_checker_path(data)
    checker = load_checker(data, source)
    real = real_data_for(data.card.generator.architecture)(args.data, "test")[0]  # a wrong --data: before generating
    generated = data.generate(data.latents("test"), data.labels("test"))
    agreement = label_agreement(data, checker, images=generated)
    fid = fidelity(generated, real, checker)
    hardness = None if args.hardness is None else _hardness(data, generated, args)
    if args.json:
        print(json.dumps({"checker": str(source), "agreement": agreement.model_dump(), "fidelity": fid.model_dump(),
                          "hardness": hardness}))
        return
    print(f"{data.card.name}: real-data checker {source}")
    print(f"  label agreement  {agreement.agreement:.2%} of {agreement.n} generated test images")
    print("  per class        " + " ".join(f"{c}={a:.0%}" for c, a in zip(data.card.classes, agreement.per_class)))
    print(f"  checker Frechet  {fid.generated:.2f} ({fid.n} generated vs {fid.n} real test images; "
          f"real vs real: {fid.real_floor:.2f})")
    if hardness is not None:
        print(f"  hardness         {hardness['clean_accuracy']:.2%} clean on the generated test images: a standard "
              f"reference trained {hardness['epochs']} epochs on {hardness['train_points']} generated train points "
              f"({args.hardness})")


def _hardness(data, generated, args: argparse.Namespace) -> dict:
    """The hardness gate (docs/saturation.md): how well the standard SmallCNN reference, trained on the generated train
    split as the shipped references are, classifies the generated test images. Near 100% means the classes are too
    easy to separate defenses."""
    from irob_bench.plugin import load_submission
    from irob_bench.reference.baselines import train_reference
    from irob_bench.reference.training import accuracy

    record = train_reference("standard", data, args.hardness, epochs=args.hardness_epochs, seed=args.seed,
                             train_points=args.hardness_train_points, progress=not args.quiet)
    model = load_submission(f"{args.hardness}/submission.py").build(data.card.name)
    return {"clean_accuracy": accuracy(model, generated, data.labels("test")), "epochs": record.fit.epochs,
            "train_points": record.train_points, "seed": args.seed, "weights_sha256": record.weights_sha256}


def _real_data_parser(group: argparse._SubParsersAction, action: str, help_text: str, out_help: str,
                      epochs: int, out_type: Callable[[str], str]) -> argparse.ArgumentParser:
    """A subcommand that trains on one real dataset: name, --data, --out, --epochs, --seed, --quiet."""
    parser = group.add_parser(action, help=help_text)
    parser.add_argument("name", choices=["mnist", "cifar"], help="which real data: mnist or cifar (saturated-cifar's base)")
    parser.add_argument("--data", default=None, help="../shared/data/mnist (IDX .gz) or ../shared/data/cifar10 (.npz); default: torchvision download")
    parser.add_argument("--out", required=True, type=out_type, help=out_help)
    parser.add_argument("--epochs", type=positive_int, default=epochs)
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `generators` command and its actions to the CLI (its arguments are checked while parsing, before any heavy import)."""
    group = sub.add_parser("generators", help="train benchmark generators and their quality checkers").add_subparsers(
        dest="action", required=True
    )
    train = _real_data_parser(group, "train", "train a benchmark generator on real data",
                              "output folder for generator.pt and training_summary.json", epochs=10,
                              out_type=output_folder)
    train.add_argument("--batch-size", type=positive_int, default=64)
    train.add_argument("--width", type=positive_int, default=None, help="channels of G and D (cifar only; default 32)")
    train.add_argument("--fake-class-weight", type=non_negative_float, default=1.0,
                       help="weight of D's class loss on generated images (0: D classifies real images only)")
    train.set_defaults(handler=_train)

    sngan = group.add_parser("train-sngan", help="train (or resume) the SNGAN-style CIFAR-10 generator with checkpoints")
    sngan.add_argument("--data", required=True, help="the real CIFAR-10 folder (.npz), e.g. ../shared/data/cifar10")
    sngan.add_argument("--checkpoint-dir", required=True, help="folder of checkpoint.pt (keep it outside the repo)")
    sngan.add_argument("--iterations", type=positive_int, required=True,
                       help="train until this many generator steps in total")
    sngan.add_argument("--resume", action="store_true",
                       help="continue the folder's checkpoint (same settings); starts fresh if there is none")
    sngan.add_argument("--export", default=None, metavar="OUT", help="then write OUT/generator.pt from the EMA generator")
    sngan.add_argument("--seed", type=seed, default=0)
    sngan.add_argument("--batch-size", type=bounded(1, cast=int), default=64)
    sngan.add_argument("--g-width", type=positive_int, default=64, help="channels of every generator block")
    sngan.add_argument("--d-width", type=positive_int, default=64, help="channels of every discriminator block")
    sngan.add_argument("--n-dis", type=positive_int, default=1, help="discriminator steps per generator step")
    sngan.add_argument("--class-weight", type=non_negative_float, default=0.0,
                       help="weight of G's loss from a class head on D that learns from real images only (default 0: none)")
    sngan.add_argument("--warm-start", default=None, metavar="DIR",
                       help="start a new run from DIR's checkpoint (only --class-weight may differ from its settings)")
    sngan.add_argument("--checker", default=None,
                       help="probe checker weights (default: the quality gate's datasets/cifar-generator/checker-resnet9.pt)")
    sngan.add_argument("--probe-every", type=bounded(0, cast=int, include_low=True), default=1000,
                       help="log the EMA generator's label agreement every N iterations (0: never)")
    sngan.add_argument("--log-every", type=positive_int, default=100)
    sngan.add_argument("--checkpoint-minutes", type=non_negative_float, default=5.0)
    sngan.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    sngan.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                       help="bf16: CPU bfloat16 autocast, 1.8x faster with AVX512-BF16 (may change on resume)")
    sngan.set_defaults(handler=_train_sngan)

    export = group.add_parser("export-sngan", help="write generator.pt from a train-sngan checkpoint (also while it runs)")
    export.add_argument("--checkpoint-dir", required=True)
    export.add_argument("--out", required=True, type=output_folder, help="output folder for generator.pt and export.json")
    export.set_defaults(handler=_export_sngan)

    checker = _real_data_parser(group, "checker", "train the real-data classifier that scores a generator's label agreement",
                                "checker weights file to write (e.g. checker.pt)", epochs=2, out_type=output_file)
    checker.add_argument("--augment", action="store_true", help="random flips and shifts (for CIFAR)")
    checker.add_argument("--architecture", choices=CHECKER_ARCHITECTURES, default="smallcnn", help="smallcnn (default) or resnet9")
    checker.add_argument("--width", type=positive_int, default=None, help="channels of the first layer (default: the architecture's)")
    checker.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    checker.add_argument("--lr", type=bounded(0.0), default=1e-3, help="peak learning rate of the one-cycle schedule")
    checker.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    checker.add_argument("--checkpoint", type=output_file, default=None,
                         help="resumable state file, saved after every epoch; a rerun with the same settings continues it")
    checker.set_defaults(handler=_checker)

    quality = group.add_parser("quality", help="score a benchmark's generated test set with its real-data checker")
    quality.add_argument("dataset", help="a dataset card, e.g. mnist or saturated-cifar-p2")
    quality.add_argument("--data", default=None, help="the real data folder of its generator (as for `generators train`)")
    quality.add_argument("--checker", default=None, help="checker weights (default: checker.pt beside the generator weights)")
    quality.add_argument("--json", action="store_true", help="print the numbers as JSON")
    quality.add_argument("--hardness", type=output_folder, default=None, metavar="DIR",
                         help="also train the standard reference on the generated train split into DIR and report its "
                         "clean accuracy on the generated test images (the hardness gate)")
    quality.add_argument("--hardness-epochs", type=positive_int, default=8, help="its epochs (default 8, as the references)")
    quality.add_argument("--hardness-train-points", type=positive_int, default=None,
                         help="train it on the first N train points only (default: all)")
    quality.add_argument("--seed", type=seed, default=0, help="its training seed")
    quality.add_argument("--quiet", action="store_true", help="no progress bar")
    quality.set_defaults(handler=_quality)
