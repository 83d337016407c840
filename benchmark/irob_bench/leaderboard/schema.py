"""ORM models of the leaderboard database: submissions, runs and per-eps metrics (the current schema layout).

The tables themselves are created and upgraded by irob_bench.leaderboard.migrations, never by
`create_all`; a test checks that a migrated database matches these models column for column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

HASH = String(64)


class Base(DeclarativeBase):
    """Declarative base of the leaderboard models."""


class SubmissionRow(Base):
    """One submission: a name plus the exact plugin file and weights it was evaluated with."""

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("name", "file_sha256", "weights_key", name="uq_submission_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    file_sha256: Mapped[str] = mapped_column(HASH)
    weights_key: Mapped[str] = mapped_column(HASH, doc="sha256 of the canonical JSON of weights_sha256")
    weights_sha256: Mapped[dict[str, str]] = mapped_column(JSON)
    authors: Mapped[list[str]] = mapped_column(JSON)
    training: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    paper_url: Mapped[str | None] = mapped_column(Text)
    randomized: Mapped[bool] = mapped_column(Boolean)
    target_datasets: Mapped[list[str]] = mapped_column(JSON)

    runs: Mapped[list[RunRow]] = relationship(back_populates="submission")


class RunRow(Base):
    """One evaluation; `fingerprint` (EvaluationResult.fingerprint) makes a re-run of the same thing recognisable."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(HASH, unique=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="RESTRICT"), index=True)
    dataset_name: Mapped[str] = mapped_column(String(80), index=True)
    dataset_version: Mapped[str] = mapped_column(String(40))
    generator_sha256: Mapped[str | None] = mapped_column(HASH)
    latents_sha256: Mapped[str | None] = mapped_column(HASH)
    labels_sha256: Mapped[str | None] = mapped_column(HASH)
    images_sha256: Mapped[str | None] = mapped_column(HASH)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_examples: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    clean_accuracy: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, doc="UTC, naive")
    irob_bench_version: Mapped[str] = mapped_column(String(40))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the full EvaluationResult as JSON")
    outcomes_file: Mapped[str | None] = mapped_column(Text)
    provenance: Mapped[str] = mapped_column(String(16), server_default="evaluated", doc="'evaluated' here or 'imported'")
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="the latest `runs verify` outcome")

    submission: Mapped[SubmissionRow] = relationship(back_populates="runs")
    eps_metrics: Mapped[list[EpsMetricRow]] = relationship(
        back_populates="run", order_by="EpsMetricRow.eps", cascade="all, delete-orphan"
    )


class EpsMetricRow(Base):
    """The numbers of one run at one eps (fractions in [0, 1]; null where the result leaves them out)."""

    __tablename__ = "eps_metrics"
    __table_args__ = (UniqueConstraint("run_id", "eps", name="uq_eps_metrics_run_eps"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    eps: Mapped[float] = mapped_column(Float)
    robust_accuracy_pgd: Mapped[float] = mapped_column(Float)
    robust_accuracy_in_distribution: Mapped[float | None] = mapped_column(Float)
    ceiling_classifier: Mapped[float | None] = mapped_column(Float)
    ceiling_dataset_overall: Mapped[float | None] = mapped_column(Float)
    ceiling_dataset_per_class: Mapped[float | None] = mapped_column(Float)
    gap: Mapped[float | None] = mapped_column(Float)
    certified_accuracy: Mapped[float | None] = mapped_column(Float)
    certified_reason: Mapped[str | None] = mapped_column(Text)

    run: Mapped[RunRow] = relationship(back_populates="eps_metrics")
