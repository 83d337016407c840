"""Saving an evaluation: per-example outcomes first, then the JSON and/or one leaderboard transaction."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from irob_bench.artifacts import atomic_write_text
from irob_bench.attacks.outcomes import save_outcomes
from irob_bench.common import user_dir
from irob_bench.errors import IrobError
from irob_bench.evaluate import Evaluation
from irob_bench.leaderboard.store import Provenance, SaveOutcome, Store
from irob_bench.results import EvaluationResult


def outcomes_dir(db_url: str) -> Path:
    """Where per-example outcomes of stored runs go: beside a SQLite file, else in the user data folder."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).expanduser().resolve().parent / "outcomes"
    return user_dir("data", "outcomes")


def persist(
    evaluation: Evaluation,
    *,
    json_path: str | Path | None = None,
    store: Store | None = None,
    provenance: Provenance = "evaluated",
) -> tuple[EvaluationResult, SaveOutcome | None]:
    """Write outcomes (`JSON.outcomes.npz`, or the store's outcomes folder), then the JSON, then the run row.

    Every file is written atomically and the row in one transaction, so a crash leaves no partial run.
    """
    result = evaluation.result
    if result.shard is not None and store is not None:
        raise IrobError(result.shard.not_a_run())
    if json_path is not None:
        outcomes = Path(f"{json_path}.outcomes.npz")
    elif store is not None:
        outcomes = outcomes_dir(store.url.render_as_string(hide_password=False)) / f"{result.fingerprint()}.npz"
    else:
        return result, None
    save_outcomes(evaluation.outcomes, outcomes)
    result = result.model_copy(update={"outcomes_file": str(outcomes.resolve())})
    if json_path is not None:
        atomic_write_text(json_path, result.model_dump_json(indent=2) + "\n")
    return result, (store.save(result, provenance) if store is not None else None)
