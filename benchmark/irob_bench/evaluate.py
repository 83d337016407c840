"""One-call evaluation: dataset -> submission -> attacks -> metrics -> bounds, returned as an EvaluationResult."""

from __future__ import annotations

import datetime as dt
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydantic
import scipy
import torch
from pydantic import Field

from irob_bench import __version__
from irob_bench import datasets as dataset_registry
from irob_bench.attacks.presets import DEFAULT_PRESET, preset
from irob_bench.attacks.suite import AttackOutcomes, AttackSuiteConfig, run_attacks
from irob_bench.certify import certify, check_certify_interface, violation_flags, with_certificates
from irob_bench.common import FrozenModel, indices_sha256
from irob_bench.datasets.distribution import BenchmarkDataset
from irob_bench.errors import IrobError
from irob_bench.metrics import ceiling_violations, measured_metrics
from irob_bench.plugin import Submission, load_submission
from irob_bench.results import DatasetRecord, EvaluationResult, SanityFlag, Settings, SubmissionRecord
from irob_bench.runtime import deterministic, place, resolve_device, seed_everything
from irob_bench.validate import Validated, ValidationReport, check_model

DEFAULT_N_EXAMPLES = 300
SUBSET_SEED = 0
VALIDATION_BATCH = 16


class EvaluateOptions(FrozenModel):
    """What to evaluate and how; the defaults are the documented benchmark protocol."""

    dataset: str | None = Field(None, description="default: the first dataset the submission targets")
    eps: list[float] | None = Field(None, description="default: the card's eps grid")
    n_examples: int | None = Field(DEFAULT_N_EXAMPLES, description="None = the whole test set")
    indices: tuple[int, ...] | None = Field(None, description="exactly these test indices instead of the seeded subset")
    subset_seed: int = SUBSET_SEED
    seed: int = 0
    device: str = "cpu"
    batch_size: int = Field(250, ge=1)
    preset: str = Field(DEFAULT_PRESET, description="attack preset: quick, standard (the leaderboard's) or thorough")
    attacks: AttackSuiteConfig | None = Field(None, description="a custom attack configuration instead of the preset")
    progress: bool = True

    def attack_config(self, randomized: bool) -> AttackSuiteConfig:
        """The attacks this evaluation runs: the custom configuration, or the preset (EOT for randomized models)."""
        if self.attacks is not None:
            return self.attacks
        return preset(self.preset, randomized)


@dataclass
class Evaluation:
    """An evaluation's typed result together with its per-example outcomes."""

    result: EvaluationResult
    outcomes: AttackOutcomes


def subset_indices(test_size: int, n_examples: int | None, subset_seed: int) -> np.ndarray:
    """The first n indices of a seeded permutation of the test set (all of it, in order, for None)."""
    if n_examples is None or n_examples == test_size:
        return np.arange(test_size)
    if not 0 < n_examples <= test_size:
        raise IrobError(f"--n-examples must be between 1 and {test_size}, got {n_examples}")
    perm = torch.randperm(test_size, generator=torch.Generator().manual_seed(subset_seed))
    return perm[:n_examples].numpy()


def load_validated(
    path: str | Path, dataset: str | None, device: str = "cpu", batch_size: int = 250
) -> tuple[Submission, BenchmarkDataset, torch.nn.Module, ValidationReport]:
    """Import the submission, pick its dataset, build the model and run every pre-scoring check (batch independence
    at the evaluation's `batch_size`)."""
    submission = load_submission(path)
    data = dataset_registry.load(dataset or submission.metadata.datasets[0])
    if data.card.name not in submission.metadata.datasets:
        raise IrobError(f"metadata: {submission.metadata.name} targets {submission.metadata.datasets}, not {data.card.name!r}")
    model = submission.build(data.card.name)
    x = data.images("test", indices=np.arange(VALIDATION_BATCH))
    y = data.labels("test")[:VALIDATION_BATCH]
    checks = check_model(model, x, y, data.num_classes, submission.metadata.randomized, batch_size)
    report = ValidationReport(submission=submission.metadata.name, dataset=data.card.name, checks=checks)
    return submission, data, place(model, resolve_device(device)), report


def validation(path: str | Path, dataset: str | None, batch_size: int = 250) -> Validated:
    """`irob-bench validate` in this process: every pre-scoring check, and the lines it prints."""
    submission, data, _, report = load_validated(path, dataset, batch_size=batch_size)
    steps = [
        f"ok    import: {submission.path.name}",
        f"ok    metadata: {submission.metadata.name} ({', '.join(submission.metadata.datasets)})",
        f"ok    factory: nn.Module for {data.card.name} ({data.num_classes} classes)",
    ]
    return Validated(lines=steps + [check.line() for check in report.checks], report=report)


def _indices(test_size: int, options: EvaluateOptions) -> np.ndarray:
    """The test indices to score: the given ones (checked to exist), else the seeded subset."""
    if options.indices is None:
        return subset_indices(test_size, options.n_examples, options.subset_seed)
    chosen = np.asarray(options.indices, dtype=np.int64)
    if len(chosen) == 0 or chosen.min() < 0 or chosen.max() >= test_size:
        raise IrobError(f"indices must be non-empty and between 0 and {test_size - 1}")
    return chosen


def dataset_record(card) -> DatasetRecord:
    """The card's identity as stored with every result."""
    test = card.splits["test"]
    lip = card.lipschitz
    return DatasetRecord(
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


def environment() -> dict[str, str]:
    """Library versions and platform recorded with a result."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pydantic": pydantic.__version__,
        "torch_threads": str(torch.get_num_threads()),
    }


def evaluate(path: str | Path, options: EvaluateOptions | None = None) -> Evaluation:
    """Validate and score one submission; raises IrobError on any failed check, before any scoring."""
    options = options or EvaluateOptions()
    if options.attacks is None:
        preset(options.preset)  # an unknown preset fails before any work
    timings: dict[str, float] = {}
    start = time.perf_counter()
    submission, data, model, report = load_validated(path, options.dataset, options.device, options.batch_size)
    report.raise_on_failure()
    attacks = options.attack_config(submission.metadata.randomized)
    card = data.card
    eps = sorted(options.eps if options.eps is not None else card.eps_grid)
    if any(e <= 0 for e in eps):
        raise IrobError(f"--eps values must be positive, got {eps}")
    timings["load_validate"] = time.perf_counter() - start

    t = time.perf_counter()
    indices = _indices(card.splits["test"].size, options)
    z = data.latents("test")[indices]
    y = data.labels("test")[indices]
    x = data.generate(z, y)
    timings["generate"] = time.perf_counter() - t
    check_certify_interface(model, x[:VALIDATION_BATCH].to(options.device), y[:VALIDATION_BATCH].to(options.device), eps[0])

    seed_everything(options.seed)
    with deterministic():
        outcomes = run_attacks(
            model,
            x,
            y,
            eps,
            attacks,
            generator=place(data.generator, options.device),
            z=z,
            seed=options.seed,
            batch_size=options.batch_size,
            device=options.device,
            progress=options.progress,
            indices=indices,
        )
    timings.update({f"attack_{k}": v for k, v in outcomes.timings.items()})
    t = time.perf_counter()
    certification = certify(model, x.to(options.device), y.to(options.device), eps, options.batch_size)
    metrics = with_certificates(measured_metrics(card, outcomes), certification)
    timings["certify"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    result = EvaluationResult(
        irob_bench_version=__version__,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        submission=SubmissionRecord(
            metadata=submission.metadata, file_sha256=submission.file_sha256, weights_sha256=submission.weights_sha256
        ),
        dataset=dataset_record(card),
        settings=Settings(
            eps=eps,
            n_examples=len(indices),
            subset_seed=options.subset_seed,
            indices_sha256=indices_sha256(indices),
            seed=options.seed,
            batch_size=options.batch_size,
            device=options.device,
            attacks=outcomes.config_dict(),
        ),
        metrics=metrics,
        flags=[*outcomes.flags, *_warnings_as_flags(report), *ceiling_violations(metrics, len(indices)),
               *violation_flags(certification, outcomes)],
        timings=timings,
        environment=environment(),
    )
    return Evaluation(result=result, outcomes=outcomes)


def _warnings_as_flags(report: ValidationReport) -> list[SanityFlag]:
    """Validation warnings (softmax outputs, masked gradients) travel with the result as flags."""
    return [SanityFlag(name=f"validate: {c.name}", message=c.message) for c in report.warnings]
