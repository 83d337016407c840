"""The website's figures (small SVGs, compressed PNG for image grids): a run's robustness with its bracket and error
bands, a dataset's ceilings against eps, Zhang et al.'s Figure 2 (robust accuracy against the risk alpha
with the Thm 4.4 bound as a curve), and labelled image grids.

Defaults for reading: one panel per eps or per model where several would overlap, legends outside the data, the
y-axis zoomed when every value crowds near 1. Text stays text in the SVG (svg.fonttype 'none', set only for the
write), which keeps each file a few tens of kB. Figures use plot.py's own-canvas figures: no pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from irob_bench.artifacts import atomic_path
from irob_bench.bounds import dataset_ceiling_overall, dataset_ceiling_per_class
from irob_bench.datasets.card import DatasetCard
from irob_bench.leaderboard.intervals import accuracy_interval

PGD_COLOUR, IN_DIST_COLOUR, CEILING_COLOUR, BRACKET_COLOUR = "#1f77b4", "#d62728", "#333333", "#9ecae1"
CERTIFIED_COLOUR = "#2ca02c"


@dataclass(frozen=True)
class Series:
    """One measured accuracy per eps (None where not measured), drawn as points with Wilson bands over n points."""

    label: str
    eps: list[float]
    values: list[float | None]
    n: int
    colour: str
    marker: str = "o"


@dataclass(frozen=True)
class Bracket:
    """Where the truth lies per eps: [the best lower estimate, the ceiling]. `lower` holds every lower estimate
    (best in-distribution robustness seen; later others, e.g. certified accuracy): the bracket uses their max."""

    eps: list[float]
    ceiling: list[float | None]
    lower: list[Series] = field(default_factory=list)

    def low(self) -> list[float | None]:
        """The largest lower estimate at each eps (None where none)."""
        found = [[s.values[k] for s in self.lower if s.values[k] is not None] for k in range(len(self.eps))]
        return [max(v) if v else None for v in found]  # type: ignore[type-var]


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig: Figure, out: Path) -> Path:
    """Write SVG (text as text) or PNG, by suffix, atomically."""
    fmt = out.suffix.lstrip(".")
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "irob-bench"}), atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return out


def _zoom(ax: Axes, values: Sequence[float | None]) -> None:
    """Accuracy axis: 0-1, or zoomed in when every value sits above 0.8 (ceilings crowd near 1)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low = min(finite, default=0.0)
    if low > 0.8:
        ax.set_ylim(max(0.0, low - 0.25 * (1.0 - low) - 0.005), 1.002)
    else:
        ax.set_ylim(0, 1.02)


def _bands(ax: Axes, series: Series) -> None:
    pts = [(e, v) for e, v in zip(series.eps, series.values) if v is not None]
    if not pts:
        return
    eps, vals = zip(*pts)
    cis = [accuracy_interval(v, series.n) for v in vals]
    ax.fill_between(eps, [c.low for c in cis], [c.high for c in cis], color=series.colour, alpha=0.25, lw=0)
    ax.plot(eps, vals, color=series.colour, marker=series.marker, lw=1.5, label=f"{series.label} (95% Wilson band)")


def run_robustness(series: Sequence[Series], bracket: Bracket, own_ceiling: list[float | None], title: str, out: Path) -> Path:
    """One run's measured robust accuracies against eps with their error bands, its own ceiling (Thm 4.3), and the
    shaded bracket [best lower estimate seen, ceiling] of the dataset's intrinsic robustness at this run's risk.

    When the bracket and ceilings crowd near 1, a second panel zooms in on them."""
    low = bracket.low()
    top = [v for v in [*bracket.ceiling, *low, *own_ceiling] if v is not None]
    ceilings = any(v is not None for v in [*bracket.ceiling, *own_ceiling])  # without one there is no bracket to zoom on
    zoom = ceilings and min(top) > 0.8
    fig, axes = _figure(10.5 if zoom else 7.2, 3.6, 2 if zoom else 1)
    for ax in axes:
        spans = [(e, lo, hi) for e, lo, hi in zip(bracket.eps, low, bracket.ceiling) if lo is not None and hi is not None]
        if spans:
            e, lo, hi = zip(*spans)
            ax.fill_between(e, lo, hi, color=BRACKET_COLOUR, alpha=0.45, lw=0, label="bracket [best in-distribution seen, ceiling]")
        ceiling = [(e, c) for e, c in zip(bracket.eps, bracket.ceiling) if c is not None]
        if ceiling:
            ax.plot(*zip(*ceiling), color=CEILING_COLOUR, ls=":", marker="^", lw=1.2, label="ceiling (Thm 4.4, risk >= this run's)")
        own = [(e, c) for e, c in zip(bracket.eps, own_ceiling) if c is not None]
        if own:
            ax.plot(*zip(*own), color="#7f7f7f", ls="--", marker="v", lw=1, label="this classifier's ceiling (Thm 4.3)")
        for s in series:
            _bands(ax, s)
        ax.set_xlabel("eps (L2, images in [0, 1])")
        ax.set_xticks(bracket.eps)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("robust accuracy")
    axes[0].set_ylim(0, 1.02)
    if zoom:
        span = 1.0 - min(top)
        axes[1].set_ylim(max(0.0, min(top) - 0.3 * span - 0.002), 1.0 + 0.05 * span + 0.001)
        axes[1].set_title("zoom on the bracket", fontsize=9)
    axes[0].set_title(title, fontsize=10)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, out)


def _finish(fig: Figure, ax: Axes, title: str, out: Path) -> Path:
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, out)


def theorem_44(card: DatasetCard, eps: float, alpha: float) -> tuple[float | None, float | None]:
    """Thm 4.4 at (eps, alpha): (first form, risk >= alpha; second form, every class risk >= alpha), None if not
    established or alpha out of the form's range."""
    lip = card.lipschitz
    if lip is None or not 0 < alpha < 1:
        return None, None
    args = (eps, lip.constants, alpha, card.priors, lip.holds_at, lip.radius)
    overall = dataset_ceiling_overall(*args).value if alpha <= min(card.priors) else None
    return overall, dataset_ceiling_per_class(*args).value


def dataset_ceilings(card: DatasetCard, out: Path) -> Path:
    """The card's Thm 4.4 ceilings (both forms, at its reference alpha) against eps, zoomed where they crowd near 1."""
    fig, (ax,) = _figure(6.4, 3.4)
    grid = np.linspace(0.0, max(card.eps_grid) * 1.25, 41)[1:]
    forms = [theorem_44(card, float(e), card.reference_alpha) for e in grid]
    values: list[float | None] = []
    for k, label, style in ((0, "first form: risk >= alpha", "-"), (1, "second form: every class risk >= alpha", "--")):
        pts = [(e, f[k]) for e, f in zip(grid, forms) if f[k] is not None]
        if pts:
            ax.plot(*zip(*pts), color=CEILING_COLOUR, ls=style, lw=1.5, label=f"Thm 4.4, {label}")
            values += [v for _, v in pts]
    for e in card.eps_grid:
        ax.axvline(e, color="#999999", lw=0.8, ls=":")
    ax.set_xlabel("eps (L2); dotted: the card's eps grid")
    ax.set_ylabel("ceiling on robust accuracy")
    _zoom(ax, values)
    return _finish(fig, ax, f"{card.name}: dataset ceilings at alpha = {card.reference_alpha:g}", out)


@dataclass(frozen=True)
class RunPoint:
    """One run on the Figure-2 plot: its risk alpha and its robust accuracies per eps."""

    label: str
    alpha: float
    pgd: dict[float, float]
    in_distribution: dict[float, float]


def alpha_plot(card: DatasetCard, runs: Sequence[RunPoint], out: Path) -> Path:
    """Zhang et al.'s Figure 2: per eps (one panel each), the Thm 4.4 bound as a curve over alpha and every run as a
    point at (its risk alpha, robust accuracy): PGD (filled) and in-distribution (open)."""
    eps_grid = card.eps_grid
    fig, axes = _figure(3.3 * len(eps_grid) + 1.8, 3.4, len(eps_grid))
    alphas = np.geomspace(1e-3, 0.5, 60)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, eps in zip(axes, eps_grid):
        bounds = [theorem_44(card, eps, float(a)) for a in alphas]
        for k, label, style in ((0, "Thm 4.4 (risk >= alpha)", "-"), (1, "Thm 4.4 (every class risk >= alpha)", "--")):
            pts = [(a, b[k]) for a, b in zip(alphas, bounds) if b[k] is not None]
            if pts:
                ax.plot(*zip(*pts), color=CEILING_COLOUR, ls=style, lw=1.3, label=label)
        for j, run in enumerate(runs):
            colour = colours[j % len(colours)]
            if eps in run.pgd:
                ax.scatter([run.alpha], [run.pgd[eps]], color=colour, marker="o", s=28, zorder=3, label=f"{run.label}: PGD")
            if eps in run.in_distribution:
                ax.scatter([run.alpha], [run.in_distribution[eps]], facecolor="white", edgecolor=colour, marker="s", s=28,
                           zorder=3, label=f"{run.label}: in-distribution")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("alpha = risk (prior-weighted per-class)")
        ax.set_title(f"eps = {eps:g}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("robust accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    fig.suptitle(f"{card.name}: robustness against risk (Zhang et al., Figure 2)", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def image_grid(images: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], out: Path,
               cell_labels: Sequence[Sequence[str]] | None = None) -> Path:  # fmt: skip
    """A labelled grid of images (rows x cols x C x H x W in [0, 1]) as a compressed PNG."""
    rows, cols = images.shape[:2]
    fig = Figure(figsize=(0.62 * cols + 1.1, 0.66 * rows + (0.3 if col_labels else 0.1)), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            img = np.transpose(images[r, c], (1, 2, 0))
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None,
                      vmin=0, vmax=1, interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if cell_labels is not None:
                ax.set_xlabel(cell_labels[r][c], fontsize=7, labelpad=1)
            if r == 0 and col_labels:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.3)
    return _save(fig, out)
