"""The lab's own state in the store, so that ``aarlab run --resume`` after a kill -9 continues.

``LabRun`` is one lab; ``LabMember`` one researcher in it (direction, workspace, restarts);
``LabEvent`` an append-only telemetry stream researchers post (experiments, ideas, errors);
``LabNotebook`` the newest published copy of each researcher's notebook (``aarlab.lab.notebooks``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from aarlab.clock import utcnow
from aarlab.store.db import Base


class LabRun(Base):
    __tablename__ = "lab_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    config: Mapped[dict] = mapped_column(JSON, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Wall seconds the lab has been running, summed over resumes; a budget is spent against it.
    elapsed_s: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    report_path: Mapped[str | None] = mapped_column(String(500), nullable=True)


class LabMember(Base):
    __tablename__ = "lab_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab_runs.id"), nullable=False, index=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False)
    policy: Mapped[str] = mapped_column(String(200), nullable=False, default="search")
    direction: Mapped[str] = mapped_column(String(100), nullable=False)
    direction_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    workspace: Mapped[str] = mapped_column(String(500), nullable=False)
    sandboxed: Mapped[bool] = mapped_column(default=True)
    restarts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="starting")


class LabEvent(Base):
    __tablename__ = "lab_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_lab_events_researcher_kind", "researcher_id", "kind"),)


class LabNotebook(Base):
    """Latest wins: a notebook is re-published whole (its newest part) after each round, so
    older copies hold nothing the newest lacks but the lines cut off its front."""

    __tablename__ = "lab_notebooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    # Checked UTF-8 text; a .jsonl one re-serialised line by line from its parsed objects.
    text: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    revisions: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("researcher_id", "name", name="uq_lab_notebooks_name"),)
