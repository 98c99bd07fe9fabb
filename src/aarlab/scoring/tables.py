"""The submissions table: every scored prediction vector, its scores on both parts, and what the
researcher was told. The leaderboard and budgets are queries over it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    case,
)
from sqlalchemy.orm import Mapped, mapped_column

from aarlab.store.db import Base


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False)
    task: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    n_rows: Mapped[int] = mapped_column(Integer, nullable=False)
    # ``Scorer.fingerprint`` of the build it was scored on (NULL: stored before it was kept;
    # ``aarlab.scoring.builds`` says when such a row still counts).
    build_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    predictions: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # probes.pack
    method: Mapped[str | None] = mapped_column(String(500), nullable=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Weak-teacher seeds the researcher said it used; replication runs on others (None: unknown).
    seeds: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)

    acc_test: Mapped[float] = mapped_column(Float, nullable=False)
    acc_feedback: Mapped[float] = mapped_column(Float, nullable=False)
    acc_final: Mapped[float] = mapped_column(Float, nullable=False)
    pgr_test: Mapped[float] = mapped_column(Float, nullable=False)
    pgr_feedback: Mapped[float] = mapped_column(Float, nullable=False)
    pgr_final: Mapped[float] = mapped_column(Float, nullable=False)

    released_pgr: Mapped[float | None] = mapped_column(Float, nullable=True)
    new_best: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_probe: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    probe_of: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), nullable=True)
    # An exact copy (``probe_of`` set, not a probe) of a submission the Ladder released, or of
    # such a copy: only then is its ``released_pgr`` a score it earned. A copy of an unreleased
    # submission repeats what that one's author was told, often another researcher's release.
    # (NULL: stored before this was kept; read as no.)
    repeats_release: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=False)

    __table_args__ = (
        Index("ix_submissions_researcher_time", "researcher_id", "created_at"),
        Index("ix_submissions_task_researcher", "task", "researcher_id"),
    )


# A researcher's own Ladder releases: an answer that only repeats an earlier release (a
# researcher with none is answered with the lab's best) must not count as theirs.
RELEASED_PGR = case((Submission.new_best, Submission.released_pgr))
