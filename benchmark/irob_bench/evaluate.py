"""One-call evaluation: dataset -> submission -> attacks -> metrics -> bounds, returned as an EvaluationResult."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydantic
import scipy
import torch
from pydantic import Field

from irob_bench import __version__
from irob_bench import datasets as dataset_registry
from irob_bench.artifacts import CODE_KEY, code_sha256
from irob_bench.attacks.outcomes import load_outcomes, merge_outcomes, save_outcomes
from irob_bench.attacks.presets import DEFAULT_PRESET, labelled, preset
from irob_bench.attacks.suite import AttackOutcomes, AttackSuiteConfig, run_attacks
from irob_bench.certify import Certification, certify, check_certify_interface, violation_flags, with_certificates
from irob_bench.common import DEFAULT_N_EXAMPLES, FrozenModel, indices_sha256, same_eps
from irob_bench.datasets.card import DatasetCard
from irob_bench.datasets.distribution import BenchmarkDataset
from irob_bench.errors import IrobError
from irob_bench.metrics import ceiling_violations, measured_metrics
from irob_bench.plugin import Opened, load_submission
from irob_bench.results import DatasetRecord, EvaluationResult, SanityFlag, Settings, ShardRecord, SubmissionRecord
from irob_bench.runtime import deterministic, place, random_state_kept, resolve_device, seed_everything
from irob_bench.validate import Validated, ValidationReport, check_model

SUBSET_SEED = 0
VALIDATION_BATCH = 16
VALIDATION_FLAG_PREFIX = "validate: "  # validation warnings travel with the result as flags named so


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
    shard: tuple[int, int] | None = Field(None, description="(K, N): only the K-th (1-based) of N disjoint slices")
    checkpoint_root: str | None = Field(None, description="folder of resumable checkpoints of finished chunks; None: off")
    resume: bool = Field(True, description="reuse the finished chunks of an interrupted run; False: compute all afresh")
    population: int | None = Field(None, ge=1, description="the run whose per-point spot-check draws to repeat (its "
                                   "number of points) when re-evaluating some of its points; None: this evaluation's")

    def attack_config(self, randomized: bool) -> AttackSuiteConfig:
        """The attacks this evaluation runs: the custom configuration, or the preset (EOT for randomized models)."""
        if self.attacks is not None:
            return labelled(self.attacks, randomized)  # a changed preset is "custom": it never joins the preset's table
        return preset(self.preset, randomized)


@dataclass
class Evaluation:
    """An evaluation's typed result together with its per-example outcomes."""

    result: EvaluationResult
    outcomes: AttackOutcomes


def shard_chunks(n: int, chunk: int, shard: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The evaluation's chunks that shard K of N evaluates: consecutive runs of `chunk` positions (into its ordered
    points), the unit of batching, checkpoints and shards. A shard is a contiguous run of whole chunks, so every
    point is attacked in the very batch it has in one process, and the floats come out bit for bit the same."""
    chunks = [np.arange(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    if shard is None:
        return chunks
    k, of = shard
    if not 1 <= k <= of:
        raise IrobError(f"--shard {k}/{of}: K must be between 1 and N")
    if of > len(chunks):
        raise IrobError(f"--shard {k}/{of}: the {n} points make {len(chunks)} chunks of --batch-size {chunk}, the "
                        f"unit of a shard; use at most {len(chunks)} shards or a smaller --batch-size")
    return chunks[(k - 1) * len(chunks) // of : k * len(chunks) // of]


def subset_indices(test_size: int, n_examples: int | None, subset_seed: int) -> np.ndarray:
    """The first n indices of a seeded permutation of the test set (all of it, in order, for None)."""
    if n_examples is None or n_examples == test_size:
        return np.arange(test_size)
    if not 0 < n_examples <= test_size:
        raise IrobError(f"--n-examples must be between 1 and {test_size}, got {n_examples}")
    perm = torch.randperm(test_size, generator=torch.Generator().manual_seed(subset_seed))
    return perm[:n_examples].numpy()


def load_validated(
    path: str | Path, dataset: str | None, device: str = "cpu", batch_size: int = 250, opened: Opened | None = None
) -> tuple[Opened, BenchmarkDataset, torch.nn.Module, ValidationReport]:
    """Import the submission (here, or use the one `opened` in an isolated worker), pick its dataset, build the model
    and run every pre-scoring check (batch independence at the evaluation's `batch_size`)."""
    submission = opened or load_submission(path)
    data = dataset_registry.load(dataset or submission.metadata.datasets[0])
    if data.card.name not in submission.metadata.datasets:
        raise IrobError(f"metadata: {submission.metadata.name} targets {submission.metadata.datasets}, not {data.card.name!r}")
    model = submission.build(data.card.name)
    x = data.images("test", indices=np.arange(VALIDATION_BATCH))
    y = data.labels("test")[:VALIDATION_BATCH]
    checks = check_model(model, x, y, data.num_classes, submission.metadata.randomized, batch_size)
    report = ValidationReport(submission=submission.metadata.name, dataset=data.card.name, checks=checks)
    return submission, data, place(model, resolve_device(device)), report


def validation(path: str | Path, dataset: str | None, batch_size: int = 250, opened: Opened | None = None) -> Validated:
    """`irob-bench validate`: every pre-scoring check (of the submission `opened` in a worker, else imported here),
    and the lines it prints."""
    submission, data, _, report = load_validated(path, dataset, batch_size=batch_size, opened=opened)
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


def environment() -> dict[str, str | int]:
    """Library versions, platform, torch threads and the code hash recorded with a result."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pydantic": pydantic.__version__,
        "torch_threads": torch.get_num_threads(),
        CODE_KEY: code_sha256(),
    }


def check_options(options: EvaluateOptions) -> None:
    """Every check of `options` that needs no submission code, so a command can fail in one line before it starts a
    sandbox: the device, the shard, the preset, eps and, when the dataset is named, the dataset, the subset and the
    shard's chunks."""
    resolve_device(options.device)
    if options.shard is not None and not 1 <= options.shard[0] <= options.shard[1]:
        raise IrobError(f"--shard {options.shard[0]}/{options.shard[1]}: K must be between 1 and N")
    if options.attacks is None:
        preset(options.preset)
    if options.eps is not None:
        if not options.eps:
            raise IrobError("--eps needs at least one value")
        bad = [e for e in options.eps if not (math.isfinite(e) and e > 0)]
        if bad:
            raise IrobError(f"--eps values must be positive and finite, got {bad[0]:g}")
        repeated = sorted({f"{a:g}" for i, a in enumerate(options.eps) for b in options.eps[:i] if same_eps(a, b)})
        if repeated:
            raise IrobError(f"--eps lists {', '.join(repeated)} more than once")
    if options.dataset is not None:
        card = dataset_registry.load_card(options.dataset)
        check_eps_range(options.eps or card.eps_grid, card)
        indices = _indices(card.splits["test"].size, options)
        shard_chunks(len(indices), options.batch_size, options.shard)
    elif options.n_examples is not None and options.indices is None:  # the submission names the dataset: bound n now
        largest = dataset_registry.largest_test_size()
        if options.n_examples > largest:
            raise IrobError(f"--n-examples must be between 1 and {largest} (the largest test set of any dataset), got "
                            f"{options.n_examples}")
        shard_chunks(options.n_examples, options.batch_size, options.shard)  # the chunks depend on n alone


def check_eps_range(eps: list[float], card: DatasetCard) -> None:
    """Refuse an eps above the diameter of the image cube [0, 1]^D: every image lies within it of every other, so
    robust accuracy there is 0 by definition (and the robustness curve would need eps / 0.1 points)."""
    diameter = math.sqrt(math.prod(card.image_shape))
    too_large = [e for e in eps if e > diameter]
    if too_large:
        raise IrobError(f"--eps {too_large[0]:g} is larger than {card.name}'s image diameter {diameter:.4g} (the L2 "
                        f"distance between an all-black and an all-white image): no point can be robust there")


@random_state_kept()
def evaluate(path: str | Path, options: EvaluateOptions | None = None, opened: Opened | None = None) -> Evaluation:
    """Validate and score one submission (imported here, or `opened` in an isolated worker, whose model the attacks
    then query from this process); raises IrobError on any failed check, before any scoring. The caller's random
    streams are left where they were."""
    options = options or EvaluateOptions()
    check_options(options)
    timings: dict[str, float] = {}
    start_time = time.perf_counter()
    submission, data, model, report = load_validated(path, options.dataset, options.device, options.batch_size, opened)
    report.raise_on_failure()
    attacks = options.attack_config(submission.metadata.randomized)
    card = data.card
    eps = sorted(options.eps if options.eps is not None else card.eps_grid)
    check_eps_range(eps, card)
    timings["load_validate"] = time.perf_counter() - start_time

    indices = _indices(card.splits["test"].size, options)
    chunks = shard_chunks(len(indices), options.batch_size, options.shard)
    _certify(data, model, indices[:VALIDATION_BATCH], eps, options, interface_only=True)
    layers = submission.certificate_layers(model)
    settings = Settings(
        eps=eps,
        n_examples=len(indices),
        subset_seed=options.subset_seed,
        indices_sha256=indices_sha256(indices),
        seed=options.seed,
        batch_size=options.batch_size,
        device=options.device.split(":")[0],  # the kind: torchrun's ranks on cuda:0, cuda:1 are one run
        attacks={**attacks.model_dump(mode="json"), "in_distribution": attacks.latent.method},
    )
    record = SubmissionRecord(
        metadata=submission.metadata, file_sha256=submission.file_sha256, weights_sha256=submission.weights_sha256
    )
    checkpoints = _checkpoint_dir(options, record, DatasetRecord.of_card(card), settings)
    parts, resumed = [], 0
    for positions in chunks:
        chunk, start = indices[positions], int(positions[0])
        saved = _resumed_chunk(checkpoints, start, chunk, eps, attacks, options.seed) if options.resume else None
        if saved is None:
            submission.seed(options.seed)  # the model's own draws, where it runs; ours: _attack_chunk
            saved = _attack_chunk(data, model, chunk, eps, attacks, options, options.population or len(indices),
                                  timings)
            if checkpoints is not None:
                save_outcomes(saved, _chunk_file(checkpoints, start))
        else:
            resumed += 1
        parts.append(saved)
    if resumed:
        print(f"resumed {resumed} of {len(parts)} finished chunks from {checkpoints}", file=sys.stderr)
    outcomes = merge_outcomes(parts)
    timings.update({f"attack_{k}": v for k, v in outcomes.timings.items()})
    t = time.perf_counter()
    certification = _certify(data, model, indices[np.concatenate(chunks)], eps, options, layers=layers)
    outcomes = replace(outcomes, certified=certification.certified)  # kept per point: an import recounts them
    timings["certify"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start_time
    result = assemble(
        record, card, settings, outcomes, _warnings_as_flags(report), timings,
        ShardRecord(index=options.shard[0], of=options.shard[1]) if options.shard else None, certification,
    )
    if resumed:  # recorded with the result too: a sandboxed worker's stderr is not shown under --quiet
        result = result.model_copy(update={"environment": {**result.environment,
                                                           "resumed_chunks": f"{resumed} of {len(parts)}"}})
    if checkpoints is not None:  # done: this run's chunks go (other shards' stay); the folder when it is empty
        for positions in chunks:
            _chunk_file(checkpoints, int(positions[0])).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            checkpoints.rmdir()
    return Evaluation(result=result, outcomes=outcomes)


def assemble(
    record: SubmissionRecord, card, settings: Settings, outcomes: AttackOutcomes, warnings: list[SanityFlag],
    timings: dict[str, float], shard: ShardRecord | None = None, certification: Certification | None = None,
) -> EvaluationResult:
    """The result of an evaluation (or of one shard) from its outcomes and, where computed, its certificates: what
    one process and a merge both write (a merge adds the shards' certificates: shards.merge_shards)."""
    metrics = measured_metrics(card, outcomes)
    certified_flags: list[SanityFlag] = []
    if certification is not None:
        metrics, certified_flags = with_certificates(metrics, certification), violation_flags(certification, outcomes)
    return EvaluationResult(
        irob_bench_version=__version__,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        submission=record,
        dataset=DatasetRecord.of_card(card),
        settings=settings.model_copy(update={"attacks": outcomes.config_dict()}),
        metrics=metrics,
        flags=[*outcomes.flags, *warnings, *ceiling_violations(metrics, len(outcomes.indices)), *certified_flags],
        timings=timings,
        environment=environment(),
        shard=shard,
    )


def _certify(data: BenchmarkDataset, model: torch.nn.Module, indices: np.ndarray, eps: list[float],
             options: EvaluateOptions, interface_only: bool = False,
             layers: Callable[[], torch.nn.Module] | None = None) -> Certification | None:
    """Certificates of `indices` (`interface_only`: just check a submission's certify() on them, before any attack);
    `layers`: the network to bound when it is not `model` (certify.certify)."""
    y = data.labels("test")[indices]
    x = data.generate(data.latents("test")[indices], y, options.device)
    if interface_only:
        check_certify_interface(model, x, y.to(options.device), eps[0])
        return None
    return certify(model, x, y.to(options.device), eps, options.batch_size, layers)


def _attack_chunk(
    data: BenchmarkDataset, model: torch.nn.Module, chunk: np.ndarray, eps: list[float], attacks: AttackSuiteConfig,
    options: EvaluateOptions, population: int, timings: dict[str, float],
) -> AttackOutcomes:
    """Generate and attack one chunk of points; each point's randomness is keyed by its index, so this equals the
    same points' slice of one evaluation over all of them."""
    t = time.perf_counter()
    z = data.latents("test")[chunk]
    y = data.labels("test")[chunk]
    x = data.generate(z, y, options.device)  # on the device the attacks use, where the generator stays
    timings["generate"] = timings.get("generate", 0.0) + time.perf_counter() - t
    seed_everything(options.seed)
    with deterministic():
        return run_attacks(
            model, x, y, eps, attacks, generator=place(data.generator.for_attacks(), options.device), z=z, seed=options.seed,
            batch_size=options.batch_size, device=options.device, progress=options.progress, indices=chunk,
            population=population,
        )


def _checkpoint_dir(options: EvaluateOptions, record: SubmissionRecord, dataset: DatasetRecord, settings: Settings
                    ) -> Path | None:
    """The checkpoint folder of exactly this evaluation (submission, test examples, settings), or None when off. Chunks
    are global (shard_chunks), so shards and ranks of one evaluation share the folder, each writing its own chunks; a
    card update that changed only the Lipschitz section (the ceilings, computed after the chunks) keeps it."""
    if options.checkpoint_root is None:
        return None
    key = {"submission": record.model_dump(mode="json"), "dataset": dataset.identity(), "settings": settings.model_dump(),
           "code": code_sha256()}  # chunks made by other code (an upgrade mid-run) are not resumed into this run
    folder = Path(options.checkpoint_root) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _chunk_file(folder: Path, start: int) -> Path:
    return folder / f"chunk-{start:08d}.npz"


def _resumed_chunk(folder: Path | None, start: int, chunk: np.ndarray, eps: list[float], attacks: AttackSuiteConfig,
                   seed: int) -> AttackOutcomes | None:
    """A chunk's outcomes saved by an earlier, interrupted run of the same evaluation, if complete and of these points."""
    path = None if folder is None else _chunk_file(folder, start)
    if path is None or not path.is_file():
        return None
    try:
        saved = load_outcomes(path)
    except (IrobError, TypeError):
        return None
    same = np.array_equal(saved.indices, chunk) and saved.eps == eps and saved.seed == seed and saved.config == attacks
    return saved if same and saved.tallies is not None else None


def _warnings_as_flags(report: ValidationReport) -> list[SanityFlag]:
    """Validation warnings (softmax outputs, masked gradients) travel with the result as flags."""
    return [SanityFlag(name=f"{VALIDATION_FLAG_PREFIX}{c.name}", message=c.message) for c in report.warnings]
