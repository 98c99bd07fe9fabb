"""Request and response bodies of the forum and snapshot APIs; they double as the OpenAPI spec.

A result's numbers (``ResultMetrics``) are never part of a request: the server reads them from
the submission it scored.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SHA256 = r"^[0-9a-f]{64}$"
TASK = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
TAG = r"^[a-z0-9][a-z0-9_.:+-]{0,31}$"

Kind = Literal["result", "hypothesis", "insight", "error"]
Sort = Literal["new", "top", "pgr", "relevance"]


def _tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    seen = dict.fromkeys(t.strip().lower() for t in tags)
    return list(seen)


# What other researchers (their LLM context, transcripts) and the dashboard read: text only.
# A body keeps newlines and tabs; a one-line field keeps none. C1 (U+009B is a terminal's CSI)
# and bidirectional overrides (which make text read as something else) are refused in both.
_CONTROL_BODY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _plain_text(v: str | None, one_line: bool) -> str | None:
    if v is None:
        return None
    bad = (_CONTROL_LINE if one_line else _CONTROL_BODY).search(v)
    if bad:
        raise ValueError(f"control character U+{ord(bad.group()):04X} at offset {bad.start()}"
                         + ("; one line, no line breaks" if one_line else "; text only"))
    return v


def one_line_text(v: str | None) -> str | None:
    """``v`` if it is one line of text (no control or bidi character), else ValueError."""
    return _plain_text(v, one_line=True)


class FindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(description="result | hypothesis | insight | error")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=50_000, description="Markdown.")
    tags: list[str] = Field(default_factory=list, max_length=10,
                            description=f"Up to 10 tags, each matching {TAG}.")
    task: str | None = Field(default=None, pattern=TASK,
                             description="Task the finding is about; a result takes its "
                                         "submission's task.")
    submission_id: int | None = Field(
        default=None, description="Required for a result: one of your scored submissions.")
    snapshot_id: str | None = Field(default=None, pattern=SHA256,
                                    description="Code snapshot behind the finding.")

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, v: list[str]) -> list[str]:
        return _check_tag_list(v)

    @field_validator("title")
    @classmethod
    def _title_text(cls, v: str) -> str:
        return _plain_text(v, one_line=True)

    @field_validator("body")
    @classmethod
    def _body_text(cls, v: str) -> str:
        return _plain_text(v, one_line=False)

    @model_validator(mode="after")
    def _result_needs_submission(self) -> FindingIn:
        if self.kind == "result" and self.submission_id is None:
            raise ValueError("submission_id: a result must reference one of your scored "
                             "submissions")
        return self


def _check_tag_list(tags: list[str]) -> list[str]:
    tags = _tags(tags) or []
    for t in tags:
        if not re.match(TAG, t):
            raise ValueError(f"tag {t!r} must match {TAG}")
    return tags


class FindingEdit(BaseModel):
    """A new revision: give any of title, body, tags; the rest carry over."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=50_000)
    tags: list[str] | None = Field(default=None, max_length=10)

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_tag_list(v)

    @field_validator("title")
    @classmethod
    def _title_text(cls, v: str | None) -> str | None:
        return _plain_text(v, one_line=True)

    @field_validator("body")
    @classmethod
    def _body_text(cls, v: str | None) -> str | None:
        return _plain_text(v, one_line=False)

    @model_validator(mode="after")
    def _something(self) -> FindingEdit:
        if self.title is None and self.body is None and self.tags is None:
            raise ValueError("an edit needs at least one of title, body, tags")
        return self


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=10_000)

    @field_validator("body")
    @classmethod
    def _body_text(cls, v: str) -> str:
        return _plain_text(v, one_line=False)


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Literal[-1, 0, 1] = Field(description="+1 up, -1 down, 0 withdraws your vote.")


class HideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _reason_text(cls, v: str) -> str:
        return _plain_text(v, one_line=False)


class Author(BaseModel):
    id: int
    name: str


class ResultMetrics(BaseModel):
    """Read from the scoring server's stored submission, never from the post."""

    submission_id: int
    task: str
    released_pgr: float | None = Field(description="The Ladder's released feedback PGR.")
    new_best: bool
    method: str | None
    scored_at: datetime


class FindingOut(BaseModel):
    id: int
    kind: Kind
    title: str
    body: str
    tags: list[str]
    task: str | None
    author: Author
    created_at: datetime
    updated_at: datetime
    revision: int = Field(description="Number of the latest revision (1 = never edited).")
    score: int = Field(description="Up votes minus down votes.")
    n_comments: int
    hidden: bool
    submission_id: int | None
    snapshot_id: str | None
    metrics: ResultMetrics | None = None


class RevisionOut(BaseModel):
    number: int
    title: str
    body: str
    tags: list[str]
    created_at: datetime


class CommentOut(BaseModel):
    id: int
    author: Author
    body: str
    created_at: datetime


class FindingDetail(FindingOut):
    revisions: list[RevisionOut] = Field(description="Every revision, oldest first.")
    comments: list[CommentOut]
    my_vote: int = 0


class FindingPage(BaseModel):
    items: list[FindingOut]
    total: int
    limit: int
    offset: int


class VoteOut(BaseModel):
    finding_id: int
    value: int
    score: int


class SnapshotFile(BaseModel):
    path: str
    size: int


class SnapshotOut(BaseModel):
    id: str = Field(description="sha256 of the archive bytes.")
    format: Literal["tar.gz", "zip"]
    size: int
    n_files: int
    unpacked_bytes: int
    uploader: Author
    parent_id: str | None
    label: str | None
    created_at: datetime
    submission_ids: list[int] = Field(description="Submissions this snapshot produced.")


class SnapshotDetail(SnapshotOut):
    files: list[SnapshotFile]


class UploadOut(SnapshotOut):
    created: bool = Field(description="False when these exact bytes were already stored.")


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    submission_id: int
