"""The typed result of one evaluation (what `--json` writes and the leaderboard stores)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StrictInt, StrictStr, ValidationError, field_validator

from irob_bench.attacks.config import canonical_attacks
from irob_bench.attacks.records import SanityFlag
from irob_bench.common import FrozenModel, field_error, same_eps
from irob_bench.errors import IrobError
from irob_bench.plugin import SubmissionMetadata

if TYPE_CHECKING:
    from irob_bench.datasets.card import DatasetCard

RESULT_SCHEMA_VERSION = 1
MAX_RESULT_BYTES = 10 << 20  # a result is a few kB (the per-example data lives in the outcomes file)

# Range rules every stored or imported number must obey: an accuracy or ceiling is a fraction, a gap a difference
# of two fractions, an eps a positive radius, a count non-negative; a hash is 64 hex digits.
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Gap = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
Radius = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

VIOLATION = "above ceiling"  # the flag of a robust accuracy measured above its own ceiling
# The DatasetRecord fields that define the test examples, and how a difference in each is named (the one spelling of
# a run's data identity: DatasetRecord.data / identity, the gate's report, the re-bound and import checks).
DATA_FIELDS = {
    "name": "dataset",
    "generator_sha256": "generator weights hash",
    "latents_sha256": "test latents hash",
    "labels_sha256": "test labels hash",
    "images_sha256": "test images hash",
}
HASH_FIELDS = tuple(field for field in DATA_FIELDS if field != "name")
# What a card's Lipschitz section decides (the ceilings and what they rest on), not what the attacks measured.
LIPSCHITZ_FIELDS = ("lipschitz_constants", "lipschitz_radius", "lipschitz_delta")
BOUND_FIELDS = ("ceiling_classifier", "ceiling_dataset_overall", "ceiling_dataset_per_class", "ceiling_reasons", "gap")


class _Record(FrozenModel):
    """The base of every part of a result."""


class SubmissionRecord(_Record):
    """Who was evaluated: the metadata and the hashes of the plugin file and its weights."""

    metadata: SubmissionMetadata
    file_sha256: Sha256
    weights_sha256: dict[str, Sha256] = Field(default_factory=dict, description="weights file (relative path) -> sha256")


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

    @classmethod
    def of_card(cls, card: DatasetCard) -> DatasetRecord:
        """The card's record as stored with every result: what defines its test examples, its version and the
        Lipschitz record its ceilings rest on."""
        test, lip = card.splits["test"], card.lipschitz
        return cls(
            name=card.name,
            version=card.version,
            generator_sha256=card.generator.weights_sha256,
            latents_sha256=test.latents_sha256,
            labels_sha256=test.labels_sha256,
            images_sha256=test.images_sha256,
            lipschitz_constants=lip.constants if lip else None,
            lipschitz_radius=lip.radius if lip else None,
            lipschitz_delta=lip.holds_at if lip else None,
        )

    def data(self) -> dict[str, str | None]:
        """The name and hashes that define the test examples: what a version bump of the Lipschitz section alone
        leaves unchanged."""
        return {field: getattr(self, field) for field in DATA_FIELDS}

    def data_differences(self, other: DatasetRecord) -> list[str]:
        """The fields of data() in which `other` names other test examples than this record."""
        mine = self.data()
        return [field for field, value in other.data().items() if mine[field] != value]

    def identity(self) -> dict[str, str | None]:
        """What names the test examples: the dataset's name, card version and hashes. Only the Lipschitz record (what
        the ceilings rest on) is left out. The version stays: a card without an images hash (imagenet10) can change
        its images in a new version without changing any hash, and each version is a table of its own."""
        return {**self.data(), "version": self.version}


class Settings(_Record):
    """How it was evaluated; two runs with equal settings and hashes are the same run."""

    eps: list[Radius] = Field(min_length=1)
    n_examples: int = Field(ge=1)
    subset_seed: int
    indices_sha256: Sha256
    seed: int
    batch_size: int = Field(ge=1)
    device: Literal["cpu", "cuda"] = Field(description="the kind of device (cuda:0 and cuda:1 are one run)")
    attacks: dict[str, Any]

    @field_validator("attacks")
    @classmethod
    def _canonical(cls, attacks: dict[str, Any]) -> dict[str, Any]:
        return canonical_attacks(attacks)  # one run, one fingerprint, whichever JSON tool last wrote the file


class EpsMetrics(_Record):
    """Everything measured and bounded at one eps; accuracies and ceilings are fractions in [0, 1]."""

    eps: Radius
    robust_accuracy_pgd: Fraction
    robust_accuracy_in_distribution: Fraction | None = None
    ceiling_classifier: Fraction | None = None
    ceiling_dataset_overall: Fraction | None = None
    ceiling_dataset_per_class: Fraction | None = None
    ceiling_reasons: dict[str, str] = Field(default_factory=dict, description="why a ceiling is not established")
    gap: Gap | None = Field(None, description="ceiling_classifier - robust_accuracy_pgd")
    certified_accuracy: Fraction | None = Field(None, description="a lower bound on true robust accuracy")
    certified_reason: str | None = Field(None, description='"no certificate: <why>" when certified_accuracy is None')


class CertificateRecord(_Record):
    """How certified accuracy was obtained (irob_bench.certify): whose certificate, and how tight it is likely to be."""

    source: Literal["benchmark", "submission"]
    method: str
    lipschitz_bound: float | None = Field(None, ge=0.0, allow_inf_nan=False, description="the benchmark's L bound")
    looseness: float | None = Field(None, ge=0.0, allow_inf_nan=False,
                                    description="bound / the largest slope seen on the points (>= 1; 1 = tight)")
    tightness: Literal["tight", "loose", "unknown"]
    reason: str | None = Field(None, description="why there is no certificate")


class Curves(_Record):
    """Robust accuracy as a function of eps, from per-example minimal adversarial distances."""

    eps: list[float]
    unconstrained: list[Fraction]
    in_distribution: list[Fraction] | None = None


class StageAccuracy(_Record):
    """Robust accuracy at each eps (in the order of Settings.eps) after one stage of the unconstrained cascade and
    every stage before it (AutoAttack's "robust accuracy after each attack")."""

    name: str
    robust_accuracy: list[Fraction]


class Metrics(_Record):
    """Clean accuracy overall and per class, and per-eps robust accuracies and ceilings."""

    clean_accuracy: Fraction
    per_class_accuracy: list[Fraction]
    per_class_count: list[Count]
    per_eps: list[EpsMetrics]
    curves: Curves | None = None
    unconstrained_stages: list[StageAccuracy] = Field(default_factory=list, description="the per-stage report")
    certificate: CertificateRecord | None = Field(None, description="None: certification was not run")

    def at(self, eps: float) -> EpsMetrics:
        """The metrics at one eps."""
        for m in self.per_eps:
            if same_eps(m.eps, eps):
                return m
        raise KeyError(eps)


class ShardRecord(_Record):
    """A shard's place: the K-th (1-based) of N disjoint slices of the evaluation's points (`irob-bench runs merge`
    joins them into the run; a shard alone is never stored)."""

    index: int = Field(ge=1)
    of: int = Field(ge=1)

    def not_a_run(self) -> str:
        """The one-line refusal to store or import a shard alone."""
        return f"shard {self.index}/{self.of} is part of a run, not a run: join the shards with `irob-bench runs merge`"


def created_utc(stamp: str) -> datetime:
    """A result's created_at (ISO 8601; a stamp without offset is UTC) as naive UTC, or a one-line IrobError."""
    try:
        moment = datetime.fromisoformat(stamp)
        return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment
    except (ValueError, OverflowError):
        raise IrobError(f"result created_at {stamp!r} is not an ISO-8601 timestamp of a real moment") from None


class EvaluationResult(_Record):
    """One complete evaluation of one submission on one dataset."""

    schema_version: Literal[1] = RESULT_SCHEMA_VERSION
    irob_bench_version: str = Field(min_length=1, max_length=40, pattern=r"^[0-9][0-9A-Za-z.+!_-]*$",
                                    description="a PEP 440 version; 40 characters, the database column's width")
    created_at: str
    submission: SubmissionRecord
    dataset: DatasetRecord
    settings: Settings
    metrics: Metrics
    flags: list[SanityFlag] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    environment: dict[str, StrictStr | StrictInt] = Field(
        default_factory=dict, description="library versions, platform and code hash (text); thread and shard counts "
        "(numbers; text in results written before 2026-12-07)")
    outcomes_file: str | None = Field(None, description="per-example outcomes (.npz) saved beside the result")
    shard: ShardRecord | None = Field(None, description="set on one shard of a sharded evaluation; None on a run")

    def fingerprint(self) -> str:
        """SHA-256 over what makes two runs the same run: the submission's file and weights hashes, the test examples'
        identity (DatasetRecord.identity) and the settings. The ceilings are derived, so a result re-bounded from the
        card's current Lipschitz section (`runs ceilings`) keeps its fingerprint. leaderboard/migrations.py's version 5
        holds a frozen copy."""
        key = {
            "submission_file": self.submission.file_sha256,
            "weights": self.submission.weights_sha256,
            "dataset": self.dataset.identity(),
            "settings": self.settings.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def read_result_file(path: str | Path) -> EvaluationResult:
    """A result JSON file (size-capped, schema- and range-checked), or a one-line IrobError naming the bad field."""
    path = Path(path)
    if path.is_dir():
        raise IrobError(f"{path} is a directory, not a result .json file")
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            raise IrobError(f"{path}: {path.stat().st_size:,} bytes, larger than any result ({MAX_RESULT_BYTES:,} at most)")
        return EvaluationResult.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise IrobError(f"cannot read {path}: {exc.strerror}") from None
    except ValidationError as exc:
        raise IrobError(f"{path}: not a valid irob-bench result: {field_error(exc)}") from None
