"""The paired test behind the gate: an exact one-sided McNemar test on per-example outcomes.

Baseline and new model are scored on the same examples, so each example is a pair (baseline right?,
new right?). Only the discordant pairs carry information about a change: `lost` (right before, wrong
now) and `gained` (wrong before, right now). If the two models were equally accurate on the
distribution, each discordant pair would be a fair coin, so `lost ~ Binomial(lost + gained, 1/2)`.
The gate asks one question only, "did it get WORSE?", so the alternative is one-sided (lost is too
large): an improvement can never fail a build, and at the same alpha a one-sided test detects a real
regression with more power than a two-sided one (it spends all of alpha on the direction that matters).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


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
