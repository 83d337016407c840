"""`irob-bench ceiling`: the §4 robust-accuracy ceilings for given Lipschitz constants, risk level and eps values."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from irob_bench.commands.arguments import number, open_unit, positive_int
from irob_bench.errors import IrobError

if TYPE_CHECKING:
    from irob_bench.bounds import Bound

# CLI --form name -> (key in bounds.all_ceilings, column title)
FORMS = {
    "classifier": ("classifier", "classifier (Thm 4.3)"),
    "overall": ("dataset_overall", "overall (Thm 4.4)"),
    "per-class": ("dataset_per_class", "per-class (Thm 4.4)"),
}
DEFAULT_NUM_CLASSES = 10
DEFAULT_BETA = 0.95  # confidence over the anchors, as lipschitz.settings.EstimatorSettings.beta
LEGEND = {
    "classifier": "classifier: a classifier whose every class risk is alpha",
    "overall": "overall: any classifier with overall risk >= alpha",
    "per-class": "per-class: any classifier with every class risk >= alpha",
}


def _priors(args: argparse.Namespace) -> list[float]:
    """The given priors, else uniform over K = number of Lipschitz constants (or 10 when only one is given)."""
    if args.priors:
        return args.priors
    k = len(args.lipschitz) if len(args.lipschitz) > 1 else DEFAULT_NUM_CLASSES
    return [1.0 / k] * k


def _cell(bound: Bound) -> str:
    return f"{100 * bound.value:.2f}%" if bound.value is not None else f"not established: {bound.reason}"


def _holds_at(args: argparse.Namespace):
    """The delta of the ceilings and the statistic behind it: with --anchors S, the order statistic's (delta' when S
    is too small for --delta); without, --delta as given."""
    if args.anchors is None:
        if args.beta is not None:
            raise IrobError("--beta is the confidence over the anchors behind L: give --anchors S with it")
        return args.delta, None
    from irob_bench.lipschitz import order_statistic

    beta = DEFAULT_BETA if args.beta is None else args.beta
    statistic = order_statistic(args.anchors, args.delta, beta, classes=len(_priors(args)))
    return statistic.holds_at, statistic


def _basis(args: argparse.Namespace, delta: float, statistic) -> str:
    from irob_bench.datasets.card import guarantee

    if statistic is None:
        return guarantee(delta, None, None, None, "", args.radius)
    return guarantee(delta, statistic.beta, statistic.samples, statistic.rank, "per-anchor", args.radius, statistic.classes)


def _print_table(args: argparse.Namespace, priors: list[float], forms: list[str], rows: list[dict]) -> None:
    delta, statistic = _holds_at(args)
    uniform = len(set(priors)) == 1
    lipschitz = f"{args.lipschitz[0]:g} (every class)" if len(args.lipschitz) == 1 else ", ".join(f"{v:g}" for v in args.lipschitz)
    print(
        f"K = {len(priors)} classes, priors {'uniform' if uniform else ', '.join(f'{p:g}' for p in priors)}, "
        f"L = {lipschitz}, alpha = {args.alpha:g}, delta = {delta:.3g}, "
        + (f"r = {args.radius:g}" if args.radius is not None else "r not given (condition r * L >= eps unchecked)")
    )
    if statistic is not None and statistic.reason:
        print(f"delta = {args.delta:g} is not supported: {statistic.reason}; the ceilings use delta' = {delta:.3g}")
    print(f"ceilings on robust accuracy at alpha = {args.alpha:g} (no classifier of that kind can be more robust); each")
    print(f"  {_basis(args, delta, statistic)}")
    header = ["eps"] + [FORMS[f][1] for f in forms]
    table = [[f"{row['eps']:g}"] + [_cell(row[FORMS[f][0]]) for f in forms] for row in rows]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())
    for form in forms:
        print(f"  {LEGEND[form]}")


def _ceiling(args: argparse.Namespace) -> None:
    from irob_bench.bounds import all_ceilings

    priors = _priors(args)
    lipschitz = args.lipschitz[0] if len(args.lipschitz) == 1 else args.lipschitz
    forms = list(FORMS) if args.form == "all" else [args.form]
    delta, statistic = _holds_at(args)
    rows = []
    for eps in args.eps:
        bounds = all_ceilings(eps, lipschitz, priors, delta, [args.alpha] * len(priors), args.alpha, args.radius)
        rows.append({"eps": eps, **{FORMS[f][0]: bounds[FORMS[f][0]] for f in forms}})
    if args.json:
        settings = {
            "lipschitz": args.lipschitz, "priors": priors, "alpha": args.alpha, "delta": delta, "radius": args.radius,
            "statistic": statistic.model_dump() if statistic is not None else None, "basis": _basis(args, delta, statistic),
        }  # fmt: skip
        ceilings = [{key: (value.model_dump() if key != "eps" else value) for key, value in row.items()} for row in rows]
        print(json.dumps({"settings": settings, "ceilings": ceilings}, indent=2))
        return
    _print_table(args, priors, forms, rows)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `ceiling` command to the CLI (its arguments are checked while parsing, before any heavy import)."""
    parser = sub.add_parser(
        "ceiling",
        help="robust-accuracy ceilings from Lipschitz constants (docs/science.md §4)",
        description="Upper bounds on robust accuracy (Zhang et al. Thm 4.3 / 4.4) for the given generator Lipschitz constants.",
    )
    parser.add_argument("--lipschitz", type=number, nargs="+", required=True, metavar="L", help="one L for every class, or one per class")
    parser.add_argument("--alpha", type=number, required=True, help="risk level: the classifier's (or every class's) error rate")
    parser.add_argument("--delta", type=open_unit, required=True, help="latent mass on which the Lipschitz property may fail")
    parser.add_argument("--anchors", type=positive_int, default=None, metavar="S",
                        help="anchors per class behind L: states the confidence (L = the order statistic of S slopes)")
    parser.add_argument("--beta", type=open_unit, default=None,
                        help=f"with --anchors: confidence over the anchors (default {DEFAULT_BETA:g})")
    parser.add_argument("--eps", type=number, nargs="+", required=True, metavar="E", help="L2 perturbation sizes in [0,1] image space")
    parser.add_argument("--priors", type=number, nargs="+", metavar="P", help="class priors (default: uniform)")
    parser.add_argument("--radius", type=number, default=None, help="radius r the constants hold on; checks r * L >= eps")
    parser.add_argument("--form", choices=[*FORMS, "all"], default="all", help="which ceiling(s) to print")
    parser.add_argument("--json", action="store_true", help="machine-readable output: fractions in [0, 1] or null with a reason")
    parser.set_defaults(handler=_ceiling)
