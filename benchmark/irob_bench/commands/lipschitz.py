"""`irob-bench lipschitz estimate | radius NAME`: local Lipschitz constants L_y(r) of a benchmark generator."""

from __future__ import annotations

import argparse
import json

from irob_bench.commands.arguments import (
    non_negative_float,
    non_negative_int,
    open_unit,
    output_file,
    output_folder,
    positive_float,
    positive_int,
    seed,
)
from irob_bench.errors import IrobError
from irob_bench.user_text import is_index

# Reference settings of docs/science.md §3 (S = 1000, N = 2000) cost 2 million generator calls per class; the
# settings' defaults (S = 100, N = 250) are 80x cheaper and finish mnist in about 3 minutes on 2 idle CPU cores.


def _labels(card, requested: list[str] | None) -> list[int]:
    """Class indices from names (preferred) or indices; all classes when none are requested."""
    if not requested:
        return list(range(card.num_classes))
    labels = []
    for token in requested:
        if token in card.classes:
            labels.append(card.classes.index(token))
        elif is_index(token) and int(token) < card.num_classes:
            labels.append(int(token))
        else:
            raise IrobError(f"{card.name} has no class {token!r} (classes: {', '.join(card.classes)})")
    if len(set(labels)) != len(labels):
        raise IrobError("a class is requested twice")
    return labels


def _settings(args: argparse.Namespace, card, method: str, **extra):
    """Settings from the flags; radius, delta and beta default to the card's (so --write merges), else the reference's."""
    from irob_bench.lipschitz import make_settings

    section = card.lipschitz
    return make_settings(
        method,
        radius=args.radius if args.radius is not None or section is None else section.radius,
        delta=args.delta if args.delta is not None or section is None else section.delta,
        beta=args.beta if args.beta is not None or section is None else section.beta,
        samples=args.samples,
        seed=args.seed,
        batch_size=args.batch_size,
        **extra,
    )


def _print_table(run, eps: float, no_constant: str | None = None) -> None:
    from irob_bench.datasets.card import guarantee
    from irob_bench.lipschitz import check_radius

    s, stat = run.settings, run.statistic
    check = check_radius([c.constant for c in run.classes], s.radius, eps)
    print(f"{s.method} estimator: r = {s.radius:g}, S = {stat.samples:,}, seed = {s.seed}; L_y = v_(k) with k = {stat.rank:,}")
    if no_constant:  # the card says why no statement about a quantile of the slopes holds here
        print(f"no guarantee: the card says the ceiling is {no_constant}; the values below are sample statistics only")
    else:
        if stat.reason:
            print(f"delta = {stat.delta:g} not established: {stat.reason}; reporting the maximum, at delta' = {stat.delta_prime:.3g}")
        print(f"L_y {guarantee(stat.holds_at, stat.beta, stat.samples, stat.rank, s.method, s.radius, stat.classes)}")
    print(f"{'class':>8}  {'L_y(r)':>9}  {'max':>9}  {'evaluations':>12}  {'seconds':>8}  {'r*L':>7}  r*L >= {eps:g}")
    for row, product, ok in zip(run.classes, check.products, check.ok):
        print(f"{row.name:>8}  {row.constant:9.4f}  {row.largest:9.4f}  {row.generator_evaluations:12,d}  {row.seconds:8.1f}  "
              f"{product:7.3f}  {'yes' if ok else 'NO'}")
    total = sum(c.generator_evaluations for c in run.classes), sum(c.seconds for c in run.classes)
    print(f"{'total':>8}  {'':9}  {'':9}  {total[0]:12,d}  {total[1]:8.1f}")
    if not check.passed:
        print(f"r * L_y < {eps:g} for some class: the ceilings at eps = {eps:g} are not established at this radius "
              f"(see `irob-bench lipschitz radius`)")


METHOD_OPTIONS = {"sampling": ("neighbors",), "gradient": ("lanczos_steps", "lanczos_tolerance", "starts", "ascent_steps")}


def _method_options(args: argparse.Namespace) -> dict:
    """The chosen --method's own options as given; an option of the other method is refused, not ignored."""
    for other, names in METHOD_OPTIONS.items():
        given = [name for name in names if getattr(args, name, None) is not None]
        if other != args.method and given:
            raise IrobError(f"--{given[0].replace('_', '-')} is an option of --method {other}, not of --method {args.method}")
    return {name: getattr(args, name) for name in METHOD_OPTIONS[args.method] if hasattr(args, name)}


def _estimate(args: argparse.Namespace) -> None:
    if args.replace and not args.write:  # before the card and generator load (and torch with them)
        raise IrobError("--replace only makes sense with --write")
    extra = _method_options(args)
    from irob_bench import datasets
    from irob_bench.lipschitz import estimate, write_estimate
    from irob_bench.lipschitz.section import check_mergeable

    dataset = datasets.load(args.name)
    card = dataset.card
    settings = _settings(args, card, args.method, **extra)
    labels = _labels(card, args.classes)
    if args.write and len(labels) != card.num_classes:
        raise IrobError("--write needs every class (drop --classes)")
    if args.write and card.no_constant:
        raise IrobError(f"{card.name}: no constant to write: {card.no_constant}")
    if args.write and not args.replace:
        check_mergeable(card.lipschitz, settings.method, settings.radius, settings.delta, settings.beta)
    names = [card.classes[y] for y in labels]
    run = estimate(dataset.generator, card.latent_dim, settings, labels, names, not args.quiet, args.checkpoint)
    if args.json:
        print(run.model_dump_json(indent=2))
    else:
        _print_table(run, max(card.eps_grid), card.no_constant)
    if args.write:
        updated = write_estimate(args.name, run.to_card_estimate(card.num_classes), replace=args.replace)
        if not args.json:
            constants = ", ".join(f"{c}:{v:.3f}" for c, v in zip(updated.classes, updated.lipschitz.constants))
            print(f"wrote the {settings.method} estimate into {datasets.card_path(args.name)} (constants {constants})")


def _radius(args: argparse.Namespace) -> None:
    extra = _method_options(args)
    from irob_bench import datasets
    from irob_bench.lipschitz import smallest_radius

    dataset = datasets.load(args.name)
    card = dataset.card
    eps = args.eps if args.eps is not None else max(card.eps_grid)
    settings = _settings(args, card, args.method, **extra)
    labels = _labels(card, args.classes)
    search = smallest_radius(dataset.generator, card.latent_dim, labels, settings, eps, progress=not args.quiet)
    if args.json:
        print(json.dumps(search.model_dump(), indent=2))
        return
    for radius, constants in search.trials:
        products = [radius * c for c in constants]
        print(f"r = {radius:8.4f}: min_y r*L_y = {min(products):6.3f}  ({'passes' if min(products) >= eps else 'fails'})")
    if not search.bracketed:
        print(f"every radius tried passes, down to {search.radius:.4f}: the smallest lies below it (S = "
              f"{settings.samples}; start lower with --radius)")
        return
    print(f"smallest radius with r * L_y(r) >= {eps:g} for every class: {search.radius:.4f} "
          f"(S = {settings.samples}; round up for the full estimate)")


def _audit(args: argparse.Namespace) -> None:
    from irob_bench import datasets
    from irob_bench.artifacts import atomic_write_text
    from irob_bench.lipschitz.audit import AuditSettings, audit

    dataset = datasets.load(args.name)
    given = {"samples": args.samples, "seed": args.seed, "delta": args.delta}
    settings = AuditSettings(**{k: v for k, v in given.items() if v is not None})
    result = audit(dataset.card, dataset.generator, settings, args.checkpoint, progress=not args.quiet)
    if args.out is not None:
        atomic_write_text(args.out, result.model_dump_json(indent=2) + "\n")
    print(f"{result.dataset} v{result.version}: sigma_max on {settings.samples:,} fresh anchors per class (seed "
          f"{settings.seed}) against the card's constants")
    claim = dataset.card.lipschitz.holds_at
    print(f"the card claims its constants at delta = {claim:.3g}; 'claimed q' is that quantile, 'q {1 - settings.delta:g}' "
          f"the one at the requested delta")
    print(f"{'class':>10}  {'constant':>9}  {'claimed q':>9}  {f'q {1 - settings.delta:g}':>9}  {'max':>9}  "
          f"constant >= claimed q")
    for row in result.classes:
        print(f"{dataset.card.classes[row.label]:>10}  {row.constant:9.3f}  {row.judged_at:9.3f}  {row.quantile:9.3f}  "
              f"{row.largest:9.3f}  {'yes' if row.passed else 'NO'}")
    if settings.samples * settings.delta < 1:  # fewer anchors than one expected above the quantile
        print(f"note: {settings.samples:,} anchors hold fewer than one expected value above the {1 - settings.delta:g} "
              f"quantile, so the 'q' column is an interpolation between the largest values and a pass says little; "
              f"use at least {round(1 / settings.delta):,} anchors")


# The estimators' defaults shown in --help: irob_bench.lipschitz.settings.SETTINGS without importing torch (the
# package's __init__ imports the estimators); a test checks they agree.
HELP_DEFAULTS: dict[str, dict[str, object]] = {
    "sampling": {"samples": 100, "batch_size": 1000, "neighbors": 250},
    "gradient": {"lanczos_steps": 30, "lanczos_tolerance": 1e-05, "starts": 2, "ascent_steps": 8},
}


def _default(method: str, name: str) -> object:
    return HELP_DEFAULTS[method][name]


def _add_common(parser: argparse.ArgumentParser, samples: int | None, samples_help: str) -> None:
    parser.add_argument("name", help="shipped dataset name or card folder path")
    parser.add_argument("--samples", type=positive_int, default=samples, help=f"anchors per class, S (default {samples_help})")
    parser.add_argument("--radius", type=positive_float, default=None, help="ball radius r (default: the card's, else 0.5)")
    parser.add_argument("--delta", type=open_unit, default=None, help="bound the 1 - delta quantile of the slopes (default: the card's, else 0.001)")
    parser.add_argument("--beta", type=open_unit, default=None, help="confidence of that bound over the anchors (default: the card's, else 0.95)")
    parser.add_argument("--seed", type=seed, default=None, help="seeds anchors and draws (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help=f"latent points per generator call (default {_default('sampling', 'batch_size')})")
    parser.add_argument("--classes", nargs="+", default=None, help="class names or indices (default: all)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `lipschitz` command and its actions to the CLI (its arguments are checked while parsing, before any heavy import)."""
    group = sub.add_parser("lipschitz", help="estimate the local Lipschitz constants L_y(r) of a generator")
    actions = group.add_subparsers(dest="action", required=True)

    est = actions.add_parser(
        "estimate",
        help="per-class L_y(r) by sampling (Algorithm 1) or by gradients",
        description="Defaults are 80x cheaper than the reference (S = 1000, N = 2000, i.e. 2 million generator "
        "calls per class): pass --samples 1000 --neighbors 2000 for the reference.",
    )
    _add_common(est, samples=None, samples_help=str(_default("sampling", "samples")))
    est.add_argument("--method", choices=["sampling", "gradient"], default="sampling")
    est.add_argument("--neighbors", type=positive_int, default=None, help=f"sampling: uniform points per ball, N (default {_default('sampling', 'neighbors')})")
    est.add_argument("--lanczos-steps", type=positive_int, default=None, help=f"gradient: at most this many Lanczos steps (default {_default('gradient', 'lanczos_steps')})")
    est.add_argument("--lanczos-tolerance", type=non_negative_float, default=None, help=f"gradient: relative Ritz residual that stops them (default {_default('gradient', 'lanczos_tolerance')})")
    est.add_argument("--starts", type=positive_int, default=None, help=f"gradient: ascent start radii, each +-v (default {_default('gradient', 'starts')})")
    est.add_argument("--ascent-steps", type=non_negative_int, default=None, help=f"gradient: ascent steps per start (default {_default('gradient', 'ascent_steps')})")
    est.add_argument("--checkpoint", type=output_folder, default=None, help="folder for per-class slopes: a rerun resumes from it")
    est.add_argument("--write", action="store_true", help="store the estimate in the dataset's card")
    est.add_argument("--replace", action="store_true", help="with --write: drop the card's earlier estimates first")
    est.set_defaults(handler=_estimate)

    check = actions.add_parser("audit", help="the card's constants against sigma_max on fresh anchors")
    check.add_argument("name", help="shipped dataset name or card folder path")
    check.add_argument("--samples", type=positive_int, default=None, help="fresh anchors per class (default 3000)")
    check.add_argument("--seed", type=seed, default=None, help="seed of the fresh anchors (default 1; not the card's)")
    check.add_argument("--delta", type=open_unit, default=None, help="compare with the 1 - delta quantile (default 0.001)")
    check.add_argument("--checkpoint", type=output_folder, default=None, help="folder for per-class values: a rerun resumes")
    check.add_argument("--out", type=output_file, default=None, help="also write the audit as JSON")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(handler=_audit)

    radius = actions.add_parser("radius", help="smallest r with r * L_y(r) >= the largest eps")
    _add_common(radius, samples=32, samples_help="32: a quick search")
    radius.add_argument("--method", choices=["gradient", "sampling"], default="gradient",
                        help="estimator of each trial (sampling for generators not differentiable everywhere, e.g. s_p)")
    radius.add_argument("--neighbors", type=positive_int, default=None, help="sampling: uniform points per ball, N")
    radius.add_argument("--eps", type=positive_float, default=None, help="target (default: the card's largest eps)")
    radius.set_defaults(handler=_radius)
