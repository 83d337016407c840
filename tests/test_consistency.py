"""The reference results obey the theory: robust accuracy <= its classifier ceiling, in-distribution >= PGD."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from irob_bench import datasets
from irob_bench.bounds import dataset_ceiling_per_class
from irob_bench.datasets.card import DatasetCard
from irob_bench.leaderboard.paired import RunOutcomes, load_run_outcomes
from irob_bench.metrics import ceiling_violations, with_card_ceilings
from irob_bench.results import EvaluationResult

REPO = Path(__file__).resolve().parents[1]
RUNS = sorted((REPO / "leaderboard" / "runs").glob("*.json"))


def load(path: Path) -> tuple[EvaluationResult, DatasetCard]:
    result = EvaluationResult.model_validate_json(path.read_text())
    return result, datasets.load_card(result.dataset.name)


BOUNDED = [p for p in RUNS if load(p)[1].lipschitz is not None]
UNBOUNDED = [p for p in RUNS if p not in BOUNDED]


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_reference_run_has_the_ceilings_of_the_current_card(path):
    """Stored runs keep the version they were measured on; their ceilings are re-derived from the current card."""
    result, card = load(path)
    assert with_card_ceilings(result, card) == result
    assert tuple(map(int, result.dataset.version.split("."))) <= tuple(map(int, card.version.split(".")))


@pytest.mark.parametrize("path", UNBOUNDED, ids=[p.stem for p in UNBOUNDED])
def test_reference_run_without_constants_says_why(path):
    result, card = load(path)
    assert result.dataset.lipschitz_constants is None
    for m in result.metrics.per_eps:
        assert m.ceiling_classifier is m.ceiling_dataset_per_class is m.gap is None
        assert m.ceiling_reasons == {"all": card.notes["ceiling"]}


@pytest.mark.parametrize("path", BOUNDED, ids=[p.stem for p in BOUNDED])
def test_reference_run_respects_its_ceilings(path):
    result, card = load(path)
    n = result.settings.n_examples
    assert result.dataset.lipschitz_constants == card.lipschitz.constants
    assert result.dataset.lipschitz_delta == card.lipschitz.holds_at
    for m in result.metrics.per_eps:
        assert m.ceiling_classifier is not None, m.ceiling_reasons
        slack = 3 * math.sqrt(0.25 / n)
        assert m.robust_accuracy_pgd <= m.ceiling_classifier + slack
        assert m.robust_accuracy_in_distribution <= m.ceiling_classifier + slack
        assert m.robust_accuracy_in_distribution >= m.robust_accuracy_pgd
    assert ceiling_violations(result.metrics, n) == []


MNIST = [p for p in RUNS if p.stem.startswith("mnist-")]


@pytest.mark.parametrize("path", MNIST, ids=[p.stem for p in MNIST])
def test_mnist_rows_per_class_form_is_at_the_reference_alpha_and_below_100(path):
    result, card = load(path)
    lip = card.lipschitz
    for m in result.metrics.per_eps:
        bound = dataset_ceiling_per_class(m.eps, lip.constants, card.reference_alpha, card.priors, lip.holds_at, lip.radius)
        assert m.ceiling_dataset_per_class == bound.value < 1.0


def test_there_are_reference_runs():
    assert {p.stem for p in RUNS} >= {"mnist-standard", "mnist-pgd", "mnist-trades"}


def test_a_violation_is_flagged():
    """Control: the check can fail — push a measured accuracy far above its ceiling."""
    result = EvaluationResult.model_validate_json(BOUNDED[0].read_text())
    first = result.metrics.per_eps[0]
    broken = result.metrics.model_copy(
        update={"per_eps": [first.model_copy(update={"ceiling_classifier": first.robust_accuracy_pgd - 0.2})]}
    )
    flags = ceiling_violations(broken, result.settings.n_examples)
    assert flags and flags[0].name == "above ceiling" and flags[0].eps == first.eps


def committed_outcomes(path: Path) -> RunOutcomes | None:
    """The outcomes a committed row names, read as a clean clone reads them: by a path relative to the repository
    root (a path absolute on the machine that made the row reads there only), and checked to be this run's."""
    result, _ = load(path)
    if not result.outcomes_file or Path(result.outcomes_file).is_absolute():
        return None
    return load_run_outcomes(result, root=REPO)


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_reference_run_names_its_outcomes_relative_to_the_repository(path):
    assert committed_outcomes(path) is not None


def test_control_a_row_naming_its_outcomes_by_an_absolute_path_is_refused(tmp_path):
    result, _ = load(RUNS[0])
    moved = result.model_copy(update={"outcomes_file": str((REPO / result.outcomes_file).resolve())})  # the file exists
    row = tmp_path / RUNS[0].name
    row.write_text(moved.model_dump_json())
    assert committed_outcomes(row) is None
