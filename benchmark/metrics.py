"""Turns per-example attack outcomes into accuracies, and places the ceilings beside them."""

from __future__ import annotations

import numpy as np

from irob_bench.bounds import classifier_ceiling, dataset_ceiling_overall, dataset_ceiling_per_class
from irob_bench.datasets.card import DatasetCard
from irob_bench.results import Curves, EpsMetrics, Metrics, SanityFlag


def per_class_accuracy(correct: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[list[float], list[int]]:
    """Accuracy and count per class (a class absent from the subset gets accuracy 0 and count 0)."""
    counts = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=correct.astype(np.float64), minlength=num_classes)
    acc = np.divide(hits, counts, out=np.zeros(num_classes), where=counts > 0)
    return acc.tolist(), counts.tolist()


def compute_metrics(
    card: DatasetCard,
    labels: np.ndarray,
    clean_correct: np.ndarray,
    eps: list[float],
    robust_pgd: np.ndarray,
    robust_in: np.ndarray | None,
    curves: Curves | None,
) -> Metrics:
    """Clean and robust accuracies per eps, with every ceiling of SCIENCE.md §4 at the submission's risks."""
    class_acc, class_count = per_class_accuracy(clean_correct, labels, card.num_classes)
    clean = float(clean_correct.mean())
    lip = card.lipschitz
    per_eps = []
    for j, e in enumerate(eps):
        rob = float(robust_pgd[:, j].mean())
        rob_in = float(robust_in[:, j].mean()) if robust_in is not None else None
        fields: dict = {"eps": e, "robust_accuracy_pgd": rob, "robust_accuracy_in_distribution": rob_in}
        if lip is None:
            reason = card.notes.get("ceiling", f"no Lipschitz constants in the {card.name} card yet")
            fields["ceiling_reasons"] = {"all": reason}
        else:
            risks = [1.0 - a for a in class_acc]
            bounds = {
                "classifier": classifier_ceiling(e, lip.constants, risks, card.priors, lip.delta, lip.radius),
                # Thm 4.4 first form: classifiers whose overall (prior-weighted) risk is at least this one's
                "dataset_overall": dataset_ceiling_overall(
                    e, lip.constants, float(np.dot(card.priors, risks)), card.priors, lip.delta, lip.radius
                ),
                # second form: classifiers every one of whose class risks is at least this one's smallest
                "dataset_per_class": dataset_ceiling_per_class(
                    e, lip.constants, min(risks), card.priors, lip.delta, lip.radius
                ),
            }
            fields["ceiling_classifier"] = bounds["classifier"].value
            fields["ceiling_dataset_overall"] = bounds["dataset_overall"].value
            fields["ceiling_dataset_per_class"] = bounds["dataset_per_class"].value
            fields["ceiling_reasons"] = {k: b.reason for k, b in bounds.items() if b.reason}
            if bounds["classifier"].value is not None:
                fields["gap"] = bounds["classifier"].value - rob
        per_eps.append(EpsMetrics(**fields))
    return Metrics(
        clean_accuracy=clean,
        per_class_accuracy=class_acc,
        per_class_count=class_count,
        per_eps=per_eps,
        curves=curves,
    )


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
                        name="above ceiling",
                        eps=m.eps,
                        message=f"{label} robust accuracy {value:.3f} exceeds the classifier ceiling "
                        f"{m.ceiling_classifier:.3f} by more than {z:g} standard errors: the Lipschitz constants "
                        "are probably underestimated",
                    )
                )
    return flags
