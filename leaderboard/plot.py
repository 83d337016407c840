"""Robust accuracy against eps for stored runs, beside each run's ceiling curve (PNG via matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from irob_bench.artifacts import atomic_path  # noqa: E402
from irob_bench.bounds import classifier_ceiling  # noqa: E402
from irob_bench.datasets import load_card  # noqa: E402
from irob_bench.errors import IrobError  # noqa: E402
from irob_bench.results import EvaluationResult  # noqa: E402


def ceiling_curve(result: EvaluationResult, eps_grid: list[float]) -> list[float | None]:
    """The classifier-specific ceiling (Thm 4.3) of a run at every eps of the grid (None where not established)."""
    data = result.dataset
    if data.lipschitz_constants is None:
        return [None] * len(eps_grid)
    priors = load_card(data.name).priors
    risks = [1.0 - a for a in result.metrics.per_class_accuracy]
    return [
        classifier_ceiling(e, data.lipschitz_constants, risks, priors, data.lipschitz_delta, data.lipschitz_radius).value
        for e in eps_grid
    ]


def plot_runs(results: list[EvaluationResult], out: str | Path, title: str | None = None) -> Path:
    """One panel: per run, PGD (solid) and in-distribution (dashed) robust accuracy curves and its ceiling (dotted)."""
    runs = [r for r in results if r.metrics.curves is not None]
    if not runs:
        raise IrobError("no run with robustness curves to plot")
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, result in enumerate(runs):
        colour, curves, name = colours[k % len(colours)], result.metrics.curves, result.submission.metadata.name
        ax.plot(curves.eps, curves.unconstrained, color=colour, lw=2, label=f"{name}: PGD / min-norm")
        if curves.in_distribution is not None:
            ax.plot(curves.eps, curves.in_distribution, color=colour, lw=1.5, ls="--", label=f"{name}: in-distribution")
        ceiling = ceiling_curve(result, curves.eps)
        points = [(e, c) for e, c in zip(curves.eps, ceiling) if c is not None]
        if points:
            ax.plot(*zip(*points), color=colour, lw=1.2, ls=":", label=f"{name}: ceiling (Thm 4.3)")
        measured = [(m.eps, m.robust_accuracy_pgd) for m in result.metrics.per_eps]
        ax.scatter(*zip(*measured), color=colour, s=18, zorder=3)
    ax.set_xlabel("eps (L2, images in [0, 1])")
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{runs[0].dataset.name}: robust accuracy vs eps, with ceilings")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
