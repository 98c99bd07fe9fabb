"""The lab's one clock: aware UTC datetimes, and a fix for the naive ones SQLite hands back."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime | None) -> datetime | None:
    # SQLite returns datetimes naive; everything the store writes is UTC.
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)
