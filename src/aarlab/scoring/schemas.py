"""Request and response bodies; they double as the OpenAPI document.

Nothing researcher-facing carries the final part, a per-row result, a label count or a raw
(unreleased) score; those live only in the ``Admin*`` models.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SHA256 = r"^[0-9a-f]{64}$"
# A method label is printed on the lab owner's terminal and written into markdown tables
# (reports): one line, no control or bidirectional-override character, no '|' (splits a table
# cell) or '`' (closes the code span it is shown in).
_METHOD_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069|`]")
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class SubmissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictions: dict[str, Any] = Field(
        description="One label per test row id: every id of the task's test split, each value "
                    "from the task's label set (\"A\"/\"B\" for pairwise, false/true for binary).",
        json_schema_extra={"additionalProperties": {"type": ["string", "boolean"]}},
    )
    method: str | None = Field(default=None, max_length=500,
                               description="Short description of the method that made these.")
    snapshot_id: str | None = Field(
        default=None, pattern=SHA256,
        description="sha256 of the code snapshot that made these; one you uploaded (another's, "
                    "uploaded again unchanged, counts).")
    seeds: list[Seed] | None = Field(
        default=None, max_length=256,
        description="Weak-teacher seeds behind these predictions (e.g. the seeds voted over). "
                    "Replication re-runs the method on seeds outside this list.")

    @field_validator("method")
    @classmethod
    def _one_plain_line(cls, v: str | None) -> str | None:
        bad = _METHOD_REFUSED.search(v) if v is not None else None
        if bad:
            raise ValueError(f"expected one line of text without control characters, '|' or "
                             f"'`' (found U+{ord(bad.group()):04X} at character {bad.start()})")
        return v


class Budget(BaseModel):
    per_hour: int
    total: int
    hour_remaining: int
    total_remaining: int


class Receipt(BaseModel):
    """What a researcher learns from a submission: the Ladder's released feedback PGR."""

    id: int
    task: str
    created_at: datetime
    released_pgr: float | None = Field(
        description="Best released feedback-part PGR so far (Ladder); null if none yet.")
    new_best: bool = Field(description="Whether this submission raised the released PGR.")
    budget: Budget


class SubmissionOut(BaseModel):
    id: int
    researcher: str
    task: str
    created_at: datetime
    method: str | None
    snapshot_id: str | None
    released_pgr: float | None
    new_best: bool


class AdminSubmissionOut(SubmissionOut):
    seeds: list[int] | None = None
    accuracy: dict[str, float]
    pgr: dict[str, float]
    is_probe: bool
    probe_of: int | None


class TaskOut(BaseModel):
    name: str
    format: str
    labels: list
    n_test: int


class ResearcherRow(BaseModel):
    researcher: str
    best_released_pgr: float
    submissions: int


class MethodRow(BaseModel):
    method: str  # the submitter's own label: free text, not a checked name
    best_released_pgr: float
    researchers: int
    released_by: str = Field(description="who released the best score under this label")


class Leaderboard(BaseModel):
    task: str
    by_researcher: list[ResearcherRow]
    by_method: list[MethodRow]


class AdminResearcherRow(ResearcherRow):
    submission_id: int
    feedback_pgr: float
    final_pgr: float
    final_pgr_ci95: list[float] | None = Field(
        default=None, description="95% paired-bootstrap interval of final_pgr (test rows)")
    gap: float = Field(description="released feedback PGR minus final PGR")
    probes: int


class AdminMethodRow(MethodRow):
    submission_id: int
    feedback_pgr: float
    final_pgr: float
    final_pgr_ci95: list[float] | None = None
    gap: float


class AdminLeaderboard(BaseModel):
    task: str
    by_researcher: list[AdminResearcherRow]
    by_method: list[AdminMethodRow]


class MeOut(BaseModel):
    id: int
    name: str
    budget: Budget
    best_released_pgr: dict[str, float] = Field(description="Per task.")


class NewResearcherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="1-64 characters: lowercase letters, digits, '_', '.', '-'.",
                      min_length=1, max_length=64)


class NewResearcherOut(BaseModel):
    id: int
    name: str
    token: str = Field(description="Shown once; stored only hashed.")


class ResearcherOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    revoked: bool


class AuditOut(BaseModel):
    id: int
    created_at: datetime
    kind: str
    researcher_id: int | None
    details: dict
