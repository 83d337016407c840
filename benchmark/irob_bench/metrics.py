"""Turns per-example attack outcomes into accuracies, and places the ceilings beside them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from irob_bench.bounds import classifier_ceiling, dataset_ceiling_overall, dataset_ceiling_per_class
from irob_bench.errors import IrobError
from irob_bench.results import (
    BOUND_FIELDS,
    HASH_FIELDS,
    LIPSCHITZ_FIELDS,
    VIOLATION,
    Curves,
    DatasetRecord,
    EpsMetrics,
    EvaluationResult,
    Metrics,
    SanityFlag,
    StageAccuracy,
)

if TYPE_CHECKING:
    from irob_bench.attacks.outcomes import AttackOutcomes
    from irob_bench.datasets.card import DatasetCard



def per_class_accuracy(correct: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[list[float], list[int]]:
    """Accuracy and count per class (a class absent from the subset gets accuracy 0 and count 0)."""
    counts = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=correct.astype(np.float64), minlength=num_classes)
    acc = np.divide(hits, counts, out=np.zeros(num_classes), where=counts > 0)
    return acc.tolist(), counts.tolist()


def class_risks(class_accuracy: list[float], class_count: list[int]) -> list[float]:
    """Per-class risks alpha_y for the ceilings. A class absent from the subset has an unknown risk: it gets 0, the
    value at which every ceiling is largest, so the ceiling stays an upper bound whatever that class's true risk."""
    return [1.0 - a if n > 0 else 0.0 for a, n in zip(class_accuracy, class_count)]


def weighted_risk(priors: list[float], risks: list[float]) -> float:
    """alpha = sum_y p_y alpha_y, at most 1 (a classifier wrong everywhere gives 1.0000000000000002 with 9 classes of
    prior 1/9, which the ceilings would refuse as a risk above 1 after the whole evaluation)."""
    return min(1.0, float(np.dot(priors, risks)))


def overall_risk(priors: list[float], metrics: Metrics) -> float:
    """The risk on the distribution, alpha = sum_y p_y alpha_y, as the ceilings read it: per-class risks weighted by
    the card's priors (1 - clean accuracy would weigh the classes by their counts in the subset instead)."""
    return weighted_risk(priors, class_risks(metrics.per_class_accuracy, metrics.per_class_count))


def compute_metrics(
    card: DatasetCard,
    labels: np.ndarray,
    clean_correct: np.ndarray,
    eps: list[float],
    robust_pgd: np.ndarray,
    robust_in: np.ndarray | None,
    curves: Curves | None,
) -> Metrics:
    """Clean and robust accuracies per eps, with every ceiling of docs/science.md §4 (see `ceilings`)."""
    class_acc, class_count = per_class_accuracy(clean_correct, labels, card.num_classes)
    risks = class_risks(class_acc, class_count)
    per_eps = []
    for j, e in enumerate(eps):
        rob = float(robust_pgd[:, j].mean())
        rob_in = float(robust_in[:, j].mean()) if robust_in is not None else None
        measured = {"eps": e, "robust_accuracy_pgd": rob, "robust_accuracy_in_distribution": rob_in}
        per_eps.append(EpsMetrics(**measured, **ceilings(card, risks, e, rob)))
    return Metrics(
        clean_accuracy=float(clean_correct.mean()),
        per_class_accuracy=class_acc,
        per_class_count=class_count,
        per_eps=per_eps,
        curves=curves,
    )


def curve_grid(eps: list[float], step: float = 0.1) -> list[float]:
    """The eps grid of the robustness curves: 0 to the largest eps in steps of `step`, plus every eps."""
    top = max(eps)
    grid = {round(i * step, 6) for i in range(int(round(top / step)) + 1)} | set(eps)
    return sorted(grid)


def measured_metrics(card: DatasetCard, outcomes: AttackOutcomes) -> Metrics:
    """Every metric of a result from its per-example outcomes alone: what evaluate stores, and what an import must
    reproduce exactly."""
    eps = list(outcomes.eps)
    curves = Curves(**outcomes.curves(curve_grid(eps)))
    metrics = compute_metrics(
        card, outcomes.labels, outcomes.clean_correct, eps, outcomes.robust_pgd, outcomes.robust_in, curves
    )
    stages = [StageAccuracy(name=name, robust_accuracy=acc) for name, acc in outcomes.stage_accuracies()]
    return metrics.model_copy(update={"unconstrained_stages": stages})


def ceilings(card: DatasetCard, risks: list[float], eps: float, robust_pgd: float) -> dict:
    """The EpsMetrics ceiling fields at one eps: the classifier form at the submission's per-class risks, the overall
    form at its overall risk, the per-class form at the card's reference alpha; each with the card's delta."""
    lip = card.lipschitz
    if lip is None:
        return {"ceiling_reasons": {"all": card.notes.get("ceiling", f"no Lipschitz constants in the {card.name} card yet")}}
    delta = lip.holds_at  # the requested delta, or delta' when the card's anchors support only that
    bounds = {
        "classifier": classifier_ceiling(eps, lip.constants, risks, card.priors, delta, lip.radius),
        "dataset_overall": dataset_ceiling_overall(
            eps, lip.constants, weighted_risk(card.priors, risks), card.priors, delta, lip.radius
        ),
        # not this classifier's smallest class risk: that is 0 as soon as one class is perfect, a vacuous 100%
        "dataset_per_class": dataset_ceiling_per_class(
            eps, lip.constants, card.reference_alpha, card.priors, delta, lip.radius
        ),
    }
    fields: dict = {f"ceiling_{key}": bound.value for key, bound in bounds.items()}
    fields["ceiling_reasons"] = {key: bound.reason for key, bound in bounds.items() if bound.reason}
    if bounds["classifier"].value is not None:
        fields["gap"] = bounds["classifier"].value - robust_pgd
    return fields


def with_card_ceilings(result: EvaluationResult, card: DatasetCard) -> EvaluationResult:
    """A stored result with its ceilings, gaps, ceiling flags and Lipschitz record recomputed from `card`.

    The measured numbers and the card version they were measured on are kept; the card must describe the same test
    examples (same name and hashes), i.e. differ from that version only in what the ceilings rest on.
    """
    old, new = result.dataset, DatasetRecord.of_card(card)
    differing = old.data_differences(new)
    if differing:
        raise IrobError(f"{card.name} v{card.version} is not the data of this result ({', '.join(differing)} differ)")
    unhashed = [field for field in HASH_FIELDS if getattr(new, field) is None]
    if unhashed and old.version != card.version:  # e.g. imagenet10: its images are defined by the card, not a hash
        raise IrobError(f"{card.name} v{card.version} has no {', '.join(unhashed)}: nothing shows that it holds the test "
                        f"examples of v{old.version}, so its ceilings are not this result's")
    lip = card.lipschitz
    risks = class_risks(result.metrics.per_class_accuracy, result.metrics.per_class_count)
    per_eps = [
        m.model_copy(update={"ceiling_classifier": None, "ceiling_dataset_overall": None, "ceiling_dataset_per_class": None,
                             "gap": None, **ceilings(card, risks, m.eps, m.robust_accuracy_pgd)})
        for m in result.metrics.per_eps
    ]  # fmt: skip
    metrics = result.metrics.model_copy(update={"per_eps": per_eps})
    n = result.settings.n_examples
    flags = [f for f in result.flags if f.name != VIOLATION] + ceiling_violations(metrics, n)
    record = (lip.constants, lip.radius, lip.holds_at) if lip else (None, None, None)
    dataset = old.model_copy(update=dict(zip(LIPSCHITZ_FIELDS, record)))
    return result.model_copy(update={"metrics": metrics, "flags": flags, "dataset": dataset})


def rebounded(stored: EvaluationResult, fresh: EvaluationResult) -> EvaluationResult | None:
    """`stored` with the ceilings, gaps and Lipschitz record of `fresh`, the same run (same fingerprint) bounded from
    another Lipschitz section, and its "above ceiling" flags derived again; None if that changes nothing, or if fresh
    measured other numbers (another machine's floats): its ceilings rest on its own per-class risks, not stored's."""
    if fresh.fingerprint() != stored.fingerprint() or _measured(fresh.metrics) != _measured(stored.metrics):
        return None
    bounds = {m.eps: {field: getattr(m, field) for field in BOUND_FIELDS} for m in fresh.metrics.per_eps}
    metrics = stored.metrics.model_copy(update={"per_eps": [m.model_copy(update=bounds[m.eps]) for m in stored.metrics.per_eps]})
    dataset = stored.dataset.model_copy(update={field: getattr(fresh.dataset, field) for field in LIPSCHITZ_FIELDS})
    if metrics == stored.metrics and dataset == stored.dataset:  # the flags follow the metrics, whatever their order
        return None
    flags = [f for f in stored.flags if f.name != VIOLATION] + ceiling_violations(metrics, stored.settings.n_examples)
    return stored.model_copy(update={"metrics": metrics, "flags": flags, "dataset": dataset})


def _measured(metrics: Metrics) -> Metrics:
    """The metrics without what the ceilings decide: what the attacks and the certificate measured."""
    blank = {field: ({} if field == "ceiling_reasons" else None) for field in BOUND_FIELDS}
    return metrics.model_copy(update={"per_eps": [m.model_copy(update=blank) for m in metrics.per_eps]})


def ceiling_violations(metrics: Metrics, n: int, z: float = 3.0) -> list[SanityFlag]:
    """Flag any eps where a measured robust accuracy exceeds its classifier ceiling by more than z standard errors.

    The ceiling is a theorem given correct Lipschitz constants, so a violation means L is underestimated.
    """
    flags = []
    for m in metrics.per_eps:
        if m.ceiling_classifier is None:
            continue
        for label, value in (("PGD", m.robust_accuracy_pgd), ("in-distribution", m.robust_accuracy_in_distribution)):
            if value is None:
                continue
            slack = z * max(float(np.sqrt(value * (1 - value) / n)), 1.0 / n)
            if value > m.ceiling_classifier + slack:
                flags.append(
                    SanityFlag(
                        name=VIOLATION,
                        eps=m.eps,
                        message=f"{label} robust accuracy {value:.3f} exceeds the classifier ceiling "
                        f"{m.ceiling_classifier:.3f} by more than {z:g} standard errors: the Lipschitz constants "
                        "are probably underestimated",
                    )
                )
    return flags
