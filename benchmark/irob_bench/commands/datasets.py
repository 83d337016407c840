"""`irob-bench datasets list | show | build | verify | freeze`: inspect and check benchmark distributions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from irob_bench.commands.arguments import output_file, output_folder, positive_int
from irob_bench.errors import IrobError


def _list(args: argparse.Namespace) -> None:
    from irob_bench import datasets

    for name in _matching(args.pattern) if args.pattern is not None else datasets.available():
        card = datasets.load_card(name)
        print(f"{name:24s} v{card.version:8s} {card.num_classes} classes, {card.splits['test'].size} test points, eps {card.eps_grid}")


def _show(args: argparse.Namespace) -> None:
    from irob_bench import datasets

    card = datasets.load_card(args.name)
    if args.json:
        print(card.model_dump_json(indent=2))
        return
    rows = [
        ("name", card.name),
        ("version", card.version),
        ("description", card.description),
        ("generator", f"{card.generator.architecture} (weights sha256 {card.generator.weights_sha256})"),
        ("latent dim", card.latent_dim),
        ("classes", ", ".join(card.classes)),
        ("priors", ", ".join(f"{p:g}" for p in card.priors)),
        ("image shape", "x".join(map(str, card.image_shape))),
        ("threat model", f"{card.threat_model}, eps {card.eps_grid}"),
    ]
    for split, spec in card.splits.items():
        rows.append((f"{split} split", f"{spec.size} points, seed {spec.seed}" + (" (latents stored)" if spec.latents_file else " (regenerated)")))
    test = card.splits["test"]
    rows += [("test latents sha256", test.latents_sha256), ("test labels sha256", test.labels_sha256), ("test images sha256", test.images_sha256)]
    if card.lipschitz is None:
        rows.append(("lipschitz", "none (see ceiling)" if "ceiling" in card.notes else "not estimated yet"))
    else:
        lip = card.lipschitz
        rows.append(("lipschitz", f"r = {lip.radius}, delta = {lip.holds_at:.3g}: " + ", ".join(f"{c}:{v:.2f}" for c, v in zip(card.classes, lip.constants))))
        rows.append(("ceilings", lip.statement()))
    for key, value in card.notes.items():
        rows.append((key, value))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _build(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.datasets.build import build_split

    path = build_split(datasets.load(args.name), args.split, args.out)
    print(f"wrote {path}")


def _matching(pattern: str) -> list[str]:
    """The shipped names a glob matches ('saturated-*'); none is one line naming what there is."""
    from irob_bench import datasets

    names = datasets.available(pattern)
    if not names:
        raise IrobError(f"no dataset matches {pattern!r} (available: {', '.join(datasets.available())})")
    return names


def _verify_names(patterns: list[str]) -> list[str]:
    """Names and card paths as given, each glob ('saturated-cifar-*') expanded to the shipped names it matches."""
    names: list[str] = []
    for pattern in patterns:
        glob = any(ch in pattern for ch in "*?[") and not Path(pattern).exists()
        names += _matching(pattern) if glob else [pattern]
    return list(dict.fromkeys(names))


def _verify(args: argparse.Namespace) -> int:
    """Verify each named dataset; cards that share a generator and latents (the saturation levels) generate once."""
    from irob_bench import datasets
    from irob_bench.datasets.build import verify

    loaded = [datasets.load(name) for name in _verify_names(args.names)]  # every name checked before any generation
    shared: dict = {}
    failures = 0
    for dataset in loaded:
        checks = verify(dataset, shared)
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}" + ("" if check.ok else f": {check.detail}"))
        failed = [c.name for c in checks if not c.ok]
        if failed:
            failures += 1
            print(f"irob-bench: error: {dataset.card.name}: verify failed: {', '.join(failed)} differ(s)", file=sys.stderr)
        else:
            print(f"{dataset.card.name} v{dataset.card.version}: all {len(checks)} checks passed")
    return 1 if failures else 0


def _preview(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.datasets.preview import save_grid

    print(f"wrote {save_grid(datasets.load(args.name), args.out, args.per_class)}")


def _freeze(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.datasets.build import freeze
    from irob_bench.datasets.drafts import DRAFTS

    draft = DRAFTS.get(args.name)  # "unknown dataset draft NAME (available: ...)"
    root = args.root or datasets.DATA_DIR / args.name
    card = freeze(draft(), root, args.weights)
    print(f"froze {card.name} v{card.version} into {root} (test images sha256 {card.splits['test'].images_sha256[:12]})")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `datasets` command and its actions to the CLI (its arguments are checked while parsing, before any heavy import)."""
    group = sub.add_parser("datasets", help="list, show, preview, build, freeze and verify benchmark distributions")
    actions = group.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the shipped benchmark distributions")
    listing.add_argument("pattern", nargs="?", default=None, metavar="GLOB", help="only names matching it ('saturated-*')")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="print a dataset card")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="the full card as JSON")
    show.set_defaults(handler=_show)

    build = actions.add_parser("build", help="write a split's images, labels and latents to a cache file")
    build.add_argument("name")
    build.add_argument("--split", choices=["train", "test"], default="test")
    build.add_argument("--out", type=output_folder, default=None, help="output folder (default: ~/.cache/irob-bench/datasets)")
    build.set_defaults(handler=_build)

    verify = actions.add_parser("verify", help="regenerate everything and check every hash in the card")
    verify.add_argument("names", nargs="+", metavar="NAME", help="dataset names, card paths or globs ('saturated-cifar-*')")
    verify.set_defaults(handler=_verify)

    preview = actions.add_parser("preview", help="save a PNG grid of test images, one row per class")
    preview.add_argument("name")
    preview.add_argument("--out", type=output_file, required=True, help="PNG file to write")
    preview.add_argument("--per-class", type=positive_int, default=10)
    preview.set_defaults(handler=_preview)

    freeze = actions.add_parser("freeze", help="(maintainers) freeze generator weights into a card with seeded test latents")
    freeze.add_argument("name")
    freeze.add_argument("--weights", required=True, help="generator state_dict (.pt) to ship; for imagenet10 the BigGAN folder")
    freeze.add_argument("--root", default=None, help="card folder (default: the package's own)")
    freeze.set_defaults(handler=_freeze)
