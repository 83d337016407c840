"""Plots of stored runs (PNG or SVG by the file's suffix, via matplotlib): robust accuracy against eps with ceilings,
and against saturation p.

Figures use matplotlib's object API (a Figure with its own Agg canvas): no backend is chosen and no pyplot state is
touched, so importing or plotting changes nothing for the caller's own matplotlib use.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from irob_bench.artifacts import atomic_path
from irob_bench.bounds import classifier_ceiling, dataset_ceiling_per_class
from irob_bench.common import same_eps
from irob_bench.datasets import load_card
from irob_bench.datasets.card import DatasetCard
from irob_bench.errors import IrobError
from irob_bench.leaderboard.intervals import accuracy_interval
from irob_bench.metrics import class_risks
from irob_bench.results import EvaluationResult


def _figure() -> tuple[Figure, Axes]:
    """A 7.5 x 4.8 inch, 120 dpi figure on its own Agg canvas, and its one axes."""
    fig = Figure(figsize=(7.5, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _colours() -> list[str]:
    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def ceiling_curve(result: EvaluationResult, eps_grid: list[float]) -> list[float | None]:
    """The classifier-specific ceiling (Thm 4.3) of a run at every eps of the grid (None where not established)."""
    data = result.dataset
    if data.lipschitz_constants is None:
        return [None] * len(eps_grid)
    priors = load_card(data.name).priors
    risks = class_risks(result.metrics.per_class_accuracy, result.metrics.per_class_count)
    return [
        classifier_ceiling(e, data.lipschitz_constants, risks, priors, data.lipschitz_delta, data.lipschitz_radius).value
        for e in eps_grid
    ]


def plot_runs(results: list[EvaluationResult], out: str | Path, title: str | None = None) -> Path:
    """One panel: per run, PGD (solid) and in-distribution (dashed) robust accuracy curves and its ceiling (dotted)."""
    runs = [r for r in results if r.metrics.curves is not None]
    if not runs:
        raise IrobError("no run with robustness curves to plot")
    fig, ax = _figure()
    colours = _colours()
    for k, result in enumerate(runs):
        colour, curves, name = colours[k % len(colours)], result.metrics.curves, result.submission.metadata.name
        ax.plot(curves.eps, curves.unconstrained, color=colour, lw=2, label=f"{name}: PGD")
        if curves.in_distribution is not None:
            ax.plot(curves.eps, curves.in_distribution, color=colour, lw=1.5, ls="--", label=f"{name}: in-distribution")
        ceiling = ceiling_curve(result, curves.eps)
        points = [(e, c) for e, c in zip(curves.eps, ceiling) if c is not None]
        if points:
            ax.plot(*zip(*points), color=colour, lw=1.2, ls=":", label=f"{name}: ceiling (Thm 4.3)")
        measured = [(m.eps, m.robust_accuracy_pgd) for m in result.metrics.per_eps]
        ax.scatter(*zip(*measured), color=colour, s=18, zorder=3)
    # Between grid points only the minimum-norm attack's distances are known: an upper bound, looser than the cascade
    ax.set_xlabel("eps (L2, images in [0, 1])\ndots: the attack cascade at the grid eps; solid lines between them: the "
                  "minimum-norm attack's distances, an upper bound")
    return _finish(fig, ax, "robust accuracy", title or f"{runs[0].dataset.name}: robust accuracy vs eps, with ceilings", out)


def _finish(fig, ax, ylabel: str, title: str, out: str | Path, legend: str = "lower left") -> Path:
    """The shared look (accuracy axis 0-1, grid, legend; `legend="outside"` puts it right of the axes) and an atomic
    write, SVG (text kept as text) for a .svg name, else PNG."""
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    if legend == "outside":
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.legend(fontsize=7, loc=legend)
    fig.tight_layout()
    out = Path(out)
    fmt = "svg" if out.suffix == ".svg" else "png"
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "irob-bench"}), atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight" if legend == "outside" else None,
                    metadata={"Date": None} if fmt == "svg" else None)  # fmt: skip
    return out


def saturation_p(card: DatasetCard) -> float | None:
    """The saturation level p of a card's output transform (inf for binarisation), None if it has none."""
    transform = card.generator.output_transform or {}
    return float(transform["saturation_p"]) if "saturation_p" in transform else None


INF_STEP = 4.0  # p = inf (binarisation) is drawn this factor right of the largest finite level, on a tick "inf"
DODGE = 0.07  # methods at one level are spread this many octaves apart, so that their markers and bars do not overlap


def plot_saturation(results: list[EvaluationResult], cards: list[DatasetCard], eps: float, out: str | Path) -> Path:
    """Against the saturation level p (log scale): every level's dataset ceiling at eps (Thm 4.4, second form, at
    the card's reference alpha) and, per training method, the runs' clean, PGD and in-distribution robust accuracy
    with their Wilson 95% intervals (bars) and their classifier ceilings: Ding et al.'s table as a picture.

    Levels without Lipschitz constants have no ceiling point; p = inf has its own tick right of the finite levels."""
    levels = sorted((p, c) for c in cards if (p := saturation_p(c)) is not None)
    ceilings = [(p, v) for p, c in levels if math.isfinite(p) and (v := _dataset_ceiling(c, eps)) is not None]
    runs = [(p, r) for r in results if (p := saturation_p(load_card(r.dataset.name))) is not None]  # (level, run)
    if not ceilings and not runs:
        raise IrobError("nothing to plot: no saturation level with Lipschitz constants and no run on one")
    finite = sorted({p for p, _ in [*levels, *runs] if math.isfinite(p)})
    top = finite[-1] if finite else 2.0
    fig, ax = _figure()
    if ceilings:
        ax.plot([_level_x(p, top) for p, _ in ceilings], [v for _, v in ceilings], color="black", lw=1.5, ls=":", marker="x",
                label=f"dataset ceiling (Thm 4.4, every class risk >= {levels[0][1].reference_alpha:g})")
    colours = _colours()
    methods = sorted({r.submission.metadata.training for _, r in runs})
    for k, method in enumerate(methods):  # markers only: no line through a level where this method has no run
        colour, name = colours[k % len(colours)], _short(method)
        shift = 2.0 ** (DODGE * (k - (len(methods) - 1) / 2))
        mine = sorted(((p, r) for p, r in runs if r.submission.metadata.training == method), key=lambda pr: pr[0])
        at_eps = [(p, r, m) for p, r in mine if (m := next((m for m in r.metrics.per_eps if same_eps(m.eps, eps)), None))]
        series = [
            (f"{name}: clean", [(p, r, r.metrics.clean_accuracy) for p, r in mine], {"mfc": "white"}),
            (f"{name}: PGD @ {eps:g}", [(p, r, m.robust_accuracy_pgd) for p, r, m in at_eps], {"ms": 7}),
            (f"{name}: in-distribution @ {eps:g}", [(p, r, m.robust_accuracy_in_distribution) for p, r, m in at_eps
                                                    if m.robust_accuracy_in_distribution is not None], {"marker": "s"}),
        ]  # fmt: skip
        for label, points, style in series:
            if points:
                _with_intervals(ax, [_level_x(p, top) * shift for p, _, _ in points], [v for _, _, v in points],
                                [r.settings.n_examples for _, r, _ in points], colour, label, style)
        bounded = [(_level_x(p, top) * shift, m.ceiling_classifier) for p, _, m in at_eps if m.ceiling_classifier is not None]
        if bounded:
            ax.plot(*zip(*bounded), color=colour, ls="none", marker="^", label=f"{name}: its ceiling @ {eps:g}")
    ax.set_xscale("log", base=2)
    ticks = finite + ([math.inf] if any(not math.isfinite(p) for p, _ in [*levels, *runs]) else [])
    ax.set_xticks([_level_x(p, top) for p in ticks], [f"{p:g}" for p in ticks])
    ax.set_xlim(_level_x(ticks[0], top) / 2**0.4, _level_x(ticks[-1], top) * 2**0.4)  # room for dodged markers
    ax.set_xlabel("saturation level p (2 = identity, inf = binarised); bars: Wilson 95% intervals")
    return _finish(fig, ax, f"accuracy (robust at L2 eps {eps:g})", f"saturated-cifar: accuracy and ceilings against p, eps {eps:g}",
                   out, legend="outside")


def _level_x(p: float, largest_finite: float) -> float:
    """Where a level p goes on the x axis: at p, and p = inf INF_STEP times right of the largest finite level."""
    return p if math.isfinite(p) else largest_finite * INF_STEP


def _with_intervals(ax: Axes, xs: list[float], ys: list[float], ns: list[int], colour: str, label: str, style: dict) -> None:
    """Accuracies as markers, each with its Wilson 95% interval over its n points as a vertical bar."""
    bounds = [accuracy_interval(y, n) for y, n in zip(ys, ns)]
    ax.errorbar(xs, ys, yerr=[[y - b.low for y, b in zip(ys, bounds)], [b.high - y for y, b in zip(ys, bounds)]],
                fmt="none", ecolor=colour, elinewidth=1, capsize=2)
    ax.plot(xs, ys, color=colour, ls="none", **{"marker": "o", **style}, label=label)


def _short(method: str, limit: int = 40) -> str:
    """A training-method label short enough for a legend."""
    return method if len(method) <= limit else method[: limit - 1] + "…"


def _dataset_ceiling(card: DatasetCard, eps: float) -> float | None:
    """Thm 4.4 (second form: every class risk >= the card's reference alpha), None without Lipschitz constants."""
    lip = card.lipschitz
    if lip is None:
        return None
    return dataset_ceiling_per_class(eps, lip.constants, card.reference_alpha, card.priors, lip.holds_at, lip.radius).value
