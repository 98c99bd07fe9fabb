"""``/v1/forum``: findings, revisions, comments, votes, admin hiding. Thin: logic is in
``aarlab.forum.service``; each handler is one transaction. A refusal is the service's
``ForumError`` (an ``AarlabError`` carrying its status), answered by the app's one handler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, status
from fastapi.security import HTTPAuthorizationCredentials

from aarlab.config import Settings
from aarlab.forum import search, service
from aarlab.forum.schemas import (
    TAG,
    TASK,
    CommentIn,
    CommentOut,
    FindingDetail,
    FindingEdit,
    FindingIn,
    FindingOut,
    FindingPage,
    HideIn,
    Kind,
    Sort,
    VoteIn,
    VoteOut,
)
from aarlab.forum.service import Viewer
from aarlab.server.deps import (
    bearer,
    current_researcher,
    get_settings,
    get_store,
    require_admin,
    writing_researcher,
)
from aarlab.store.db import Store
from aarlab.store.identity import Researcher, is_admin_token

router = APIRouter(prefix="/v1/forum", tags=["forum"])


def viewer(creds: HTTPAuthorizationCredentials | None = Depends(bearer),
           store: Store = Depends(get_store),
           settings: Settings = Depends(get_settings)) -> Viewer:
    """Readers are researchers or the admin (who also sees hidden findings)."""
    if creds is not None and is_admin_token(creds.credentials, settings.admin_token):
        return Viewer(is_admin=True)
    return Viewer(current_researcher(creds, store).id)


@router.get("/findings", response_model=FindingPage, summary="Search and list findings")
def list_findings(
    q: str | None = Query(None, max_length=500, description="Words to find (all of them)."),
    kind: Kind | None = None,
    author: str | None = Query(None, max_length=64, description="Researcher name or id."),
    task: str | None = Query(None, pattern=TASK),
    tag: str | None = Query(None, pattern=TAG),
    sort: Sort | None = Query(None, description="Default: relevance with q, else new."),
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0),
    include_hidden: bool = Query(False, description="Admin only."),
    who: Viewer = Depends(viewer),
    store: Store = Depends(get_store),
) -> FindingPage:
    query = search.Query(q=q, kind=kind, author=author, task=task, tag=tag, sort=sort,
                         limit=limit, offset=offset, include_hidden=include_hidden)
    with store.session() as s:
        items, total = service.list_findings(s, who, query)
    return FindingPage(items=items, total=total, limit=limit, offset=offset)


@router.post("/findings", response_model=FindingOut, status_code=status.HTTP_201_CREATED,
             summary="Post a finding (a result must cite one of your scored submissions)")
def post_finding(data: FindingIn, me: Researcher = Depends(writing_researcher),
                 store: Store = Depends(get_store),
                 settings: Settings = Depends(get_settings)) -> FindingOut:
    with store.session() as s:
        f = service.create_finding(s, me.id, data, settings.text_quota_chars)
        return service.finding_views(s, [f])[0]


@router.get("/findings/{finding_id}", response_model=FindingDetail,
            summary="A finding with every revision and its comments")
def get_finding(finding_id: int, who: Viewer = Depends(viewer),
                store: Store = Depends(get_store)) -> FindingDetail:
    with store.session() as s:
        return service.get_finding(s, who, finding_id)


@router.post("/findings/{finding_id}/revisions", response_model=FindingOut,
             status_code=status.HTTP_201_CREATED,
             summary="Edit a finding: appends a revision; earlier ones stay readable")
def edit_finding(finding_id: int, edit: FindingEdit,
                 me: Researcher = Depends(writing_researcher),
                 store: Store = Depends(get_store),
                 settings: Settings = Depends(get_settings)) -> FindingOut:
    with store.session() as s:
        f = service.edit_finding(s, me.id, finding_id, edit, settings.text_quota_chars)
        return service.finding_views(s, [f])[0]


@router.post("/findings/{finding_id}/comments", response_model=CommentOut,
             status_code=status.HTTP_201_CREATED, summary="Comment on a finding")
def comment(finding_id: int, data: CommentIn, me: Researcher = Depends(writing_researcher),
            store: Store = Depends(get_store),
            settings: Settings = Depends(get_settings)) -> CommentOut:
    with store.session() as s:
        c = service.add_comment(s, me.id, finding_id, data.body, settings.text_quota_chars)
        return CommentOut(id=c.id, author={"id": me.id, "name": me.name}, body=c.body,
                          created_at=c.created_at)


@router.put("/findings/{finding_id}/vote", response_model=VoteOut,
            summary="Set your one vote on a finding (+1, -1, or 0 to withdraw)")
def put_vote(finding_id: int, data: VoteIn, me: Researcher = Depends(writing_researcher),
             store: Store = Depends(get_store)) -> VoteOut:
    with store.session() as s:
        value, score = service.vote(s, me.id, finding_id, data.value)
    return VoteOut(finding_id=finding_id, value=value, score=score)


@router.post("/findings/{finding_id}/hide", response_model=FindingOut,
             dependencies=[Depends(require_admin)],
             summary="Admin: hide a finding (kept, and recorded in the audit log)")
def hide(finding_id: int, data: HideIn, store: Store = Depends(get_store)) -> FindingOut:
    with store.session() as s:
        return service.finding_views(s, [service.set_hidden(s, finding_id, True, data.reason)])[0]


@router.post("/findings/{finding_id}/unhide", response_model=FindingOut,
             dependencies=[Depends(require_admin)],
             summary="Admin: show a hidden finding again (recorded in the audit log)")
def unhide(finding_id: int, data: HideIn, store: Store = Depends(get_store)) -> FindingOut:
    with store.session() as s:
        return service.finding_views(s, [service.set_hidden(s, finding_id, False,
                                                            data.reason)])[0]
