"""The reference results obey the theory: robust accuracy <= its classifier ceiling, in-distribution >= PGD."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from irob_bench import datasets
from irob_bench.metrics import ceiling_violations
from irob_bench.results import EvaluationResult

RUNS = sorted((Path(__file__).resolve().parents[1] / "leaderboard" / "runs").glob("*.json"))


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_reference_run_respects_its_ceilings(path):
    result = EvaluationResult.model_validate_json(path.read_text())
    n = result.settings.n_examples
    assert result.dataset.lipschitz_constants == datasets.load_card(result.dataset.name).lipschitz.constants
    for m in result.metrics.per_eps:
        assert m.ceiling_classifier is not None, m.ceiling_reasons
        slack = 3 * math.sqrt(0.25 / n)
        assert m.robust_accuracy_pgd <= m.ceiling_classifier + slack
        assert m.robust_accuracy_in_distribution <= m.ceiling_classifier + slack
        assert m.robust_accuracy_in_distribution >= m.robust_accuracy_pgd
    assert ceiling_violations(result.metrics, n) == []


def test_there_are_reference_runs():
    assert {p.stem for p in RUNS} >= {"mnist-standard", "mnist-pgd", "mnist-trades"}


def test_a_violation_is_flagged():
    """Control: the check can fail — push a measured accuracy far above its ceiling."""
    result = EvaluationResult.model_validate_json(RUNS[0].read_text())
    first = result.metrics.per_eps[0]
    broken = result.metrics.model_copy(
        update={"per_eps": [first.model_copy(update={"ceiling_classifier": first.robust_accuracy_pgd - 0.2})]}
    )
    flags = ceiling_violations(broken, result.settings.n_examples)
    assert flags and flags[0].name == "above ceiling" and flags[0].eps == first.eps
