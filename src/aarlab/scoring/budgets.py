"""Submission budgets per researcher and task: a sliding hour and a lifetime total.

A suite lab's researcher has a budget on each task (``tasks``: that task and any other drawn from
the same rows, an LM task and its source, which share one budget since their feedback labels are
the same); without one, all tasks count.

Every stored submission counts, probes included; refused requests (bad input, over budget) do
not. Counting is a query over stored submissions, so a restart forgets nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aarlab.clock import as_utc
from aarlab.scoring.tables import Submission

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class BudgetState:
    per_hour: int
    total: int
    used_hour: int
    used_total: int
    retry_after: float | None  # seconds until the hourly window frees one slot, when full

    @property
    def hour_remaining(self) -> int:
        return max(0, self.per_hour - self.used_hour)

    @property
    def total_remaining(self) -> int:
        return max(0, self.total - self.used_total)

    @property
    def exhausted(self) -> bool:
        return self.hour_remaining == 0 or self.total_remaining == 0

    def after_one_more(self) -> BudgetState:
        return BudgetState(self.per_hour, self.total, self.used_hour + 1, self.used_total + 1,
                           self.retry_after)

    def as_dict(self) -> dict:
        return {"per_hour": self.per_hour, "total": self.total,
                "hour_remaining": self.hour_remaining, "total_remaining": self.total_remaining}

    def headers(self) -> dict[str, str]:
        return {"X-Budget-Hour-Remaining": str(self.hour_remaining),
                "X-Budget-Total-Remaining": str(self.total_remaining)}


def budget_state(session: Session, researcher_id: int, per_hour: int, total: int,
                 now: datetime | None = None, tasks: Collection[str] | None = None
                 ) -> BudgetState:
    now = now or datetime.now(UTC)
    mine = Submission.researcher_id == researcher_id
    if tasks is not None:
        mine = mine & Submission.task.in_(sorted(tasks))
    used_total = session.scalar(select(func.count()).where(mine)) or 0
    window = select(Submission.created_at).where(mine, Submission.created_at > now - HOUR)
    used_hour = session.scalar(select(func.count()).select_from(window.subquery())) or 0
    retry_after = None
    if used_hour >= per_hour:
        # The slot frees when the (used_hour - per_hour + 1)-th oldest in the window leaves it.
        k = used_hour - per_hour
        freed = session.scalar(window.order_by(Submission.created_at).offset(k).limit(1))
        retry_after = max(1.0, (as_utc(freed) + HOUR - now).total_seconds()) if freed else 1.0
    return BudgetState(per_hour, total, used_hour, used_total, retry_after)
