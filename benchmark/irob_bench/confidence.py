"""The binomial arithmetic behind a stated confidence over S random anchors (docs/science.md §3): which order statistic
v_(k) of S values bounds their (1 - delta) quantile at confidence beta, and what K classes give together. Pure
arithmetic, shared by the estimator (lipschitz/stats.py) and the cards that record its result (datasets/card.py).

With S anchors, B = #{s : v_s < q_{1-delta}} is Binomial(S, 1 - delta) (at most that, for a distribution with
atoms), and v_(k) >= q_{1-delta} exactly when B < k: so v_(k) bounds the quantile at confidence P(B <= k - 1).
"""

from __future__ import annotations

import math

from scipy.special import betainc, betaincinv  # not scipy.stats: reading a card would import it (0.4 s more)


def coverage(samples: int, rank: int, delta: float) -> float:
    """P(q_{1-delta} <= v_(k)) = P(B <= k - 1), B ~ Binomial(S, 1 - delta): the confidence of v_(k); the binomial
    cdf as the regularised incomplete beta function I_delta(S - k + 1, k)."""
    return float(betainc(samples - rank + 1, rank, delta))


def smallest_rank(samples: int, delta: float, beta: float) -> int | None:
    """The smallest k with coverage(S, k, delta) >= beta, or None when even the maximum (k = S) falls short."""
    if coverage(samples, samples, delta) < beta:
        return None
    low, high = 1, samples  # coverage grows with k: bisect for the first k that reaches beta
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if coverage(samples, middle, delta) >= beta else (middle + 1, high)
    return low


def supported_delta(samples: int, beta: float, rank: int | None = None) -> float:
    """delta': the smallest delta whose q_{1-delta} v_(k) bounds at confidence beta. For the maximum (k = S, the
    default) 1 - (1 - beta)^(1/S); for k < S the solution of coverage(S, k, delta) = beta, since P(B <= k - 1) for
    B ~ Binomial(S, 1 - delta) is the regularised incomplete beta function I_delta(S - k + 1, k)."""
    if rank is None or rank == samples:
        return float(-math.expm1(math.log1p(-beta) / samples))
    return float(betaincinv(samples - rank + 1, rank, beta))


def anchors_needed(delta: float, beta: float) -> int:
    """The least S for which the maximum bounds q_{1-delta} at confidence beta: ln(1 - beta) / ln(1 - delta)."""
    return math.ceil(math.log1p(-beta) / math.log1p(-delta))


def class_level(beta: float, classes: int) -> float:
    """The confidence each of `classes` independent per-class bounds needs for all of them to hold at beta."""
    return beta ** (1.0 / classes)


def joint_statement(samples: int, rank: int, delta: float, beta: float, classes: int) -> tuple[bool, float]:
    """(established, delta') of K per-class v_(k) taken together at confidence beta: whether they bound every class's
    q_{1-delta}, and the smallest delta these v_(k) support (what a card states, whatever rule picked k)."""
    level = class_level(beta, classes)
    return coverage(samples, rank, delta) >= level, supported_delta(samples, level, rank)
