"""The reported Lipschitz statistic (docs/science.md §3): an order statistic that upper-bounds the 1 - delta quantile of
the per-anchor slopes at confidence beta, checked by repeated draws from distributions with a known quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from irob_bench.confidence import anchors_needed, class_level, coverage, joint_statement, smallest_rank, supported_delta
from irob_bench.lipschitz.stats import order_statistic, upper_bound

DELTA, BETA, REPEATS = 0.001, 0.95, 4000
EXPONENTIAL_QUANTILE = -math.log(DELTA)  # q_{1-delta} of Exp(1)


def covered(samples: int, statistic_of, quantile: float, draw, seed: int = 0) -> float:
    """Fraction of REPEATS independent draws of S values whose statistic is >= the true quantile."""
    rng = np.random.Generator(np.random.PCG64(seed))
    values = draw(rng, (REPEATS, samples))
    return float(np.mean([statistic_of(row) >= quantile for row in values]))


def exponential(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.exponential(size=shape)


def binomial_slack(p: float) -> float:
    """Three standard errors of a fraction estimated from REPEATS draws."""
    return 3 * math.sqrt(p * (1 - p) / REPEATS)


def test_anchor_count_for_the_maximum_matches_the_spec():
    assert anchors_needed(DELTA, BETA) == 2995  # ln(0.05) / ln(0.999) = 2994.2
    assert coverage(2995, 2995, DELTA) >= BETA > coverage(2994, 2994, DELTA)
    assert coverage(300, 300, DELTA) == pytest.approx(1 - 0.999**300)  # 0.26: the max of 300 is below q w.p. 0.74
    assert supported_delta(300, BETA) == pytest.approx(1 - 0.05 ** (1 / 300))


@pytest.mark.parametrize("samples, delta", [(3000, 0.001), (5000, 0.001), (400, 0.05), (60, 0.1)])
def test_smallest_rank_is_the_least_k_with_coverage_beta(samples, delta):
    k = smallest_rank(samples, delta, BETA)
    direct = next(k for k in range(1, samples + 1) if binom.cdf(k - 1, samples, 1 - delta) >= BETA)
    assert k == direct and coverage(samples, k, delta) >= BETA > coverage(samples, k - 1, delta)


@pytest.mark.parametrize("samples", [1, 2, 60, 3000, 10000])
@pytest.mark.parametrize("delta", [1e-4, 0.001, 0.05, 0.5])
def test_coverage_is_the_binomial_cdf(samples, delta):
    """coverage() computes P(B <= k - 1) through the incomplete beta function (reading a card must not import
    scipy.stats); scipy.stats' binomial is the independent reference. Control: the neighbouring rank differs wherever
    B takes the value k with a probability the tolerance can see."""
    for rank in sorted({1, max(samples // 2, 1), max(samples - 1, 1), samples}):
        assert coverage(samples, rank, delta) == pytest.approx(binom.cdf(rank - 1, samples, 1 - delta), abs=1e-12)
        if rank < samples and binom.pmf(rank, samples, 1 - delta) > 1e-9:
            assert coverage(samples, rank + 1, delta) != pytest.approx(binom.cdf(rank - 1, samples, 1 - delta), abs=1e-12)


def test_order_statistic_covers_the_quantile_in_at_least_beta_of_draws():
    statistic = order_statistic(3000, DELTA, BETA)
    assert statistic.established and statistic.rank == 3000 and statistic.holds_at == DELTA
    hit = covered(3000, lambda row: upper_bound(row, statistic), EXPONENTIAL_QUANTILE, exponential)
    expected = coverage(3000, statistic.rank, DELTA)
    assert expected >= BETA
    assert hit >= BETA - binomial_slack(BETA) and abs(hit - expected) <= binomial_slack(expected)


def test_a_lower_rank_covers_a_larger_delta_on_a_heavy_tail():
    """S = 5,000 at delta = 0.01 uses an interior order statistic, not the maximum; Pareto(1) has q = 1 / delta."""
    statistic = order_statistic(5000, 0.01, BETA)
    assert statistic.established and statistic.rank < 5000
    pareto = lambda rng, shape: 1.0 / rng.uniform(size=shape)  # noqa: E731  P(X > x) = 1 / x
    hit = covered(5000, lambda row: upper_bound(row, statistic), 1 / 0.01, pareto, seed=1)
    assert hit >= BETA - binomial_slack(BETA)


def test_control_the_type7_percentile_of_old_does_not_cover():
    """Control: np.quantile(v, 1 - delta), the old statistic, covers the 0.999 quantile far less often than beta."""
    old = lambda row: np.quantile(row, 1 - DELTA)  # noqa: E731
    for samples in (300, 1000, 3000):
        hit = covered(samples, old, EXPONENTIAL_QUANTILE, exponential, seed=2)
        assert hit < 0.75, (samples, hit)


def test_too_few_anchors_fall_back_to_the_maximum_at_delta_prime_which_covers():
    statistic = order_statistic(300, DELTA, BETA)
    assert not statistic.established and statistic.rank == 300
    assert statistic.holds_at == statistic.delta_prime == pytest.approx(0.00994, abs=1e-5)
    assert "needs S >= 2,995" in statistic.reason and "0.00994" in statistic.reason
    quantile = -math.log(statistic.delta_prime)
    hit = covered(300, lambda row: upper_bound(row, statistic), quantile, exponential, seed=3)
    assert hit >= BETA - binomial_slack(BETA)
    assert covered(300, lambda row: upper_bound(row, statistic), EXPONENTIAL_QUANTILE, exponential, seed=3) < 0.5


def test_upper_bound_picks_the_kth_smallest_and_checks_the_count():
    statistic = order_statistic(5000, 0.01, BETA)
    values = np.random.Generator(np.random.PCG64(4)).permutation(np.arange(5000.0))
    assert upper_bound(values, statistic) == statistic.rank - 1
    with pytest.raises(ValueError, match="S = 5000"):
        upper_bound(values[:10], statistic)


def test_k_classes_hold_together_at_beta_and_one_class_at_a_time_does_not_control():
    """Thm 4.3 uses all K constants at once. Ten classes' maxima of S = 300 (independent anchors), at the joint delta',
    all cover their quantiles in >= beta of draws; at the per-class delta' (each at beta alone) only in ~beta^10."""
    classes, samples = 10, 300
    joint = order_statistic(samples, DELTA, BETA, classes=classes)
    alone = order_statistic(samples, DELTA, BETA)
    assert joint.delta_prime == pytest.approx(1 - (1 - BETA ** (1 / classes)) ** (1 / samples))
    assert "jointly for 10 classes" in joint.reason and "needs S >= 5,273" in joint.reason
    rng = np.random.Generator(np.random.PCG64(5))
    draws = rng.exponential(size=(REPEATS, classes, samples)).max(axis=2)

    def all_covered(delta_prime: float) -> float:
        return float(np.mean((draws >= -math.log(delta_prime)).all(axis=1)))

    assert all_covered(joint.holds_at) >= BETA - binomial_slack(BETA)
    assert all_covered(alone.holds_at) == pytest.approx(BETA**classes, abs=4 * binomial_slack(BETA**classes))


@pytest.mark.parametrize(("samples", "rank"), [(10_000, 9_996), (3_000, 2_990), (100, 99)])
def test_a_card_with_rank_below_s_states_the_delta_its_own_order_statistic_supports(samples, rank):
    """Found by an audit: delta' was the maximum's, whatever k, so a card with k < S not established jointly stated
    a delta its v_(k) does not support (S = 10,000, k = 9,996: 0.000527 at coverage 0.61 of the 0.995 needed)."""
    level = class_level(0.95, 10)
    established, delta_prime = joint_statement(samples, rank, 1e-6, 0.95, 10)
    assert not established
    assert coverage(samples, rank, delta_prime) == pytest.approx(level, abs=1e-9)
    assert coverage(samples, rank, delta_prime * 0.99) < level  # the smallest such delta, not a loose one
    maximum = supported_delta(samples, level)
    assert coverage(samples, rank, maximum) < level - 0.02  # control: the maximum's delta' does not hold for v_(k)
    assert joint_statement(samples, samples, 1e-6, 0.95, 10)[1] == maximum  # k = S: the closed form, unchanged
