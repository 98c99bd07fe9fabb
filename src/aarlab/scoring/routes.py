"""HTTP routes of the scoring server. Thin: parse, authorise, call ``ScoringService``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from aarlab.config import Settings
from aarlab.scoring import schemas
from aarlab.scoring.service import BodyTooLarge, ScoringService
from aarlab.server.deps import current_researcher, get_settings, get_store, require_admin
from aarlab.store import audit
from aarlab.store.db import Store
from aarlab.store.identity import (
    Researcher,
    add_researcher,
    list_researchers,
    revoke,
)

router = APIRouter(prefix="/v1")
admin = [Depends(require_admin)]


def get_service(request: Request) -> ScoringService:
    # One service per app (its caches and lock), created on first use.
    state = request.app.state
    if getattr(state, "scoring", None) is None:
        state.scoring = ScoringService(state.settings, state.store,
                                       getattr(state, "holds_snapshot", None))
    return state.scoring


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused early (413) if it announces or streams more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body: {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body: over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_ERRORS = {code: {"description": text} for code, text in [
    (401, "Unknown or revoked token"), (404, "Unknown task"), (413, "Body too large"),
    (422, "Invalid predictions: the message names the field"),
    (429, "Over budget; Retry-After says when the hourly window frees a slot")]}


@router.post(
    "/tasks/{task}/submissions", response_model=schemas.Receipt, tags=["scoring"],
    responses=_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": schemas.SubmissionIn.model_json_schema()}}}},
)
async def submit(task: str, request: Request,
                 researcher: Researcher = Depends(current_researcher),
                 settings: Settings = Depends(get_settings),
                 service: ScoringService = Depends(get_service)):
    """Score predictions for every test row. Tells you only the Ladder's released feedback PGR.

    A new score is released (``new_best``) only when this submission beats your best on the
    feedback rows by more than ``ladder_safety`` (default 3) standard errors of the row-by-row
    difference, and by a minimum step; it is rounded to that step. If you have no release yet,
    your Ladder starts at the lab's best (or at the weak teacher, in an empty lab). Otherwise
    ``released_pgr`` is your previous release. An exact copy of any earlier submission is
    answered with that one's released score; a near-copy (fewer rows differ than the probe
    threshold) learns nothing and is flagged as a probe.

    Budgets, remaining in the body and in ``X-Budget-*`` headers, count every stored submission.
    """
    service.task(task)  # 404 before reading a body for a task that does not exist
    body = await _read_body(request, settings.max_body_bytes)
    receipt, budget = await run_in_threadpool(service.submit, researcher, task, body)
    return JSONResponse(schemas.Receipt(**receipt).model_dump(mode="json"),
                        headers=budget.headers())


@router.get("/tasks", response_model=list[schemas.TaskOut], tags=["scoring"])
def tasks(_: Researcher = Depends(current_researcher),
          service: ScoringService = Depends(get_service)):
    out = []
    for name in service.served_names():
        t = service.task(name)
        out.append({"name": name, "format": t.format, "labels": t.labels, "n_test": t.n})
    return out


@router.get("/tasks/{task}/submissions", response_model=list[schemas.SubmissionOut],
            tags=["scoring"])
def my_submissions(task: str, researcher: Researcher = Depends(current_researcher),
                   store: Store = Depends(get_store),
                   service: ScoringService = Depends(get_service)):
    with store.session() as s:
        return service.my_submissions(s, researcher, task)


@router.get("/submissions/{submission_id}", response_model=schemas.SubmissionOut,
            tags=["scoring"])
def submission(submission_id: int, _: Researcher = Depends(current_researcher),
               store: Store = Depends(get_store),
               service: ScoringService = Depends(get_service)):
    with store.session() as s:
        return service.submission(s, submission_id)


@router.get("/tasks/{task}/leaderboard", response_model=schemas.Leaderboard, tags=["scoring"])
def leaderboard(task: str, _: Researcher = Depends(current_researcher),
                store: Store = Depends(get_store),
                service: ScoringService = Depends(get_service)):
    with store.session() as s:
        return service.leaderboard(s, task)


@router.get("/me", response_model=schemas.MeOut, tags=["scoring"])
def me(researcher: Researcher = Depends(current_researcher), store: Store = Depends(get_store),
       service: ScoringService = Depends(get_service)):
    with store.session() as s:
        budget = service.budget(s, researcher.id)
        best = service.best_released(s, researcher.id)
    return JSONResponse(schemas.MeOut(id=researcher.id, name=researcher.name,
                                      budget=budget.as_dict(), best_released_pgr=best)
                        .model_dump(mode="json"), headers=budget.headers())


# ---- admin ---------------------------------------------------------------------------------

@router.post("/admin/researchers", response_model=schemas.NewResearcherOut, status_code=201,
             dependencies=admin, tags=["admin"])
def admin_add_researcher(body: schemas.NewResearcherIn, store: Store = Depends(get_store)):
    with store.session() as s:
        r, token = add_researcher(s, body.name)
        audit.append(s, "researcher_added", r.id, name=r.name)
        return {"id": r.id, "name": r.name, "token": token}


@router.get("/admin/researchers", response_model=list[schemas.ResearcherOut],
            dependencies=admin, tags=["admin"])
def admin_researchers(store: Store = Depends(get_store)):
    with store.session() as s:
        return [r.as_dict() for r in list_researchers(s)]


@router.post("/admin/researchers/{ref}/revoke", response_model=schemas.ResearcherOut,
             dependencies=admin, tags=["admin"])
def admin_revoke(ref: str, store: Store = Depends(get_store)):
    with store.session() as s:
        r = revoke(s, ref)
        audit.append(s, "researcher_revoked", r.id, name=r.name)
        return r.as_dict()


@router.get("/admin/tasks/{task}/leaderboard", response_model=schemas.AdminLeaderboard,
            dependencies=admin, tags=["admin"])
def admin_leaderboard(task: str, store: Store = Depends(get_store),
                      service: ScoringService = Depends(get_service)):
    with store.session() as s:
        return service.leaderboard(s, task, admin=True)


@router.get("/admin/submissions/{submission_id}", response_model=schemas.AdminSubmissionOut,
            dependencies=admin, tags=["admin"])
def admin_submission(submission_id: int, store: Store = Depends(get_store),
                     service: ScoringService = Depends(get_service)):
    with store.session() as s:
        return service.submission(s, submission_id, admin=True)


@router.get("/admin/audit", response_model=list[schemas.AuditOut], dependencies=admin,
            tags=["admin"])
def admin_audit(kind: str | None = Query(None, max_length=64),
                limit: int = Query(500, ge=1, le=10_000), store: Store = Depends(get_store)):
    with store.session() as s:
        return [e.as_dict() for e in audit.events(s, kind, limit)]
