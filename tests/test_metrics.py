"""Ceilings placed beside a result (metrics.py): which alpha and which delta each form uses, and re-bounding stored runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irob_bench import datasets
from irob_bench.bounds import classifier_ceiling, dataset_ceiling_per_class
from irob_bench.errors import IrobError
from irob_bench.metrics import VIOLATION, compute_metrics, rebounded, with_card_ceilings
from irob_bench.results import EvaluationResult, SanityFlag

RUNS = Path(__file__).resolve().parents[1] / "leaderboard" / "runs"


def near_perfect(card, per_class: int = 200):
    """Labels and correctness of a classifier perfect on class 0 and wrong on 1 of `per_class` in every other class."""
    labels = np.repeat(np.arange(card.num_classes), per_class)
    correct = np.ones(len(labels), bool)
    correct[per_class::per_class] = False
    return labels, correct


def metrics_at(card, eps: float):
    labels, correct = near_perfect(card)
    return compute_metrics(card, labels, correct, [eps], np.zeros((len(labels), 1), bool), None, None).per_eps[0]


def test_the_per_class_form_is_at_the_cards_reference_alpha_not_the_smallest_class_risk():
    card = datasets.load_card("mnist")
    lip = card.lipschitz
    m = metrics_at(card, 1.0)
    expected = dataset_ceiling_per_class(1.0, lip.constants, card.reference_alpha, card.priors, lip.holds_at, lip.radius)
    assert m.ceiling_dataset_per_class == expected.value < 1.0
    smallest = dataset_ceiling_per_class(1.0, lip.constants, 0.0, card.priors, lip.holds_at, lip.radius)
    assert smallest.value == 1.0  # control: the old alpha (class 0 is perfect, risk 0) prints a vacuous 100%


def test_a_class_absent_from_the_subset_does_not_lower_the_ceilings():
    """A 20-point subset can miss a class; its unknown risk must not count as 1 (which put the ceiling below the
    measured accuracy), but as 0, where the bound is largest and so holds whatever that class's true risk."""
    card = datasets.load_card("mnist")
    lip = card.lipschitz
    labels, correct = near_perfect(card)
    present = labels != 3
    robust = np.ones((int(present.sum()), 1), bool)
    m = compute_metrics(card, labels[present], correct[present], [1.0], robust, robust, None)
    assert m.per_class_count[3] == 0
    risks = [0.0 if y == 3 else 1 / 200 for y in range(10)]
    risks[0] = 0.0
    expected = classifier_ceiling(1.0, lip.constants, risks, card.priors, lip.holds_at, lip.radius).value
    assert m.per_eps[0].ceiling_classifier == pytest.approx(expected)
    as_wrong = risks.copy()
    as_wrong[3] = 1.0  # control: the old reading (absent = never right) costs the ceiling class 3's whole prior
    lowered = classifier_ceiling(1.0, lip.constants, as_wrong, card.priors, lip.holds_at, lip.radius).value
    assert lowered < m.per_eps[0].ceiling_classifier - 0.9 * card.priors[3]


def with_anchors(card, samples: int):
    """The card with every Lipschitz estimate restated as made from `samples` anchors (constants unchanged; what S
    supports is derived again on validation)."""
    lip = card.lipschitz
    estimates = [type(e).model_validate({**e.model_dump(), "samples": samples, "rank": samples}) for e in lip.estimates]
    return card.model_copy(update={"lipschitz": lip.model_copy(update={"estimates": estimates})})


def test_ceilings_use_delta_prime_when_the_card_anchors_support_only_that():
    """All K per-class constants must hold at once: ten classes need S >= 5,273 maxima for delta = 0.001 at 0.95
    (each class at 0.95^(1/10)); S = 3,000 supports 0.00176, S = 300 only 0.0174."""
    card = datasets.load_card("mnist")
    lip = card.lipschitz
    labels, correct = near_perfect(card)
    correct[::10] = False  # 10% risk in every class: ceilings far from the clip at 1
    risks = [1 - a for a in compute_metrics(card, labels, correct, [], np.zeros((len(labels), 0), bool), None, None).per_class_accuracy]
    for samples, delta in ((5273, 0.001), (3000, 0.0017569), (300, 0.017431)):
        variant = with_anchors(card, samples)
        assert variant.lipschitz.holds_at == pytest.approx(delta, rel=1e-4)
        m = compute_metrics(variant, labels, correct, [1.0], np.zeros((len(labels), 1), bool), None, None).per_eps[0]
        assert m.ceiling_classifier == pytest.approx(classifier_ceiling(1.0, lip.constants, risks, card.priors, delta, lip.radius).value, abs=1e-6)
        assert m.ceiling_classifier < 1.0
    assert not with_anchors(card, 5272).lipschitz.basis.established  # control: one anchor fewer falls short of 0.001


def test_stored_runs_are_rebounded_from_the_current_card_keeping_what_was_measured():
    result = EvaluationResult.model_validate_json((RUNS / "mnist-standard.json").read_text())
    card = datasets.load_card("mnist")
    doubled = card.model_copy(update={"lipschitz": card.lipschitz.model_copy(
        update={"constants": [2 * c for c in card.lipschitz.constants]})})  # fmt: skip
    again = with_card_ceilings(result, doubled)
    assert again.dataset.version == result.dataset.version and again.dataset.lipschitz_constants == doubled.lipschitz.constants
    for old, new in zip(result.metrics.per_eps, again.metrics.per_eps):
        assert (new.robust_accuracy_pgd, new.robust_accuracy_in_distribution) == (old.robust_accuracy_pgd, old.robust_accuracy_in_distribution)
        assert new.ceiling_classifier == pytest.approx(new.gap + new.robust_accuracy_pgd)
    assert [m.ceiling_classifier for m in again.metrics.per_eps] != [m.ceiling_classifier for m in result.metrics.per_eps]
    other = card.model_copy(update={"splits": {**card.splits, "test": card.splits["test"].model_copy(update={"labels_sha256": "0" * 64})}})
    with pytest.raises(IrobError, match="labels_sha256 differ"):
        with_card_ceilings(result, other)


def test_a_card_without_an_images_hash_rebounds_only_its_own_version():
    """imagenet10's card has no images hash: a new version may hold other images under the same hashes, so its
    ceilings are refused for a result of another version (found by a review); control: the same version is re-bounded."""
    result = EvaluationResult.model_validate_json((RUNS / "mnist-standard.json").read_text())
    card = datasets.load_card("mnist")
    unhashed = card.model_copy(update={"splits": {**card.splits, "test": card.splits["test"].model_copy(
        update={"images_sha256": None})}})  # fmt: skip
    old = result.model_copy(update={"dataset": result.dataset.model_copy(update={"images_sha256": None, "version": "1.0.0"})})
    with pytest.raises(IrobError, match="has no images_sha256: nothing shows that it holds the test examples of v1.0.0"):
        with_card_ceilings(old, unhashed)
    same = old.model_copy(update={"dataset": old.dataset.model_copy(update={"version": card.version})})
    assert with_card_ceilings(same, unhashed).dataset.version == card.version
    assert with_card_ceilings(result.model_copy(update={"dataset": result.dataset.model_copy(update={"version": "1.0.0"})}),
                              card).dataset.version == "1.0.0"  # control: with its hashes, another version is fine


def test_a_stored_run_takes_only_the_bounds_of_the_same_measurements():
    """metrics.rebounded: the ceilings, gaps and Lipschitz record of the same run bounded from another Lipschitz
    section, its "above ceiling" flags derived again (never copied from the file); nothing if nothing changes or if
    the fresh result measured other numbers."""
    stored = EvaluationResult.model_validate_json((RUNS / "mnist-standard.json").read_text())
    card = datasets.load_card("mnist")
    doubled = card.model_copy(update={"lipschitz": card.lipschitz.model_copy(
        update={"constants": [2 * c for c in card.lipschitz.constants]})})  # fmt: skip
    fresh = with_card_ceilings(stored, doubled)
    invented = SanityFlag(name=VIOLATION, message="anything an importer writes", eps=3.0)
    updated = rebounded(stored, fresh.model_copy(update={"flags": [*fresh.flags, invented]}))
    assert updated.metrics == fresh.metrics and updated.dataset == fresh.dataset
    assert invented not in updated.flags and sorted(map(str, updated.flags)) == sorted(map(str, fresh.flags))  # derived
    assert rebounded(stored, stored) is None and rebounded(fresh, fresh) is None  # nothing to change
    assert rebounded(stored, with_card_ceilings(stored, card)) is None  # the same card: nothing changes, flags' order aside
    other = fresh.model_copy(update={"metrics": fresh.metrics.model_copy(update={"clean_accuracy": 0.5})})
    assert rebounded(stored, other) is None  # other measurements: their ceilings rest on other risks


def test_a_classifier_wrong_everywhere_on_nine_classes_gets_its_ceilings():
    """Found by an audit: with 9 classes of prior 1/9 the weighted risk of a classifier wrong on every point summed to
    1.0000000000000002, and the overall ceiling refused it (after the whole evaluation)."""
    mnist = datasets.load_card("mnist")
    lip = mnist.lipschitz
    card = mnist.model_copy(update={
        "classes": mnist.classes[:9], "priors": [1 / 9] * 9,
        "lipschitz": lip.model_copy(update={"constants": lip.constants[:9]}),
    })
    assert float(np.dot(card.priors, [1.0] * 9)) > 1.0  # control: the unclamped sum is above 1
    labels = np.repeat(np.arange(9), 20)
    m = compute_metrics(card, labels, np.zeros(len(labels), bool), [1.0], np.zeros((len(labels), 1), bool), None, None)
    at = m.per_eps[0]
    assert at.ceiling_classifier is not None and "alpha <= every prior" in at.ceiling_reasons["dataset_overall"]
