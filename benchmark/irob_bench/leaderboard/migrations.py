"""Versioned leaderboard schema: an ordered list of migration steps, each applied in its own transaction.

Choice: a small in-house list rather than alembic. The schema is three tables, it must upgrade itself
silently when any user's CLI opens an old file (no separate `alembic upgrade` step, no ini file or
script folder shipped in the package), and alembic would be one more dependency for ~100 lines of code.

Rules: `schema_version` holds one row per applied step (version, applied_at); the database's version is
the largest. A step is frozen once released: it builds its tables from its own Core definitions, never
from the ORM models in schema.py (those describe only the latest layout; a test checks they agree with
a fully migrated database). To change the schema, append a step; never edit an old one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from irob_bench.errors import IrobError

VERSION_TABLE = "schema_version"


@dataclass(frozen=True)
class Migration:
    """One schema step: `apply(connection)` moves a database from version - 1 to `version`."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _version_table(metadata: MetaData) -> Table:
    return Table(
        VERSION_TABLE,
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("applied_at", DateTime, nullable=False),
    )


def _required(**types: Any) -> list[Column]:
    """NOT NULL columns from name=type pairs, in order."""
    return [Column(name, type_, nullable=False) for name, type_ in types.items()]


def _v1_tables(conn: Connection) -> None:
    """Version 1: submissions, runs and eps_metrics with their keys and uniqueness constraints."""
    meta = MetaData()
    sha = String(64)
    Table(
        "submissions",
        meta,
        Column("id", Integer, primary_key=True),
        *_required(name=String(80), file_sha256=sha, weights_key=sha, weights_sha256=JSON),
        *_required(authors=JSON, training=Text, description=Text),
        Column("paper_url", Text),
        *_required(randomized=Boolean, target_datasets=JSON),
        UniqueConstraint("name", "file_sha256", "weights_key", name="uq_submission_identity"),
    )
    Table(
        "runs",
        meta,
        Column("id", Integer, primary_key=True),
        Column("fingerprint", sha, nullable=False, unique=True),
        Column("submission_id", Integer, ForeignKey("submissions.id", ondelete="RESTRICT"), nullable=False),
        *_required(dataset_name=String(80), dataset_version=String(40)),
        *(Column(f"{part}_sha256", sha) for part in ("generator", "latents", "labels", "images")),
        *_required(settings=JSON, n_examples=Integer, seed=Integer, clean_accuracy=Float, created_at=DateTime),
        *_required(irob_bench_version=String(40), result=JSON),
        Column("outcomes_file", Text),
    )
    optional = (
        "robust_accuracy_in_distribution",
        "ceiling_classifier",
        "ceiling_dataset_overall",
        "ceiling_dataset_per_class",
        "gap",
    )
    Table(
        "eps_metrics",
        meta,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        *_required(eps=Float, robust_accuracy_pgd=Float),
        *(Column(name, Float) for name in optional),
        UniqueConstraint("run_id", "eps", name="uq_eps_metrics_run_eps"),
    )
    meta.create_all(conn)


def _v2_indexes(conn: Connection) -> None:
    """Version 2: secondary indexes for the leaderboard's lookups (by name, by dataset, run -> eps rows)."""
    meta = MetaData()
    meta.reflect(conn, only=["submissions", "runs", "eps_metrics"])
    tables = meta.tables
    for table, column in (
        ("submissions", "name"),
        ("runs", "submission_id"),
        ("runs", "dataset_name"),
        ("eps_metrics", "run_id"),
    ):
        Index(f"ix_{table}_{column}", tables[table].c[column]).create(conn)


def _v3_provenance(conn: Connection) -> None:
    """Version 3: where each run's numbers come from (evaluated here / imported) and its latest spot-check."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN provenance VARCHAR(16) DEFAULT 'evaluated' NOT NULL")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN verification JSON")


NOT_CERTIFIED_BEFORE = "not computed: the run was made before irob-bench certified (rerun to certify)"


def _v4_certified(conn: Connection) -> None:
    """Version 4: certified accuracy per eps (a lower bound on robust accuracy), or the reason there is none; runs
    stored before get that reason, so no run shows a silent blank or 0."""
    conn.exec_driver_sql("ALTER TABLE eps_metrics ADD COLUMN certified_accuracy FLOAT")
    conn.exec_driver_sql("ALTER TABLE eps_metrics ADD COLUMN certified_reason TEXT")
    # A bound parameter through SQLAlchemy: the drivers disagree on placeholders (sqlite "?", psycopg "%s").
    conn.execute(text("UPDATE eps_metrics SET certified_reason = :reason"), {"reason": NOT_CERTIFIED_BEFORE})


def _v5_fingerprint(result: dict[str, Any]) -> str:
    """The fingerprint of version 5 (EvaluationResult.fingerprint computes it for new results): submission file and
    weights hashes, the test examples' name, card version and hashes, settings. Version 4 also hashed the Lipschitz
    record, so a result re-bounded by `runs ceilings` became a second run of itself. The settings are read through
    today's model, as fingerprint() reads them (a result jq rewrote before 0.2 spells 2.0 as 2); raw if it cannot."""
    from irob_bench.results import Settings

    dataset, settings = result["dataset"], result["settings"]
    try:
        settings = Settings.model_validate(settings).model_dump(mode="json")
    except ValidationError:
        pass  # no result this release reads has these settings, so no later save can match it anyway
    key = {
        "submission_file": result["submission"]["file_sha256"],
        "weights": result["submission"]["weights_sha256"],
        "dataset": {f: dataset[f] for f in ("name", "version", "generator_sha256", "latents_sha256", "labels_sha256",
                                             "images_sha256")},
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _v5_fingerprints(conn: Connection) -> None:
    """Version 5: every run's fingerprint recomputed without the Lipschitz record. Runs that now coincide are one
    evaluation bounded from different Lipschitz sections: the first stored (earliest created_at, then id: the one
    the leaderboard ranks) takes the fingerprint, and the others keep their old one, so none is lost or merged."""
    runs = Table("runs", MetaData(), Column("id", Integer, primary_key=True), Column("fingerprint", String(64)),
                 Column("result", JSON), Column("created_at", DateTime))
    taken: set[str] = set()
    for run_id, result in conn.execute(select(runs.c.id, runs.c.result).order_by(runs.c.created_at, runs.c.id)).all():
        fingerprint = _v5_fingerprint(result)
        if fingerprint not in taken:
            taken.add(fingerprint)
            conn.execute(update(runs).where(runs.c.id == run_id).values(fingerprint=fingerprint))


MIGRATIONS: list[Migration] = [
    Migration(1, "submissions, runs and eps_metrics tables", _v1_tables),
    Migration(2, "indexes for leaderboard lookups", _v2_indexes),
    Migration(3, "run provenance and spot-check verification", _v3_provenance),
    Migration(4, "certified accuracy per eps", _v4_certified),
    Migration(5, "fingerprints without the Lipschitz record", _v5_fingerprints),
]
SCHEMA_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The schema version of a database: 0 if it is empty; IrobError if it holds tables that are not ours."""
    names = set(inspect(conn).get_table_names())
    if VERSION_TABLE not in names:
        if names:
            raise IrobError(f"not an irob-bench leaderboard database (tables {', '.join(sorted(names))}, no {VERSION_TABLE})")
        return 0
    return int(conn.scalar(select(func.max(_version_table(MetaData()).c.version))) or 0)


UPGRADE_LOCK = 0x1B0B_BE7C  # the PostgreSQL advisory lock a schema upgrade holds: two processes never upgrade at once


def upgrade(engine: Engine, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply every pending step up to `target`, each in its own (write-locked) transaction; return those applied."""
    applied: list[int] = []
    for step in MIGRATIONS[:target]:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE serialises upgrades; this does on PostgreSQL
                conn.execute(text(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})"))
            found = current_version(conn)
            if found > SCHEMA_VERSION:
                raise IrobError(
                    f"leaderboard database has schema version {found}, newer than this irob-bench knows "
                    f"({SCHEMA_VERSION}); upgrade irob-bench to open it"
                )
            if found >= step.version:
                continue
            if found == 0:
                _version_table(MetaData()).create(conn, checkfirst=True)
            step.apply(conn)
            conn.execute(insert(_version_table(MetaData())).values(version=step.version, applied_at=_utcnow()))
            applied.append(step.version)
    return applied


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
