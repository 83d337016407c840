"""Saving an evaluation: per-example outcomes first, then the JSON and/or one leaderboard transaction."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from irob_bench import datasets
from irob_bench.artifacts import atomic_write_text, sha256_file
from irob_bench.attacks.outcomes import save_outcomes
from irob_bench.common import user_dir
from irob_bench.errors import IrobError
from irob_bench.evaluate import Evaluation
from irob_bench.leaderboard.store import Provenance, SaveOutcome, Store
from irob_bench.results import DatasetRecord, EvaluationResult


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
    """Write outcomes, then the JSON and/or the run row: the JSON points at its own `JSON.outcomes.npz` (they travel
    together), a stored row at the store's copy in its outcomes folder (so moving the JSON cannot orphan the row).

    Every file is written atomically and the row in one transaction, so a crash leaves no partial run.
    """
    result = evaluation.result
    if result.shard is not None and store is not None:
        raise IrobError(result.shard.not_a_run())
    written = result
    if json_path is not None:
        written = _with_outcomes(evaluation, Path(f"{json_path}.outcomes.npz"))
        atomic_write_text(json_path, written.model_dump_json(indent=2) + "\n")
    if store is None:
        return written, None
    existing = store.find(result.fingerprint())
    if existing is not None:  # never touch a stored run's outcomes: its row's numbers were checked against them
        try:
            saved = store.save(result, provenance, rebound=bounded_by_shipped_card(result))
        except IrobError:  # e.g. a lock held past the busy timeout: the run is stored, only its ceilings wait
            saved = SaveOutcome(run_id=existing, created=False)
        return store.get(saved.run_id), saved
    url = store.url.render_as_string(hide_password=False)
    stored = _stored_outcomes(evaluation, outcomes_dir(url))
    try:
        return stored, store.save(stored, provenance)
    except IrobError as exc:  # e.g. a lock held past the busy timeout: the evaluation is not lost with the row
        raise _kept(exc, evaluation, json_path) from None


def open_store(url: str | None, evaluation: Evaluation, json_path: str | Path | None) -> Store:
    """The leaderboard to store a finished evaluation in. Opening it may upgrade its schema, which needs the write
    lock: if that fails (a lock held past the busy timeout), the result is kept first and the error says where."""
    try:
        return Store(url)
    except IrobError as exc:
        if json_path is not None:
            persist(evaluation, json_path=json_path)
        raise _kept(exc, evaluation, json_path) from None


def _kept(exc: IrobError, evaluation: Evaluation, json_path: str | Path | None) -> IrobError:
    """The one-line error of a result that could not be stored, kept in its JSON file or the unsaved folder."""
    kept = Path(json_path) if json_path is not None else _keep_unsaved(evaluation)
    return IrobError(f"{exc}; nothing was stored, and the result is kept in {kept}: `irob-bench runs import {kept}` "
                     "stores it")


def bounded_by_shipped_card(result: EvaluationResult) -> bool:
    """Whether the result's ceilings rest on the Lipschitz section of the card this irob-bench ships under its name and
    version: only those replace a stored run's (not a card file given with --dataset, nor another install's)."""
    name = result.dataset.name
    if name not in datasets.available():
        return False
    return DatasetRecord.of_card(datasets.load_card(name)) == result.dataset  # identity and Lipschitz record alike


def _keep_unsaved(evaluation: Evaluation) -> Path:
    """Write a result that could not be stored (with its outcomes beside it) where `runs import` can take it later."""
    path = user_dir("data", "unsaved", f"{evaluation.result.fingerprint()}.json")
    kept = _with_outcomes(evaluation, Path(f"{path}.outcomes.npz"))
    atomic_write_text(path, kept.model_dump_json(indent=2) + "\n")
    return path


def _stored_outcomes(evaluation: Evaluation, folder: Path) -> EvaluationResult:
    """Save the outcomes of a run about to be stored as FOLDER/<fingerprint>-<first 12 hex of the file's sha256>.npz
    and return its result pointing there. Named by content, a stored file is never replaced by other bytes: two
    boards sharing a folder (SQLite files side by side), or the same run evaluated on another machine, each keep the
    outcomes their rows were checked against."""
    fingerprint = evaluation.result.fingerprint()
    staging = folder / f".{fingerprint}.{os.getpid()}.npz"
    save_outcomes(evaluation.outcomes, staging)
    final = folder / f"{fingerprint}-{sha256_file(staging)[:12]}.npz"
    os.replace(staging, final)  # the same bytes if it is there already
    return evaluation.result.model_copy(update={"outcomes_file": str(final.resolve())})


def _with_outcomes(evaluation: Evaluation, path: Path) -> EvaluationResult:
    """Save the evaluation's outcomes to `path` and return its result pointing there."""
    save_outcomes(evaluation.outcomes, path)
    return evaluation.result.model_copy(update={"outcomes_file": str(path.resolve())})
