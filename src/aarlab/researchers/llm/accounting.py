"""The ledger: records calls and sessions in the store and answers "how much so far".

Budgets are checked against the researcher's totals over *all* its sessions (and over lab
resumes), read back from the store, so a restarted lab cannot spend a budget twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aarlab.clock import utcnow
from aarlab.researchers.llm.providers.base import Usage
from aarlab.researchers.llm.tables import LlmCall, LlmSession
from aarlab.store.db import Store


@dataclass
class Totals:
    sessions: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    dollars: float = 0.0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_read_tokens
                + self.cache_write_tokens)

    @property
    def research_hours(self) -> float:
        return self.seconds / 3600

    @property
    def dollars_per_hour(self) -> float | None:
        return self.dollars / self.research_hours if self.seconds > 0 else None

    def as_dict(self) -> dict:
        return asdict(self) | {"tokens": self.tokens, "research_hours": self.research_hours,
                               "dollars_per_hour": self.dollars_per_hour}


def totals(s: Session, researcher_ids: list[int] | None = None) -> dict[int, Totals]:
    """``{researcher_id: Totals}`` over every session of those researchers (all if None)."""
    q = select(LlmSession.researcher_id, func.count(LlmSession.id), func.sum(LlmSession.turns),
               func.sum(LlmSession.input_tokens), func.sum(LlmSession.output_tokens),
               func.sum(LlmSession.cache_read_tokens), func.sum(LlmSession.cache_write_tokens),
               func.sum(LlmSession.dollars), func.sum(LlmSession.seconds)
               ).group_by(LlmSession.researcher_id)
    if researcher_ids is not None:
        q = q.where(LlmSession.researcher_id.in_(researcher_ids))
    return {rid: Totals(n, calls or 0, i or 0, o or 0, cr or 0, cw or 0, d or 0.0, sec or 0.0)
            for rid, n, calls, i, o, cr, cw, d, sec in s.execute(q)}


class Ledger:
    """One researcher's session in the store; ``record`` after every call."""

    def __init__(self, store: Store, researcher_id: int, lab_id: int | None, provider: str,
                 model: str, priced: bool):
        self.store, self.researcher_id = store, researcher_id
        with store.session() as s:
            number = (s.scalar(select(func.count()).select_from(LlmSession).where(
                LlmSession.researcher_id == researcher_id)) or 0) + 1
            row = LlmSession(researcher_id=researcher_id, lab_id=lab_id, number=number,
                             provider=provider, model=model, priced=priced)
            s.add(row)
            s.flush()
            self.session_id, self.number = row.id, number

    def set_transcript(self, path) -> None:
        with self.store.session() as s:
            s.get(LlmSession, self.session_id).transcript_path = str(path)

    def record(self, turn: int, usage: Usage, dollars: float, *, model: str, request_id: str,
               stop: str, latency_s: float, seconds: float, tool_calls: int) -> None:
        with self.store.session() as s:
            s.add(LlmCall(session_id=self.session_id, researcher_id=self.researcher_id,
                          turn=turn, latency_s=latency_s, model=model[:200],
                          request_id=request_id[:200], stop_reason=stop[:32],
                          input_tokens=usage.input, output_tokens=usage.output,
                          cache_read_tokens=usage.cache_read,
                          cache_write_tokens=usage.cache_write, dollars=dollars))
            row = s.get(LlmSession, self.session_id)
            row.turns = turn
            row.tool_calls += tool_calls
            row.input_tokens += usage.input
            row.output_tokens += usage.output
            row.cache_read_tokens += usage.cache_read
            row.cache_write_tokens += usage.cache_write
            row.dollars += dollars
            row.seconds = seconds

    def close(self, reason: str, seconds: float, error: str = "") -> None:
        with self.store.session() as s:
            row = s.get(LlmSession, self.session_id)
            row.end_reason, row.error, row.seconds = reason, error[:4000], seconds
            row.ended_at = utcnow()


def member_costs(s: Session, members: list[tuple[int, str, str]]) -> list[dict]:
    """One row per LLM researcher ``(researcher_id, policy, name)``: its policy and its totals
    (for tables and JSON). The lab says who its members are (``aarlab.lab.status.lab_costs``)."""
    by_id = totals(s, [rid for rid, _, _ in members])
    priced = dict(s.execute(select(LlmSession.researcher_id, func.min(LlmSession.priced))
                            .group_by(LlmSession.researcher_id)).all())
    return [{"researcher": name, "policy": policy, "priced": bool(priced.get(rid, True)),
             **by_id.get(rid, Totals()).as_dict()} for rid, policy, name in members]
