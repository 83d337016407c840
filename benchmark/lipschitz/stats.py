"""The reported statistic of the per-anchor slopes: their (1 - delta) percentile and its bootstrap interval."""

from __future__ import annotations

import numpy as np
import torch


def upper_percentile(values: torch.Tensor | np.ndarray, delta: float, axis: int = -1) -> np.ndarray:
    """The (1 - delta) percentile with linear interpolation (Hyndman-Fan type 7, numpy's default).

    With the S values sorted, v_(0) <= ... <= v_(S-1), and h = (S - 1)(1 - delta):
    P = v_(floor h) + (h - floor h) * (v_(floor h + 1) - v_(floor h)). S = 1 gives v_(0); small delta gives the max.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.shape[axis] == 0:
        raise ValueError("no values to take a percentile of")
    return np.quantile(array, 1.0 - delta, axis=axis, method="linear")


def bootstrap_ci(
    values: torch.Tensor | np.ndarray, delta: float, confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of upper_percentile(values, delta): resample the S values with replacement.

    A resample cannot exceed the largest value seen, so for small delta the upper end is at most the sample max.
    """
    array = np.asarray(values, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(seed))
    replicates = upper_percentile(array[rng.integers(0, len(array), size=(resamples, len(array)))], delta, axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1.0 - tail], method="linear")
    return float(low), float(high)
