"""The leaderboard database: save evaluation results (one transaction each, deduplicated), read them back, list rows.

The database is any SQLAlchemy URL; by default a SQLite file (see `default_db_url`). SQLite connections run
with foreign keys on, WAL journaling and synchronous=FULL, and writes take the write lock up front
(BEGIN IMMEDIATE), so a killed process leaves either a whole run or none of it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from irob_bench.common import FrozenModel, field_error, same_eps, user_dir
from irob_bench.errors import IrobError
from irob_bench.leaderboard import migrations
from irob_bench.leaderboard.migrations import NOT_CERTIFIED_BEFORE
from irob_bench.leaderboard.schema import EpsMetricRow, RunRow, SubmissionRow
from irob_bench.metrics import rebounded
from irob_bench.results import BOUND_FIELDS, EpsMetrics, EvaluationResult, SanityFlag, SubmissionRecord, created_utc
from irob_bench.user_text import is_index

DB_ENV = "IROB_BENCH_DB"
_WRITE = "irob_write"  # execution option: this transaction writes, so take SQLite's write lock at BEGIN


def default_db_url() -> str:
    """$IROB_BENCH_DB, else SQLite at the irob-bench data folder (common.user_dir) / leaderboard.db."""
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    return f"sqlite:///{user_dir('data', 'leaderboard.db')}"


class SaveOutcome(FrozenModel):
    """What `Store.save` did: the run's id, whether it was new (False: the same fingerprint was stored already) and
    whether the stored run took the saved result's ceilings (the same measurements bounded from another card)."""

    model_config = ConfigDict(frozen=True)

    run_id: int
    created: bool
    rebounded: bool = False

    def summary(self, label: str) -> str:
        """One line for the user: where the run is, and what saving it changed."""
        if self.created:
            return f"stored as run {self.run_id} ({label})"
        change = "; its ceilings now rest on this result's Lipschitz record" if self.rebounded else ""
        return f"already in the leaderboard as run {self.run_id} ({label}){change}"


Provenance = Literal["evaluated", "imported"]  # scored by this irob-bench, or result files checked by `runs import` / `runs merge`


class Verification(BaseModel):
    """A run's `runs verify` record: a random sample re-evaluated here and paired with the stored outcomes. Checks add
    up and a dispute stays: the verdict is "disputed" once any check disputed the run, and n, seed, checked_at and
    detail describe the latest disputing check (else the latest check), so repeating `runs verify` until a sample
    happens to agree cannot clear a run."""

    verdict: Literal["verified", "disputed"]
    n: int = Field(ge=1, description="examples re-evaluated")
    seed: int = Field(description="seed of the sample")
    checked_at: str = Field(description="ISO-8601, UTC")
    detail: str = Field(description="one line: the metric that disagreed most, its drop and p-value")
    checks: int = Field(1, ge=1, description="`runs verify` checks made on this run")
    disputed_checks: int = Field(0, ge=0, description="how many of them disputed it")

    @model_validator(mode="before")
    @classmethod
    def _one_check(cls, data: Any) -> Any:
        """A single check, or a record stored before checks were counted, counts its own verdict."""
        if isinstance(data, dict) and "disputed_checks" not in data:
            return {**data, "disputed_checks": int(data.get("verdict") == "disputed")}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Verification:
        if self.disputed_checks > self.checks or (self.verdict == "disputed") != (self.disputed_checks > 0):
            raise ValueError(f"verdict {self.verdict} with {self.disputed_checks} of {self.checks} checks disputed")
        return self

    def after(self, check: Verification) -> Verification:
        """This record with one more check added."""
        disputed = self.disputed_checks + check.disputed_checks
        shown = check if check.verdict == "disputed" or self.verdict == "verified" else self
        return shown.model_copy(update={"checks": self.checks + check.checks, "disputed_checks": disputed,
                                        "verdict": "disputed" if disputed else "verified"})  # fmt: skip

    def summary(self) -> str:
        """'verified (n=100)', 'verified 3 times (n=100)', 'disputed in 1 of 3 checks (n=100)'."""
        if self.verdict == "disputed":
            times = "" if self.checks == 1 else f" in {self.disputed_checks} of {self.checks} checks"
        else:
            times = "" if self.checks == 1 else f" {self.checks} times"
        return f"{self.verdict}{times} (n={self.n})"


# One run's numbers at one eps as stored in eps_metrics: every field of results.EpsMetrics but the
# free-text ceiling_reasons (derived, so the two cannot drift apart).
EPS_FIELDS = tuple(name for name in EpsMetrics.model_fields if name != "ceiling_reasons")
EpsValues = create_model(
    "EpsValues",
    __config__=ConfigDict(frozen=True),
    __doc__="One run's numbers at one eps (fractions; None where the result has none).",
    **{name: (field.annotation, field) for name, field in EpsMetrics.model_fields.items() if name in EPS_FIELDS},
)


class LeaderboardRow(BaseModel):
    """One stored run as the leaderboard shows it."""

    model_config = ConfigDict(frozen=True)

    run_id: int
    submission_id: int = Field(description="the submission (name, plugin file and weights) the run evaluated: a "
                                           "table ranks one run per submission")  # fmt: skip
    submission: str
    training: str
    dataset: str
    dataset_version: str
    clean_accuracy: float
    n_examples: int
    created_at: datetime = Field(description="UTC")
    fingerprint: str
    attack_preset: str = Field(description="the attack preset the run used; tables never mix presets")
    provenance: Provenance = "evaluated"
    verification: Verification | None = None
    flags: list[SanityFlag] = Field(default_factory=list, description="the run's sanity flags (results.flags)")
    per_eps: list[EpsValues]  # type: ignore[valid-type]

    def at(self, eps: float) -> EpsValues | None:  # type: ignore[valid-type]
        """The values at one eps, or None if this run did not evaluate it."""
        return next((v for v in self.per_eps if same_eps(v.eps, eps)), None)


LEGACY_PRESET = "pgd-2x40"  # runs made before the presets (irob-bench < 0.2): PGD-L2, 2 restarts x 40 steps


def attack_preset(attacks: dict[str, Any]) -> str:
    """The preset recorded in a result's attack settings (runs from before presets: LEGACY_PRESET); a run made with
    an earlier definition of a preset is labelled `name@fingerprint` of its settings, so that a preset whose budgets
    changed between releases never puts old and new runs in one ranked table; a custom configuration is always
    `custom@fingerprint`, so that only runs attacked exactly alike share a table (a 1-step attack is not ranked
    against a thorough one)."""
    from irob_bench.attacks.config import AttackSuiteConfig
    from irob_bench.attacks.presets import PRESETS, read_config

    name = str(attacks.get("preset", LEGACY_PRESET))
    if name not in PRESETS and name != "custom":
        return name
    repeated = set(_REPEATED)
    settings = {k: v for k, v in attacks.items() if k in AttackSuiteConfig.model_fields or k == "pgd"}
    try:
        recorded = read_config(settings).model_dump(exclude=repeated)
    except ValidationError:  # settings of a release whose fields we no longer know: never the current preset
        recorded = {k: v for k, v in settings.items() if k not in repeated}
    dumped = json.dumps(recorded, sort_keys=True)
    if name in PRESETS and dumped == _preset_settings(name):
        return name
    return f"{name}@{hashlib.sha256(dumped.encode()).hexdigest()[:8]}"


_REPEATED = frozenset({"eot_samples", "verify_draws"})  # set for randomized models on top of any preset


@functools.lru_cache(maxsize=None)
def _preset_settings(name: str) -> str:
    """The current definition of preset `name` as JSON, dumped once per process (presets are frozen)."""
    from irob_bench.attacks.presets import PRESETS

    return json.dumps(PRESETS[name].model_dump(exclude=set(_REPEATED)), sort_keys=True)


def normalize_url(url: str) -> URL:
    """Parse a database URL; a bare path (no '://') means a SQLite file. Bad URLs become IrobError."""
    if not url.strip():
        raise IrobError("the database URL is empty (an unset variable?); give a URL or a SQLite file path")
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and (parsed.database or "").startswith("~"):
            parsed = parsed.set(database=str(Path(parsed.database).expanduser()))  # as its outcomes folder reads it
        return parsed
    except (ArgumentError, ValueError) as exc:
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # as every other message shows it: no password
        raise IrobError(f"bad database URL {shown!r}: {str(exc).replace(url, shown)}") from None


def _sqlite_engine_setup(engine: Engine) -> None:
    """Crash-safe SQLite: foreign keys, WAL, synchronous FULL, real BEGIN (IMMEDIATE for writes)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (pysqlite defers it otherwise)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        tables = {row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        ours = not tables or migrations.VERSION_TABLE in tables  # another program's file is refused, never changed
        for pragma in ("foreign_keys=ON", *(("journal_mode=WAL",) if ours else ()), "synchronous=FULL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _weights_key(weights: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(weights, sort_keys=True).encode()).hexdigest()


def _eps_row(metrics: EpsMetrics) -> EpsMetricRow:
    """The stored numbers; a result made before certification gets the reason it has no certified accuracy."""
    row = EpsMetricRow(**{name: getattr(metrics, name) for name in EPS_FIELDS})
    if row.certified_accuracy is None and row.certified_reason is None:
        row.certified_reason = NOT_CERTIFIED_BEFORE
    return row


def _rebound(run: RunRow, fresh: EvaluationResult) -> bool:
    """Give a stored run the bounds of `fresh`, the same evaluation saved again (metrics.rebounded); True if anything
    changed. A stored result this release cannot read is left as it is. The caller's transaction locks the row."""
    try:
        updated = rebounded(EvaluationResult.model_validate(run.result), fresh)
    except ValidationError:
        return False
    if updated is None:
        return False
    run.result = updated.model_dump(mode="json")
    for row in run.eps_metrics:
        bounded = updated.metrics.at(row.eps)
        for name in BOUND_FIELDS:
            if name in EPS_FIELDS:  # every bound but ceiling_reasons, which lives in the result only
                setattr(row, name, getattr(bounded, name))
    return True


class Store:
    """A leaderboard database; opening it creates or upgrades the schema (IrobError if it cannot)."""

    def __init__(self, url: str | None = None, *, readonly: bool = False, missing_ok: bool = True) -> None:
        """`readonly`: a SQLite file that does not exist reads as an empty leaderboard and is not created; or, without
        `missing_ok`, is an IrobError (a file the user named that is not there is a typo, not an empty leaderboard)."""
        self.url = normalize_url(default_db_url() if url is None else url)
        self.label = self.url.render_as_string(hide_password=True)
        is_file = self.url.get_backend_name() == "sqlite" and self.url.database not in (None, "", ":memory:")
        engine_url = self.url
        with self._errors():
            if is_file and readonly and not Path(self.url.database).exists():
                if not missing_ok:
                    raise IrobError(f"database {self.label}: no such file (a mistyped --db? a run stored there "
                                    "creates it)")
                engine_url = make_url("sqlite://")  # empty and in memory: nothing is written to disk
            elif is_file:
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_engine(engine_url)
            if self.url.get_backend_name() == "sqlite":
                _sqlite_engine_setup(self._engine)
            self._writer = self._engine.execution_options(**{_WRITE: True})
            try:
                if not (readonly and self._current()):  # a reader of a current schema takes no write lock
                    migrations.upgrade(self._writer)
            except IrobError as exc:  # e.g. a schema newer than this irob-bench: say which database
                raise IrobError(f"database {self.label}: {exc}") from None

    @classmethod
    def reading(cls, url: str | None) -> Store:
        """The leaderboard opened to read runs: the default one (url None) may not exist yet and reads as empty, but a
        SQLite file the user named that does not exist is refused (a typo read as empty looked like lost runs)."""
        return cls(url, readonly=True, missing_ok=url is None)

    def _current(self) -> bool:
        """The schema is this irob-bench's (read in a plain transaction, so a writer's lock does not block it)."""
        with self._engine.connect() as conn:
            return migrations.current_version(conn) == migrations.SCHEMA_VERSION

    @classmethod
    def check_writable(cls, url: str | None) -> None:
        """Before long work whose result will be stored: the database opens (a bad URL or a foreign file is one line)
        and, for a SQLite file, its file or the folder it will be made in can be written. Creates nothing."""
        opened = cls(url, readonly=True)
        opened.close()
        parsed, label = opened.url, opened.label
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise IrobError(f"database {label}: in memory, it would keep nothing; give a file or a server URL")
        if parsed.get_backend_name() != "sqlite":
            return
        path = Path(parsed.database)
        folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
        try:
            if path.exists():
                with open(path, "ab"):
                    pass
            else:
                tempfile.TemporaryFile(dir=folder).close()
        except OSError as exc:
            raise IrobError(f"database {label}: cannot be written ({exc.strerror or exc}); nothing was run") from None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn database failures (missing driver, unreadable or non-database file) into one-line IrobErrors."""
        try:
            yield
        except NoSuchModuleError as exc:
            raise IrobError(f"database {self.label}: unsupported URL ({exc})") from None
        except ImportError as exc:  # a supported dialect whose driver is not installed
            raise IrobError(f"database {self.label}: its driver is not installed ({exc.name or exc}; for PostgreSQL: "
                            "pip install 'irob-bench[postgres]')") from None
        except OverflowError as exc:
            raise IrobError(f"database {self.label}: a number is too large to store ({exc})") from None
        except (SQLAlchemyError, OSError) as exc:
            detail = getattr(exc, "orig", None) or exc
            raise IrobError(f"database {self.label}: {str(detail).splitlines()[0]}") from None

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, result: EvaluationResult, provenance: Provenance = "evaluated", *, rebound: bool = False
             ) -> SaveOutcome:
        """Store one result in a single transaction. A result whose fingerprint is stored already is not duplicated;
        with `rebound` (its ceilings are the shipped card's: persist.py decides), the stored run takes its ceilings,
        gaps, "above ceiling" flags and Lipschitz record if it measured exactly the stored numbers."""
        fingerprint = result.fingerprint()
        with self._errors():
            for attempt in range(3):
                try:
                    return self._insert(result, fingerprint, provenance, rebound)
                except IntegrityError:
                    if attempt == 2:
                        raise
                    # A concurrent save of this run, or of its submission row (PostgreSQL: no write lock serialises
                    # the select-then-insert), got there first: the next attempt finds and reuses it.
            raise AssertionError("unreachable")

    def _insert(self, result: EvaluationResult, fingerprint: str, provenance: Provenance, rebound: bool) -> SaveOutcome:
        created_at = created_utc(result.created_at)
        with Session(self._writer) as session, session.begin():
            existing = session.scalar(select(RunRow).where(RunRow.fingerprint == fingerprint).with_for_update())
            if existing is not None:
                return SaveOutcome(run_id=existing.id, created=False, rebounded=rebound and _rebound(existing, result))
            run = RunRow(
                fingerprint=fingerprint,
                submission=self._submission(session, result.submission),
                dataset_name=result.dataset.name,
                dataset_version=result.dataset.version,
                generator_sha256=result.dataset.generator_sha256,
                latents_sha256=result.dataset.latents_sha256,
                labels_sha256=result.dataset.labels_sha256,
                images_sha256=result.dataset.images_sha256,
                settings=result.settings.model_dump(mode="json"),
                n_examples=result.settings.n_examples,
                seed=result.settings.seed,
                clean_accuracy=result.metrics.clean_accuracy,
                created_at=created_at,
                irob_bench_version=result.irob_bench_version,
                result=result.model_dump(mode="json"),
                outcomes_file=result.outcomes_file,
                provenance=provenance,
            )
            session.add(run)
            session.flush()
            for metrics in result.metrics.per_eps:
                run.eps_metrics.append(_eps_row(metrics))
            session.flush()
            return SaveOutcome(run_id=run.id, created=True)

    def record_verification(self, run_id: int, verification: Verification) -> Verification:
        """Add one spot-check to a run's record (one transaction, the row locked while it adds up) and return the
        record: a dispute stays (Verification)."""
        with self._errors(), Session(self._writer) as session, session.begin():
            run = session.get(RunRow, run_id, with_for_update=True)
            if run is None:
                raise IrobError(f"no run with id {run_id} in {self.label}")
            record = verification if run.verification is None else Verification.model_validate(run.verification).after(verification)
            run.verification = record.model_dump(mode="json")
            return record

    def find(self, fingerprint: str) -> int | None:
        """The id of the stored run with this fingerprint, or None."""
        with self._errors(), Session(self._engine) as session:
            return session.scalar(select(RunRow.id).where(RunRow.fingerprint == fingerprint))

    @staticmethod
    def _submission(session: Session, record: SubmissionRecord) -> SubmissionRow:
        """The submissions row for this name + file + weights, added if new."""
        key = _weights_key(record.weights_sha256)
        row = session.scalar(
            select(SubmissionRow).where(
                SubmissionRow.name == record.metadata.name,
                SubmissionRow.file_sha256 == record.file_sha256,
                SubmissionRow.weights_key == key,
            )
        )
        if row is None:
            meta = record.metadata
            row = SubmissionRow(
                name=meta.name,
                file_sha256=record.file_sha256,
                weights_key=key,
                weights_sha256=dict(record.weights_sha256),
                authors=list(meta.authors),
                training=meta.training,
                description=meta.description,
                paper_url=meta.paper_url,
                randomized=meta.randomized,
                target_datasets=list(meta.datasets),
            )
            session.add(row)
            session.flush()
        return row

    def get(self, run_id: int) -> EvaluationResult:
        """The full stored result of one run."""
        with self._errors(), Session(self._engine) as session:
            run = session.get(RunRow, run_id)
            if run is None:
                raise IrobError(f"no run with id {run_id} in {self.label}")
            stored = run.result
        try:
            return EvaluationResult.model_validate(stored)
        except ValidationError as exc:
            raise IrobError(f"run {run_id} in {self.label} does not hold a valid result: {field_error(exc)}") from None

    def rows(self, dataset: str | None = None) -> list[LeaderboardRow]:
        """Every stored run (of the datasets matching `dataset`, a name or a glob such as saturated-cifar-*), oldest
        first, as leaderboard rows."""
        query = (
            select(RunRow)
            .options(selectinload(RunRow.eps_metrics), selectinload(RunRow.submission))
            .order_by(RunRow.created_at, RunRow.id)
        )
        if dataset is not None:  # matched here, case-sensitively: SQLite's LIKE ignores ASCII case, PostgreSQL's does not
            query = query.where(RunRow.dataset_name.in_([n for n in self.datasets() if fnmatch.fnmatchcase(n, dataset)]))
        with self._errors(), Session(self._engine) as session:
            return [
                LeaderboardRow(
                    run_id=run.id,
                    submission_id=run.submission_id,
                    submission=run.submission.name,
                    training=run.submission.training,
                    dataset=run.dataset_name,
                    dataset_version=run.dataset_version,
                    clean_accuracy=run.clean_accuracy,
                    n_examples=run.n_examples,
                    created_at=run.created_at.replace(tzinfo=timezone.utc),
                    fingerprint=run.fingerprint,
                    attack_preset=attack_preset(run.settings.get("attacks", {})),
                    provenance=run.provenance,
                    verification=run.verification,
                    flags=(run.result or {}).get("flags", []),
                    per_eps=[EpsValues(**{name: getattr(m, name) for name in EPS_FIELDS}) for m in run.eps_metrics],
                )
                for run in session.scalars(query)
            ]

    def datasets(self) -> list[str]:
        """The dataset names that have stored runs."""
        with self._errors(), Session(self._engine) as session:
            return list(session.scalars(select(RunRow.dataset_name).distinct().order_by(RunRow.dataset_name)))

    def resolve(self, ref: str | int, dataset: str | None = None) -> Resolved:
        """A run id from a run id or a submission name (its latest run, of `dataset` if given). A name is not owned:
        when different submissions (another file or weights, e.g. an import under someone else's name) share it, the
        answer carries a note naming the run taken and how to choose another."""
        where = f" on dataset {dataset!r}" if dataset else ""
        with self._errors(), Session(self._engine) as session:
            run = session.get(RunRow, int(ref)) if is_index(str(ref)) else None
            if run is not None:
                if dataset is not None and run.dataset_name != dataset:  # not silently ignored
                    raise IrobError(f"run {run.id} is on dataset {run.dataset_name!r}, not {dataset!r}")
                return Resolved(run.id)
            query = (
                select(RunRow.id, RunRow.submission_id, RunRow.provenance, RunRow.created_at, SubmissionRow.file_sha256)
                .join(RunRow.submission)
                .where(SubmissionRow.name == str(ref))
                .order_by(RunRow.created_at.desc(), RunRow.id.desc())
            )
            if dataset is not None:
                query = query.where(RunRow.dataset_name == dataset)
            named = session.execute(query).all()
            stored = [] if named else sorted(session.scalars(select(SubmissionRow.name).distinct()).all())
        if not named:
            shown = ", ".join(stored[:10]) + (f" and {len(stored) - 10} more" if len(stored) > 10 else "")
            raise IrobError(f"no run with id or submission name {str(ref)!r}{where} in {self.label} (submissions: "
                            f"{shown or 'none stored'}; `irob-bench runs list` shows the run ids)")
        latest, submissions = named[0], {run.submission_id for run in named}
        if len(submissions) == 1:
            return Resolved(latest.id)
        return Resolved(latest.id, (
            f"{len(submissions)} different submissions (file or weights) are named {str(ref)!r}{where}; took the latest "
            f"run, {latest.id} ({latest.provenance} {latest.created_at:%Y-%m-%d %H:%M} UTC, file "
            f"{latest.file_sha256[:12]}); give a run id to choose another (`irob-bench runs list`)"
        ))


@dataclass(frozen=True)
class Resolved:
    """The run a reference names, and a note when the reference is a name that different submissions share."""

    run_id: int
    note: str | None = None
