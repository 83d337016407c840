"""`runs verify`: re-evaluate a random sample of a stored run's examples here and test, example by example, whether the
stored outcomes claim more than the submission achieves (the gate's one-sided paired McNemar test, gate/compare.py).

Imports are checked for consistency with their outcomes file; only a re-evaluation shows the outcomes are real.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irob_bench.artifacts import sha256_file
from irob_bench.errors import IrobError
from irob_bench.gate.baseline import load_baseline
from irob_bench.gate.compare import MetricComparison, compare_metrics
from irob_bench.gate.outcomes import PerExample
from irob_bench.gate.settings import GateOptions, plan_run
from irob_bench.import_checks import first_difference, known_card
from irob_bench.isolation.sandbox import evaluate_isolated
from irob_bench.leaderboard.store import Verification
from irob_bench.results import SubmissionRecord


@dataclass(frozen=True)
class SpotCheck:
    """The verdict stored with the run, every metric's paired comparison, and settings this version reads differently."""

    verification: Verification
    metrics: list[MetricComparison]
    notes: list[str]


def check_submission_file(record: SubmissionRecord, path: Path) -> None:
    """The file (and each weights file beside it) must be byte for byte the one the run evaluated."""
    if not path.is_file():
        raise IrobError(f"submission file not found: {path}")
    if sha256_file(path) != record.file_sha256:
        raise IrobError(f"{path} is not the submission of this run (sha256 differs from {record.file_sha256[:12]})")
    for relative, digest in record.weights_sha256.items():
        weights = path.resolve().parent / relative
        if not weights.is_file() or sha256_file(weights) != digest:
            raise IrobError(f"weights {relative} beside {path.name} are missing or differ from the run's")


def sample(indices: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n of the run's test indices drawn without replacement (all of them if it has fewer), ascending."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.asarray(indices, dtype=np.int64), size=min(n, len(indices)), replace=False))


def draw_seed(seed: int | None) -> int:
    """`seed`, or when it is None one drawn from the operating system's randomness (never the clock)."""
    return secrets.randbelow(2**31) if seed is None else seed


def spot_check(
    run_id: int, db_url: str | None, submission: Path, n: int, *, seed: int | None = None,
    options: GateOptions | None = None,
) -> SpotCheck:
    """Re-evaluate `n` random examples of run `run_id` with its settings and compare them, paired, with its outcomes.
    Without a `seed` the sample is drawn afresh (draw_seed): a fixed default would let a forger make exactly the
    points it knows will be checked honest. The seed used is kept with the verdict."""
    options = options or GateOptions()
    seed = draw_seed(seed)
    baseline = load_baseline(str(run_id), db_url)
    result = baseline.result
    card = known_card(result)
    check_submission_file(result.submission, submission)
    chosen = sample(baseline.outcomes.indices, n, seed)
    plan, notes = plan_run(result, options, card)
    plan = plan.model_copy(update={"indices": tuple(int(i) for i in chosen), "n_examples": len(chosen)})
    evaluation = evaluate_isolated(submission, plan, options.isolation)
    where = first_difference(result.submission.metadata.model_dump(mode="json"),
                             evaluation.result.submission.metadata.model_dump(mode="json"))  # fmt: skip
    if where is not None:
        raise IrobError(f"runs verify: the run says metadata.{where[0]} = {where[1]!r}, the submission file says "
                        f"{where[2]!r}: the row does not describe this submission")
    eps = list(result.settings.eps)
    new = PerExample.from_outcomes(evaluation.outcomes, evaluation.outcomes.indices, eps)
    metrics = compare_metrics(
        baseline.outcomes.restrict(chosen, eps), new.restrict(chosen, eps), options.tolerance_pp, options.alpha
    )
    worst = min(metrics, key=lambda m: (m.verdict == "pass", m.p_value))
    verification = Verification(
        verdict="disputed" if worst.verdict == "regression" else "verified",
        n=len(chosen),
        seed=seed,
        checked_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        detail=f"{worst.label}: stored {worst.baseline:.1%}, re-evaluated {worst.new:.1%} (p = {worst.p_value:.3g})",
    )
    return SpotCheck(verification=verification, metrics=metrics, notes=notes)
