"""Accounting in the store: every model call, and every session it belongs to.

``LlmCall`` is one API call (tokens by kind, dollars, latency); ``LlmSession`` one fresh
conversation (why it ended, its transcript on disk, its totals). Per-researcher totals are sums
over sessions (``aarlab.researchers.llm.accounting``), so nothing is stored twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aarlab.clock import utcnow
from aarlab.store.db import Base


class LlmSession(Base):
    __tablename__ = "llm_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False,
                                               index=True)
    lab_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False)  # 1, 2, … per researcher
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Wall seconds of the session: the research-hours $ per hour is measured against.
    seconds: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    # running, stop (the model ended), turns, budget, deadline, stopped, error
    end_reason: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    turns: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tool_calls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    dollars: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    priced: Mapped[bool] = mapped_column(default=True)  # False: no price known for the model
    transcript_path: Mapped[str] = mapped_column(String(500), nullable=False, default="")


class LlmCall(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("llm_sessions.id"), nullable=False,
                                            index=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), nullable=False)
    turn: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    latency_s: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    model: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    request_id: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    stop_reason: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    dollars: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
