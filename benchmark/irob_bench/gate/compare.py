"""Metric-by-metric comparison of two runs on the same examples: drop in points, discordant pairs, p-value, verdict.

A metric regresses when its drop is larger than the tolerance (percentage points) AND the exact
one-sided McNemar test (below) rejects "no change" at level alpha. Each metric is
tested at alpha on its own: the robust accuracies at different eps are nested and strongly correlated,
so a Bonferroni correction would be far too conservative; the tolerance guards against tiny drops.

The paired test behind the gate: an exact one-sided McNemar test on per-example outcomes.

Baseline and new model are scored on the same examples, so each example is a pair (baseline right?,
new right?). Only the discordant pairs carry information about a change: `lost` (right before, wrong
now) and `gained` (wrong before, right now). If the two models were equally accurate on the
distribution, each discordant pair would be a fair coin, so `lost ~ Binomial(lost + gained, 1/2)`.
The gate asks one question only, "did it get WORSE?", so the alternative is one-sided (lost is too
large): an improvement can never fail a build, and at the same alpha a one-sided test detects a real
regression with more power than a two-sided one (it spends all of alpha on the direction that matters).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy.stats import binomtest

from irob_bench.common import FrozenModel
from irob_bench.gate.outcomes import PerExample

Kind = Literal["clean", "pgd", "in_distribution", "certified"]
Verdict = Literal["pass", "regression"]
KIND_LABELS: dict[str, str] = {
    "clean": "clean accuracy",
    "pgd": "PGD robust accuracy",
    "in_distribution": "in-distribution robust accuracy",
    "certified": "certified accuracy",
}
SHORT_NAMES: dict[str, str] = {"pgd": "pgd", "in_distribution": "in-dist", "certified": "certified"}


def discordant(baseline: np.ndarray, new: np.ndarray) -> tuple[int, int]:
    """(lost, gained): examples right in the baseline but wrong now, and the reverse."""
    baseline, new = np.asarray(baseline, dtype=bool), np.asarray(new, dtype=bool)
    if baseline.shape != new.shape:
        raise ValueError(f"paired outcomes must have the same shape, got {baseline.shape} and {new.shape}")
    return int((baseline & ~new).sum()), int((~baseline & new).sum())


def mcnemar_worse(lost: int, gained: int) -> float:
    """Exact one-sided McNemar p-value for "the new model is worse": P(X >= lost), X ~ Binomial(lost + gained, 1/2)."""
    if lost < 0 or gained < 0:
        raise ValueError(f"counts must be non-negative, got lost={lost}, gained={gained}")
    if lost + gained == 0:
        return 1.0
    return float(binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue)


class MetricComparison(FrozenModel):
    """One metric of the baseline against the new run on the same examples; accuracies are fractions."""

    name: str = Field(description="short id, e.g. 'clean', 'pgd@eps=1', 'in-dist@eps=2'")
    kind: Kind
    eps: float | None = None
    n: int = Field(description="paired examples compared")
    baseline: float
    new: float
    drop_pp: float = Field(description="baseline - new, in percentage points (negative: improved)")
    lost: int = Field(description="examples right in the baseline and wrong now")
    gained: int = Field(description="examples wrong in the baseline and right now")
    p_value: float = Field(description="exact one-sided McNemar p-value for 'the new model is worse'")
    verdict: Verdict
    reason: str

    @property
    def label(self) -> str:
        """Readable metric name, e.g. 'PGD robust accuracy at eps 1'."""
        return KIND_LABELS[self.kind] + ("" if self.eps is None else f" at eps {self.eps:g}")


def metric_name(kind: Kind, eps: float | None) -> str:
    """The short id of a metric: 'clean', 'pgd@eps=1', 'in-dist@eps=1', 'certified@eps=1'."""
    if eps is None:
        return kind
    return f"{SHORT_NAMES[kind]}@eps={eps:g}"


def compare_one(kind: Kind, eps: float | None, baseline: np.ndarray, new: np.ndarray, tolerance_pp: float, alpha: float) -> MetricComparison:
    """Compare one metric's paired per-example outcomes (bool arrays over the same examples)."""
    n = len(baseline)
    lost, gained = discordant(baseline, new)
    drop = 100.0 * (lost - gained) / n
    p = mcnemar_worse(lost, gained)
    regressed = drop > tolerance_pp and p < alpha
    if drop <= 0:
        reason = "no drop"
    elif drop <= tolerance_pp:
        reason = f"drop {drop:.2f} pp within tolerance {tolerance_pp:g} pp"
    elif not regressed:
        reason = f"drop {drop:.2f} pp not significant (p = {p:.3g} >= {alpha:g})"
    else:
        reason = f"drop {drop:.2f} pp > {tolerance_pp:g} pp and significant (p = {p:.3g} < {alpha:g})"
    return MetricComparison(
        name=metric_name(kind, eps),
        kind=kind,
        eps=eps,
        n=n,
        baseline=float(np.mean(baseline)),
        new=float(np.mean(new)),
        drop_pp=drop,
        lost=lost,
        gained=gained,
        p_value=p,
        verdict="regression" if regressed else "pass",
        reason=reason,
    )


def compare_metrics(baseline: PerExample, new: PerExample, tolerance_pp: float, alpha: float) -> list[MetricComparison]:
    """Every metric the two aligned runs share: clean, PGD at each eps, and in-distribution and certified accuracy at
    each eps where both runs have them (a stored certificate the model does not reproduce counts as lost)."""
    if not np.array_equal(baseline.indices, new.indices) or baseline.eps != new.eps:
        raise ValueError("compare_metrics needs outcomes aligned on the same examples and eps")
    if len(new.indices) == 0:
        raise ValueError("no examples to compare")
    out = [compare_one("clean", None, baseline.clean, new.clean, tolerance_pp, alpha)]
    for k, eps in enumerate(new.eps):
        out.append(compare_one("pgd", eps, baseline.pgd[:, k], new.pgd[:, k], tolerance_pp, alpha))
    for kind in ("in_distribution", "certified"):
        before, after = getattr(baseline, kind), getattr(new, kind)
        if before is not None and after is not None:
            out.extend(compare_one(kind, eps, before[:, k], after[:, k], tolerance_pp, alpha) for k, eps in enumerate(new.eps))
    return out
