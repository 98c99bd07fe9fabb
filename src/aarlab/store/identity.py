"""Researchers and their bearer tokens.

A token is shown once, at registration, and stored only as its SHA-256. Tokens are 256 random
bits, so a fast hash is enough: there is nothing to brute-force the way there is with passwords,
and lookups stay one indexed query per request. A revoked researcher keeps its row (submissions
and forum posts still point at it) but its token no longer authenticates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from aarlab.clock import utcnow
from aarlab.errors import AarlabError
from aarlab.store.db import Base

TOKEN_PREFIX = "aar_"
# What new_token makes (and no other spelling): a token padded with whitespace that an HTTP
# library strips (U+00A0, U+0085, ...) must not authenticate, or every padding would be a
# request-limit bucket of its own for one researcher.
TOKEN_FORM = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{16,128}")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Researcher(Base):
    __tablename__ = "researchers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "created_at": self.created_at,
                "revoked": not self.active}


class IdentityError(AarlabError):
    status = 422


class ResearcherExists(IdentityError):
    status = 409


class UnknownResearcher(IdentityError):
    status = 404


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise IdentityError(
            f"researcher name {name!r} is not allowed",
            hint="use 1-64 characters: lowercase letters, digits, '_', '.', '-' "
                 "(starting with a letter or digit)")
    return name


def add_researcher(session: Session, name: str) -> tuple[Researcher, str]:
    """Register ``name``; returns the row and the plain token (the only time it exists)."""
    check_name(name)
    if session.scalar(select(Researcher.id).where(Researcher.name == name)) is not None:
        raise ResearcherExists(f"researcher {name!r} already exists",
                            hint="pick another name, or revoke and re-register under a new one")
    token = new_token()
    r = Researcher(name=name, token_hash=hash_token(token), created_at=utcnow())
    session.add(r)
    session.flush()
    return r, token


def authenticate(session: Session, token: str | None) -> Researcher | None:
    """The active researcher holding ``token``, or None (unknown, malformed or revoked)."""
    if not token or not TOKEN_FORM.fullmatch(token):
        return None
    r = session.scalar(select(Researcher).where(Researcher.token_hash == hash_token(token)))
    return r if r is not None and r.active else None


def find_researcher(session: Session, ref: str | int) -> Researcher:
    """By id (int or digits) or by name."""
    ref_s = str(ref)
    stmt = (select(Researcher).where(Researcher.id == int(ref_s)) if ref_s.isdigit()
            else select(Researcher).where(Researcher.name == ref_s))
    r = session.scalar(stmt)
    if r is None:
        raise UnknownResearcher(f"no researcher {ref!r}", hint="list them with the admin API")
    return r


def revoke(session: Session, ref: str | int) -> Researcher:
    r = find_researcher(session, ref)
    if r.revoked_at is None:
        r.revoked_at = utcnow()
    return r


def list_researchers(session: Session) -> list[Researcher]:
    return list(session.scalars(select(Researcher).order_by(Researcher.id)))


def is_admin_token(token: str | None, admin_token: str | None) -> bool:
    """Constant-time comparison; no admin at all when none is configured."""
    if not token or not admin_token:
        return False
    return hmac.compare_digest(token.encode("utf-8"), admin_token.encode("utf-8"))
