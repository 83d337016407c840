"""Resolve the gate's baseline: a leaderboard run (id or submission name) or a results JSON file, with its outcomes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from irob_bench.attacks.outcomes import load_outcomes
from irob_bench.common import indices_sha256
from irob_bench.errors import IrobError
from irob_bench.gate.outcomes import PerExample
from irob_bench.leaderboard.store import Store
from irob_bench.results import EvaluationResult, read_result_file


@dataclass(frozen=True)
class Baseline:
    """A stored evaluation and its per-example outcomes; `source` says where it came from, `note` which of several
    submissions sharing its name was taken."""

    result: EvaluationResult
    outcomes: PerExample
    source: str
    note: str | None = None


def is_result_file(ref: str) -> bool:
    """True if REF names a results JSON file rather than a run id or submission name."""
    return Path(ref).suffix == ".json" or Path(ref).is_file()


def load_baseline(ref: str, db_url: str | None = None, dataset: str | None = None) -> Baseline:
    """The baseline named by REF: a results JSON file, else a run id or submission name in the leaderboard at `db_url`."""
    if is_result_file(ref):
        return _from_file(Path(ref))
    with Store.reading(db_url) as store:
        resolved = store.resolve(ref, dataset)
        result = store.get(resolved.run_id)
        source = f"run {resolved.run_id} ({store.label})"
    if not result.outcomes_file:
        raise IrobError(f"baseline {source} has no per-example outcomes file; re-run `irob-bench evaluate` to store one")
    return replace(_with_outcomes(result, [Path(result.outcomes_file)], source), note=resolved.note)


def _from_file(path: Path) -> Baseline:
    if not path.exists():
        raise IrobError(f"baseline file not found: {path}")
    result = read_result_file(path)
    candidates = [Path(f"{path}.outcomes.npz")]  # the copy that travels with the JSON (e.g. a CI cache) first
    if result.outcomes_file:
        recorded = Path(result.outcomes_file)
        candidates.append(recorded if recorded.is_absolute() else path.parent / recorded)
    return _with_outcomes(result, candidates, str(path))


def _with_outcomes(result: EvaluationResult, candidates: list[Path], source: str) -> Baseline:
    """Load the first existing outcomes file and check it belongs to `result` (same examples, same eps)."""
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        looked = ", ".join(str(p) for p in candidates)
        raise IrobError(f"baseline {source}: per-example outcomes file not found (looked for {looked})")
    outcomes = load_outcomes(found)
    indices = np.asarray(outcomes.indices, dtype=np.int64)
    if indices_sha256(indices) != result.settings.indices_sha256:
        raise IrobError(f"baseline {source}: outcomes file {found} holds other examples than its result")
    if [round(e, 9) for e in outcomes.eps] != [round(e, 9) for e in result.settings.eps]:
        raise IrobError(f"baseline {source}: outcomes file {found} holds other eps than its result")
    return Baseline(
        result=result,
        outcomes=PerExample.from_outcomes(outcomes, indices, result.settings.eps),
        source=source,
    )
