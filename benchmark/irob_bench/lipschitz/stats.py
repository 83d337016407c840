"""The reported statistic of the per-anchor slopes: an order statistic that upper-bounds their (1 - delta) quantile
with a stated confidence beta over the draw of the anchors (docs/science.md §3; the binomial arithmetic is in
irob_bench/confidence.py): the smallest k with P(B <= k - 1) >= beta gives the tightest bound.

A ceiling built on K per-class constants (Thm 4.3) needs all K at once. The classes' anchors are independent draws,
so each class is bounded at level beta^(1/K) and all K then hold together with probability >= beta (Sidak); with
beta at every class alone, ten classes at S = 3,000 would hold together only with probability 0.95^10 = 0.60.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from irob_bench.common import FrozenModel
from irob_bench.confidence import anchors_needed, class_level, smallest_rank, supported_delta

DEFAULT_BETA = 0.95


class OrderStatistic(FrozenModel):
    """Which order statistic v_(k) of S per-anchor values is reported, and the delta it bounds at confidence beta.

    `established`: v_(k) bounds q_{1-delta} for the requested delta. Otherwise S is too small for it and k = S (the
    maximum), which bounds q_{1-delta'} with delta' = 1 - (1 - beta)^(1/S) > delta: the bound then `holds_at` delta'.
    """

    samples: int = Field(ge=1, description="S, per-anchor values per class")
    rank: int = Field(ge=1, description="k, 1-based: v_(S) is the maximum")
    beta: float = Field(gt=0, lt=1, description="confidence over the draw of the anchors, jointly for all classes")
    classes: int = Field(1, ge=1, description="K, the per-class constants that must hold at once")
    delta: float = Field(gt=0, lt=1, description="the requested latent failure mass")
    delta_prime: float = Field(gt=0, le=1, description="the smallest delta that S anchors support (with k = S)")
    established: bool

    @property
    def holds_at(self) -> float:
        """The delta of the guarantee: the requested one if S supports it, else delta'."""
        return self.delta if self.established else self.delta_prime

    @property
    def reason(self) -> str | None:
        """Why the requested delta is not supported, or None."""
        if self.established:
            return None
        jointly = f" jointly for {self.classes} classes" if self.classes > 1 else ""
        return (
            f"S = {self.samples:,} anchors bound the 1 - delta quantile at confidence {self.beta:g}{jointly} only for "
            f"delta >= {self.delta_prime:.3g}; delta = {self.delta:g} needs S >= "
            f"{anchors_needed(self.delta, class_level(self.beta, self.classes)):,}"
        )


def order_statistic(samples: int, delta: float, beta: float = DEFAULT_BETA, classes: int = 1) -> OrderStatistic:
    """The tightest v_(k) that bounds q_{1-delta} for all `classes` at once at confidence beta; the maximum at delta'
    when S is too small."""
    level = class_level(beta, classes)
    rank = smallest_rank(samples, delta, level)
    return OrderStatistic(
        samples=samples,
        rank=samples if rank is None else rank,
        beta=beta,
        classes=classes,
        delta=delta,
        delta_prime=supported_delta(samples, level),
        established=rank is not None,
    )


def upper_bound(values: torch.Tensor | np.ndarray, statistic: OrderStatistic) -> float:
    """v_(k) of `values` (which must be the statistic's S values): the upper confidence bound of their quantile."""
    array = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if len(array) != statistic.samples:
        raise ValueError(f"the statistic is for S = {statistic.samples} values, got {len(array)}")
    return float(array[statistic.rank - 1])
