"""The typed result of one evaluation (what `--json` writes and the leaderboard stores)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from irob_bench.plugin import SubmissionMetadata

RESULT_SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubmissionRecord(_Record):
    """Who was evaluated: the metadata and the hashes of the plugin file and its weights."""

    metadata: SubmissionMetadata
    file_sha256: str
    weights_sha256: dict[str, str] = Field(default_factory=dict, description="weights file (relative path) -> sha256")


class DatasetRecord(_Record):
    """Which frozen distribution: card version and every hash that defines it."""

    name: str
    version: str
    generator_sha256: str | None
    latents_sha256: str | None
    labels_sha256: str | None
    images_sha256: str | None
    lipschitz_constants: list[float] | None = None
    lipschitz_radius: float | None = None
    lipschitz_delta: float | None = None


class Settings(_Record):
    """How it was evaluated; two runs with equal settings and hashes are the same run."""

    eps: list[float]
    n_examples: int
    subset_seed: int
    indices_sha256: str
    seed: int
    batch_size: int
    device: str
    attacks: dict[str, Any]


class EpsMetrics(_Record):
    """Everything measured and bounded at one eps; accuracies and ceilings are fractions in [0, 1]."""

    eps: float
    robust_accuracy_pgd: float
    robust_accuracy_in_distribution: float | None = None
    ceiling_classifier: float | None = None
    ceiling_dataset_overall: float | None = None
    ceiling_dataset_per_class: float | None = None
    ceiling_reasons: dict[str, str] = Field(default_factory=dict, description="why a ceiling is not established")
    gap: float | None = Field(None, description="ceiling_classifier - robust_accuracy_pgd")


class SanityFlag(_Record):
    """An AutoAttack-style warning that a number may be wrong (e.g. gradient masking)."""

    name: str
    message: str
    eps: float | None = None


class Curves(_Record):
    """Robust accuracy as a function of eps, from per-example minimal adversarial distances."""

    eps: list[float]
    unconstrained: list[float]
    in_distribution: list[float] | None = None


class StageAccuracy(_Record):
    """Robust accuracy at each eps (in the order of Settings.eps) after one stage of the unconstrained cascade and
    every stage before it (AutoAttack's "robust accuracy after each attack")."""

    name: str
    robust_accuracy: list[float]


class Metrics(_Record):
    """Clean accuracy overall and per class, and per-eps robust accuracies and ceilings."""

    clean_accuracy: float
    per_class_accuracy: list[float]
    per_class_count: list[int]
    per_eps: list[EpsMetrics]
    curves: Curves | None = None
    unconstrained_stages: list[StageAccuracy] = Field(default_factory=list, description="the per-stage report")

    def at(self, eps: float) -> EpsMetrics:
        """The metrics at one eps."""
        for m in self.per_eps:
            if abs(m.eps - eps) < 1e-9:
                return m
        raise KeyError(eps)


class EvaluationResult(_Record):
    """One complete evaluation of one submission on one dataset."""

    schema_version: Literal[1] = RESULT_SCHEMA_VERSION
    irob_bench_version: str
    created_at: str
    submission: SubmissionRecord
    dataset: DatasetRecord
    settings: Settings
    metrics: Metrics
    flags: list[SanityFlag] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    environment: dict[str, str] = Field(default_factory=dict, description="library versions and platform")
    outcomes_file: str | None = Field(None, description="per-example outcomes (.npz) saved beside the result")

    def fingerprint(self) -> str:
        """SHA-256 over what makes two runs the same run: submission, dataset and settings hashes."""
        key = {
            "submission_file": self.submission.file_sha256,
            "weights": self.submission.weights_sha256,
            "dataset": self.dataset.model_dump(),
            "settings": self.settings.model_dump(),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
