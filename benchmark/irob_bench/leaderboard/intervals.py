"""Uncertainty on the leaderboard: Wilson score intervals for accuracies, and ties between ranked rows.

An accuracy measured on n test points is a binomial proportion: its Wilson 95% interval is what the tables print.
Two rows are a tie when the paired test on their stored per-example outcomes (the same test points) cannot tell
them apart: a two-sided exact McNemar test (the two-sided form of the gate's one-sided test, gate/compare.py),
p >= alpha. Tie groups are formed down the ranking: a row joins the group above if it is not significantly
different from that group's FIRST row, so ties never chain across a whole table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

TIE_ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A fraction's two-sided confidence interval [low, high] (fractions in [0, 1])."""

    low: float
    high: float


def successes(fraction: float, n: int) -> int:
    """The count behind a stored accuracy: fraction * n rounded (accuracies are stored as k / n)."""
    return int(round(fraction * n))


def wilson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of k successes in n trials (scipy's binomtest(...).proportion_ci(method="wilson")).
    It contains k / n, as the formula does and its rounding need not (at k = n, centre + half can be 1 - 1e-16)."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    z = float(norm.ppf(0.5 + confidence / 2))
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def accuracy_interval(fraction: float, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson interval of an accuracy measured on n points."""
    return wilson(successes(fraction, n), n, confidence)


def paired_p_value(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for "the two models are equally accurate", from paired bool outcomes."""
    first, second = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"paired outcomes must have the same shape, got {first.shape} and {second.shape}")
    only_first, only_second = int((first & ~second).sum()), int((~first & second).sum())
    if only_first + only_second == 0:
        return 1.0
    return float(binomtest(only_first, only_first + only_second, 0.5).pvalue)


def tie_groups(outcomes: Sequence[np.ndarray | None], alpha: float = TIE_ALPHA) -> list[int]:
    """For rows in ranked order, each row's group: the index of the first row of its tie group.

    `outcomes[i]` is row i's per-example outcome vector (aligned on the same test points as every other non-None
    entry), or None when it has none: such a row is never tied (nothing to pair).
    """
    groups: list[int] = []
    for i, mine in enumerate(outcomes):
        leader = groups[i - 1] if i else None
        theirs = None if leader is None else outcomes[leader]
        tied = mine is not None and theirs is not None and paired_p_value(theirs, mine) >= alpha
        groups.append(leader if tied else i)  # type: ignore[arg-type]
    return groups
