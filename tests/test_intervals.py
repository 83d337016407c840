"""Wilson intervals against scipy, and ties from the paired test on per-example outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from irob_bench.leaderboard.intervals import accuracy_interval, paired_p_value, tie_groups, wilson
from irob_bench.leaderboard.paired import RunOutcomes, aligned_pgd


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 300), (7, 300), (150, 300), (299, 300), (4888, 10000),
                                      (9980, 10000), (10000, 10000), (3, 17)])  # fmt: skip
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ours = wilson(k, n)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours.low == pytest.approx(ref.low, abs=1e-12) and ours.high == pytest.approx(ref.high, abs=1e-12)
    at_99 = binomtest(k, n).proportion_ci(confidence_level=0.99, method="wilson")
    assert wilson(k, n, 0.99).low == pytest.approx(at_99.low, abs=1e-12)


def test_wilson_control_the_normal_interval_does_not_match() -> None:
    """Control: the textbook Wald interval p +- 1.96 sqrt(p(1-p)/n) differs from scipy's Wilson (so the check bites)."""
    k, n = 7, 300
    p = k / n
    wald_low = p - 1.959964 * np.sqrt(p * (1 - p) / n)
    ref = binomtest(k, n).proportion_ci(method="wilson")
    assert abs(wald_low - ref.low) > 1e-3
    assert wilson(k, n).low == pytest.approx(ref.low, abs=1e-12)


def test_wilson_contains_the_observed_fraction_even_at_0_and_n() -> None:
    """At k = 0 and k = n the interval ends exactly at the fraction: a plot's error bars (point - low, high - point)
    are never negative. Control: the unclamped formula rounds past it for about a third of these n."""
    z = float(norm.ppf(0.975))
    past = 0
    for n in range(1, 3001):
        for k in (0, 1, n - 1, n):
            if 0 <= k <= n:
                ci = wilson(k, n)
                assert ci.low <= k / n <= ci.high, (k, n)
        assert wilson(n, n).high == 1.0 and wilson(0, n).low == 0.0
        centre, half = (1 + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(z * z / (4 * n * n))
        past += centre + half < 1.0  # the same formula at k = n, unclamped
    assert past > 500


def test_accuracy_interval_uses_the_count_behind_the_fraction() -> None:
    ci = accuracy_interval(0.4888, 10000)
    ref = binomtest(4888, 10000).proportion_ci(method="wilson")
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert ci.high - ci.low == pytest.approx(0.0196, abs=0.0005)  # about +-1 point at n = 10,000


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(5, 4)


def _pair(n: int, only_first: int, only_second: int, both: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    a[:both] = b[:both] = True
    a[both:both + only_first] = True
    b[both + only_first:both + only_first + only_second] = True
    return a, b


def test_two_runs_that_the_paired_test_cannot_separate_are_one_tie() -> None:
    # 0.4 points apart (49.6% vs 49.2% of 1,000): 10 vs 6 discordant points, p = 0.45
    a, b = _pair(1000, 10, 6, 486)
    assert paired_p_value(a, b) == pytest.approx(binomtest(10, 16, 0.5).pvalue)
    assert tie_groups([a, b]) == [0, 0]


def test_control_a_significant_difference_is_not_a_tie() -> None:
    # the same 0.4-point gap with no discordance on the other side: 40 vs 0 -> p ~ 1e-12
    a, b = _pair(1000, 40, 0, 450)
    assert paired_p_value(a, b) < 1e-6
    assert tie_groups([a, b]) == [0, 1]


def test_ties_do_not_chain_and_missing_outcomes_never_tie() -> None:
    n = 2000
    rng = np.random.default_rng(0)
    base = rng.random(n) < 0.5
    step1, step2 = base.copy(), base.copy()
    step1[np.flatnonzero(base)[:5]] = False  # 5 vs 0: p = 0.0625, a tie with the leader
    step2[np.flatnonzero(base)[:12]] = False  # 12 vs 0 from the leader (but 7 vs 0 from row 2: p = 0.016)
    assert tie_groups([base, step1, step2]) == [0, 0, 2]
    assert tie_groups([base, None, base.copy()]) == [0, 1, 2]


def test_alignment_pairs_runs_on_their_common_points_only() -> None:
    first = RunOutcomes(indices=np.array([3, 1, 2]), eps=(1.0,), clean=np.ones(3, bool),
                        pgd=np.array([[True], [False], [True]]))  # fmt: skip
    second = RunOutcomes(indices=np.array([1, 2, 9]), eps=(1.0, 2.0), clean=np.ones(3, bool),
                         pgd=np.array([[True, False], [False, False], [True, True]]))  # fmt: skip
    got = aligned_pgd([10, 20, 30], {10: first, 20: second}, 1.0)
    assert got[0].tolist() == [False, True] and got[1].tolist() == [True, False] and got[2] is None
    assert aligned_pgd([10, 20], {10: first, 20: second}, 2.0) == [None, None]  # only one run has eps 2
