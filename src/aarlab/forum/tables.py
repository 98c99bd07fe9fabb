"""Forum and snapshot tables.

History is append-only: a finding's text lives in ``finding_revisions`` (one row per edit) and
its comments in ``forum_comments``; on SQLite and Postgres triggers make the database refuse to
update or delete either, as the audit log does. The ``findings`` row is the post's *head*: the
latest revision copied for fast listing and search, plus counters and the admin's hidden flag.

Search: on SQLite an FTS5 table ``findings_fts`` (rowid = finding id) that the service rewrites
in the same transaction as each revision; on Postgres a GIN index over ``to_tsvector`` of the
head's text, so no second table to keep in sync.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

import aarlab.scoring.tables  # noqa: F401  (registers ``submissions`` for the foreign keys)
import aarlab.store.identity  # noqa: F401  (registers ``researchers``)
from aarlab.store.db import Base, append_only

KINDS = ("result", "hypothesis", "insight", "error")


class Snapshot(Base):
    """A workspace archive, content-addressed: ``id`` is the sha256 of its bytes.

    The bytes live on disk (``Settings.snapshots_dir``), not in the DB: they are immutable and
    can be 20 MB each, and keeping them out keeps the SQLite file, its WAL and its backups small.
    """

    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    uploader_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False,
                                             index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("snapshots.id"), nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    n_files: Mapped[int] = mapped_column(Integer, nullable=False)
    unpacked_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    files: Mapped[list] = mapped_column(JSON, nullable=False)  # [[path, size], ...], files only
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SnapshotHolder(Base):
    """A researcher who uploaded these bytes. Snapshots are content-addressed, so identical
    uploads are one row whose ``uploader_id`` is the first; each later uploader is listed here.
    Only a holder may say a snapshot produced its submission: citing someone else's code would
    list one's results under it, and have the audit and the replication read that code."""

    __tablename__ = "snapshot_holders"

    snapshot_id: Mapped[str] = mapped_column(ForeignKey("snapshots.id"), primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), primary_key=True)


def holds_snapshot(s, researcher_id: int, snapshot_id: str) -> bool:  # noqa: ANN001
    """Whether ``researcher_id`` uploaded the snapshot ``snapshot_id`` (first or later)."""
    snap = s.get(Snapshot, snapshot_id)
    if snap is None:
        return False
    return snap.uploader_id == researcher_id or \
        s.get(SnapshotHolder, (snapshot_id, researcher_id)) is not None


class SnapshotLink(Base):
    """"This snapshot produced that submission", declared after the fact by its author.

    A submission made with ``snapshot_id`` carries the link itself (``submissions.snapshot_id``);
    this table holds links added later, at most one per submission.
    """

    __tablename__ = "snapshot_links"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(ForeignKey("snapshots.id"), nullable=False,
                                             index=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Finding(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    author_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False)
    task: Mapped[str | None] = mapped_column(String(64), nullable=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"),
                                                      nullable=True)
    snapshot_id: Mapped[str | None] = mapped_column(ForeignKey("snapshots.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Head: a copy of the latest revision.
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    tags: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    tags_text: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    # Counters kept by the service in the transaction that changes them.
    score: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_comments: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    hidden: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    __table_args__ = (
        Index("ix_findings_kind_created", "kind", "created_at"),
        Index("ix_findings_task_created", "task", "created_at"),
        Index("ix_findings_author", "author_id"),
        Index("ix_findings_score", "score"),
    )


class FindingRevision(Base):
    __tablename__ = "finding_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    author_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False,
                                           index=True)  # the text quota sums by author
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    tags: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (UniqueConstraint("finding_id", "number"),)


class FindingTag(Base):
    """Tags of each finding's head, one row per tag, for the tag filter (an index, not history)."""

    __tablename__ = "finding_tags"

    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class Comment(Base):
    __tablename__ = "forum_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), nullable=False,
                                            index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False,
                                           index=True)  # the text quota sums by author
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Vote(Base):
    """One row per (finding, researcher): the primary key is the one-vote rule."""

    __tablename__ = "forum_votes"

    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), primary_key=True)
    value: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # +1 or -1
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# --- database-side guarantees ---------------------------------------------------------------

for _table in (FindingRevision.__table__, Comment.__table__):
    append_only(_table)

FTS_TABLE = "findings_fts"
event.listen(Finding.__table__, "after_create", DDL(
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    "title, body, tags, tokenize='porter unicode61')").execute_if(dialect="sqlite"))
# aarlab.forum.search builds this same expression, so Postgres can use the index.
PG_FULLTEXT = "to_tsvector('english', title || ' ' || body || ' ' || tags_text)"
event.listen(Finding.__table__, "after_create", DDL(
    f"CREATE INDEX IF NOT EXISTS ix_findings_fulltext ON findings USING gin ({PG_FULLTEXT})"
).execute_if(dialect="postgresql"))
