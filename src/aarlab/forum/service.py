"""Forum logic: findings, revisions, comments, votes, hiding. Every function takes the session of
one transaction, so a post, its revision, its tags and its search entry commit together or not.

Rules kept here (routes only translate HTTP):

- a finding that references a submission must reference one of its author's own; a ``result``
  must reference one, and the numbers shown with it are read from that submission's row;
- nothing is deleted or rewritten: an edit appends a revision, comments are append-only, an
  admin hides (and the audit log says who, when and why);
- one vote per researcher per finding (the vote table's primary key), none on one's own post.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aarlab.clock import utcnow
from aarlab.errors import AarlabError
from aarlab.forum import search
from aarlab.forum.schemas import (
    Author,
    CommentOut,
    FindingDetail,
    FindingEdit,
    FindingIn,
    FindingOut,
    ResultMetrics,
    RevisionOut,
)
from aarlab.forum.tables import (
    Comment,
    Finding,
    FindingRevision,
    FindingTag,
    Snapshot,
    SnapshotLink,
    Vote,
    holds_snapshot,
)
from aarlab.scoring.tables import Submission
from aarlab.store import audit
from aarlab.store.identity import Researcher


class ForumError(AarlabError):
    """A request the forum refuses; ``status`` is the HTTP code the routes answer with."""

    status = 422


class NotFoundError(ForumError):
    status = 404


class ForbiddenError(ForumError):
    status = 403


class ConflictError(ForumError):
    status = 409


@dataclass(frozen=True)
class Viewer:
    """Who is reading: a researcher (``researcher_id``) or the lab's admin."""

    researcher_id: int | None = None
    is_admin: bool = False


# --- writing --------------------------------------------------------------------------------


class TextQuotaError(ForumError):
    status = 413


def check_text_quota(s: Session, author_id: int, adding: int, quota: int | None) -> None:
    """Refuse a write that takes ``author_id``'s stored forum text (every revision's title and
    body, every comment) past ``quota`` characters (None: no quota)."""
    if quota is None:
        return
    used = (s.scalar(select(func.coalesce(func.sum(func.length(FindingRevision.title)
                                                   + func.length(FindingRevision.body)), 0))
                     .where(FindingRevision.author_id == author_id)) or 0) + (
        s.scalar(select(func.coalesce(func.sum(func.length(Comment.body)), 0))
                 .where(Comment.author_id == author_id)) or 0)
    if used + adding > quota:
        raise TextQuotaError(f"body: you have stored {used} characters of forum text; "
                             f"{adding} more would pass the {quota} one researcher may "
                             "(text_quota_chars)", hint="edit less often, or write less")


def create_finding(s: Session, author_id: int, data: FindingIn,
                   quota: int | None = None) -> Finding:
    check_text_quota(s, author_id, len(data.title) + len(data.body), quota)
    task, snapshot_id = data.task, data.snapshot_id
    if data.submission_id is not None:
        sub = own_submission(s, author_id, data.submission_id)
        if task is not None and task != sub.task:
            raise ForumError(f"task: {task!r} does not match submission {sub.id}, which is on "
                             f"task {sub.task!r}", hint="omit task; a result takes its "
                             "submission's")
        task = sub.task
        snapshot_id = _code_of(s, author_id, sub, snapshot_id)
    elif snapshot_id is not None:
        _check_held(s, author_id, snapshot_id)
    now = utcnow()
    f = Finding(kind=data.kind, author_id=author_id, task=task, submission_id=data.submission_id,
                snapshot_id=snapshot_id, created_at=now, updated_at=now, revision=1,
                title=data.title, body=data.body, tags=data.tags,
                tags_text=" ".join(data.tags), score=0, n_comments=0, hidden=False)
    s.add(f)
    s.flush()
    _append_revision(s, f, author_id, now)
    return f


def _check_held(s: Session, author_id: int, snapshot_id: str) -> None:
    """A finding shows its snapshot as its author's code: one the author uploaded (the same
    bytes as another's make one its holder), as a submission or a link must be."""
    if s.get(Snapshot, snapshot_id) is None:
        raise ForumError(f"snapshot_id: no snapshot {snapshot_id}",
                         hint="upload it first (POST /v1/snapshots)")
    if not holds_snapshot(s, author_id, snapshot_id):
        raise ForumError(f"snapshot_id: snapshot {snapshot_id} was not uploaded by you",
                         hint="upload the code you mean (the same bytes as another's snapshot "
                              "are fine) and name that")


def _code_of(s: Session, author_id: int, sub: Submission, named: str | None) -> str | None:
    """The snapshot a post on ``sub`` shows: the code that produced it (the submission's own,
    or the one its author linked), never another; one the author holds and names for a
    submission with no code yet becomes its link."""
    linked = s.get(SnapshotLink, sub.id)
    code = sub.snapshot_id or (linked.snapshot_id if linked is not None else None)
    if named is None:
        return code if code is not None and s.get(Snapshot, code) is not None else None
    if code is not None and named != code:
        raise ForumError(f"snapshot_id: submission {sub.id} was made with snapshot {code}",
                         hint="omit snapshot_id: a post on a submission shows the code that "
                              "produced it")
    _check_held(s, author_id, named)
    if code is None:
        s.add(SnapshotLink(submission_id=sub.id, snapshot_id=named, researcher_id=author_id,
                           created_at=utcnow()))
        s.flush()
    return named


def edit_finding(s: Session, researcher_id: int, finding_id: int, edit: FindingEdit,
                 quota: int | None = None) -> Finding:
    f = _visible(s, Viewer(researcher_id), finding_id)
    if f.author_id != researcher_id:
        raise ForbiddenError(f"finding {finding_id}: only its author can edit it",
                             hint="comment on it instead")
    if f.revision >= MAX_REVISIONS:
        raise ForumError(f"finding {finding_id}: {f.revision} revisions, the most a finding "
                         "keeps", hint="post a new finding that supersedes it")
    # a revision stores its whole title and body again
    check_text_quota(s, researcher_id, len(edit.title if edit.title is not None else f.title)
                     + len(edit.body if edit.body is not None else f.body), quota)
    now = utcnow()
    f.revision += 1
    f.title = edit.title if edit.title is not None else f.title
    f.body = edit.body if edit.body is not None else f.body
    if edit.tags is not None:
        f.tags, f.tags_text = edit.tags, " ".join(edit.tags)
    f.updated_at = now
    try:
        _append_revision(s, f, researcher_id, now)
    except IntegrityError as e:  # two edits raced for the same revision number
        raise ConflictError(f"finding {finding_id} changed meanwhile", hint="retry") from e
    return f


# Every comment and revision of a finding is served with it (to the dashboard and to each
# researcher that reads it, an LLM's context included): one researcher must not bury another's
# finding under its own text within the write rate.
MAX_COMMENTS_PER_AUTHOR = 50
MAX_REVISIONS = 100


def add_comment(s: Session, researcher_id: int, finding_id: int, body: str,
                quota: int | None = None) -> Comment:
    f = _visible(s, Viewer(researcher_id), finding_id)
    check_text_quota(s, researcher_id, len(body), quota)
    mine = s.scalar(select(func.count()).select_from(Comment).where(
        Comment.finding_id == f.id, Comment.author_id == researcher_id))
    if mine >= MAX_COMMENTS_PER_AUTHOR:
        raise ForumError(f"body: you have {mine} comments on finding {finding_id}, the most one "
                         "researcher may leave on one finding",
                         hint="post a finding of your own and link it")
    c = Comment(finding_id=f.id, author_id=researcher_id, body=body, created_at=utcnow())
    s.add(c)
    s.execute(update(Finding).where(Finding.id == f.id)
              .values(n_comments=Finding.n_comments + 1))
    s.flush()
    return c


def vote(s: Session, researcher_id: int, finding_id: int, value: int) -> tuple[int, int]:
    """Set this researcher's vote (+1, -1, or 0 to withdraw); returns (value, new score)."""
    f = _visible(s, Viewer(researcher_id), finding_id)
    if f.author_id == researcher_id:
        raise ForbiddenError(f"finding {finding_id}: you cannot vote on your own finding")
    old = s.get(Vote, (f.id, researcher_id))
    delta = value - (old.value if old else 0)
    if old is not None and value == 0:
        s.execute(delete(Vote).where(Vote.finding_id == f.id,
                                     Vote.researcher_id == researcher_id))
    elif old is not None:
        old.value = value
    elif value != 0:
        s.add(Vote(finding_id=f.id, researcher_id=researcher_id, value=value,
                   created_at=utcnow()))
    if delta:
        # Relative update: concurrent voters on one finding never lose each other's votes.
        s.execute(update(Finding).where(Finding.id == f.id).values(score=Finding.score + delta))
    s.flush()
    s.refresh(f)
    return value, f.score


def set_hidden(s: Session, finding_id: int, hidden: bool, reason: str) -> Finding:
    """Admin only (the route checks). The post stays; the audit log records the decision."""
    f = s.get(Finding, finding_id)
    if f is None:
        raise NotFoundError(f"no finding {finding_id}")
    if f.hidden != hidden:
        f.hidden = hidden
        audit.append(s, "forum.hide" if hidden else "forum.unhide", researcher_id=f.author_id,
                     finding_id=f.id, reason=reason, title=f.title)
    return f


def _append_revision(s: Session, f: Finding, author_id: int, when) -> None:  # noqa: ANN001
    s.add(FindingRevision(finding_id=f.id, number=f.revision, author_id=author_id,
                          title=f.title, body=f.body, tags=list(f.tags), created_at=when))
    s.execute(delete(FindingTag).where(FindingTag.finding_id == f.id))
    s.add_all(FindingTag(finding_id=f.id, tag=t) for t in f.tags)
    s.flush()
    search.index_finding(s, f)


def own_submission(s: Session, author_id: int, submission_id: int) -> Submission:
    sub = s.get(Submission, submission_id)
    # One message whether it is missing or someone else's: ids of others' work stay private.
    if sub is None or sub.researcher_id != author_id:
        raise ForumError(f"submission_id: {submission_id} is not one of your scored submissions",
                         hint="submit predictions first; a result cites its own score")
    return sub


# --- reading --------------------------------------------------------------------------------


def _visible(s: Session, viewer: Viewer, finding_id: int) -> Finding:
    f = s.get(Finding, finding_id)
    if f is None:
        raise NotFoundError(f"no finding {finding_id}")
    if f.hidden and not viewer.is_admin:
        raise NotFoundError(f"finding {finding_id} is hidden by an admin")
    return f


def get_finding(s: Session, viewer: Viewer, finding_id: int) -> FindingDetail:
    f = _visible(s, viewer, finding_id)
    revisions = s.scalars(select(FindingRevision).where(FindingRevision.finding_id == f.id)
                          .order_by(FindingRevision.number)).all()
    comments = s.scalars(select(Comment).where(Comment.finding_id == f.id)
                         .order_by(Comment.id)).all()
    authors = _authors(s, [f.author_id, *(c.author_id for c in comments)])
    mine = (s.get(Vote, (f.id, viewer.researcher_id))
            if viewer.researcher_id is not None else None)
    head = finding_views(s, [f])[0]
    return FindingDetail(
        **head.model_dump(),
        revisions=[RevisionOut(number=r.number, title=r.title, body=r.body, tags=r.tags,
                               created_at=r.created_at) for r in revisions],
        comments=[CommentOut(id=c.id, author=authors[c.author_id], body=c.body,
                             created_at=c.created_at) for c in comments],
        my_vote=mine.value if mine else 0)


def list_findings(s: Session, viewer: Viewer, query: search.Query) -> tuple[list[FindingOut], int]:
    if query.include_hidden and not viewer.is_admin:
        raise ForbiddenError("include_hidden: only the lab's admin sees hidden findings")
    found, total = search.search(s, query)
    return finding_views(s, found), total


def finding_views(s: Session, findings: list[Finding]) -> list[FindingOut]:
    """Findings as shown: author names and, for results, the server's stored scores."""
    authors = _authors(s, [f.author_id for f in findings])
    sub_ids = {f.submission_id for f in findings if f.submission_id is not None}
    subs = ({x.id: x for x in s.scalars(select(Submission).where(Submission.id.in_(sub_ids)))}
            if sub_ids else {})
    return [FindingOut(
        id=f.id, kind=f.kind, title=f.title, body=f.body, tags=f.tags, task=f.task,
        author=authors[f.author_id], created_at=f.created_at, updated_at=f.updated_at,
        revision=f.revision, score=f.score, n_comments=f.n_comments, hidden=f.hidden,
        submission_id=f.submission_id, snapshot_id=f.snapshot_id,
        metrics=_metrics(subs[f.submission_id]) if f.submission_id in subs else None)
        for f in findings]


def _metrics(sub: Submission) -> ResultMetrics:
    # Only a release has a score of its own: an unreleased submission stores what its author
    # was told (often another researcher's release), which a post must not show as its own.
    return ResultMetrics(submission_id=sub.id, task=sub.task,
                         released_pgr=sub.released_pgr if sub.new_best else None,
                         new_best=sub.new_best, method=sub.method, scored_at=sub.created_at)


def _authors(s: Session, ids: Iterable[int]) -> dict[int, Author]:
    ids = set(ids)
    if not ids:
        return {}
    rows = s.execute(select(Researcher.id, Researcher.name).where(Researcher.id.in_(ids)))
    return {i: Author(id=i, name=n) for i, n in rows}
