"""The append-only audit log: probes, revocations, anything an admin should be able to review.

Append-only is enforced twice: the ORM refuses to update or delete an ``AuditEvent``, and on
SQLite and Postgres a trigger makes the database itself refuse, so neither a bug nor a stray
``session.execute(update(...))`` can rewrite history.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    event,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from aarlab.store.db import Base, append_only


class AuditEvent(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    researcher_id: Mapped[int | None] = mapped_column(
        ForeignKey("researchers.id"), nullable=True, index=True)
    details: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)

    def as_dict(self) -> dict:
        return {"id": self.id, "created_at": self.created_at, "kind": self.kind,
                "researcher_id": self.researcher_id, "details": self.details}


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse(_mapper, _conn, target) -> None:  # noqa: ANN001
    raise AppendOnlyError(f"audit log is append-only (event {target.id})")


append_only(AuditEvent.__table__)

def append(session: Session, kind: str, researcher_id: int | None = None, **details) -> AuditEvent:
    """Add one event to the current transaction; it commits (or not) with the change it records."""
    ev = AuditEvent(created_at=datetime.now(UTC), kind=kind, researcher_id=researcher_id,
                    details=details)
    session.add(ev)
    session.flush()
    return ev


def events(session: Session, kind: str | None = None, limit: int = 500) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if kind:
        stmt = stmt.where(AuditEvent.kind == kind)
    return list(session.scalars(stmt))
