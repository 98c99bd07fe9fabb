"""The dashboard's pages: thin handlers that call ``aarlab.web.queries`` and render a template.

Read-only pages need no login and show public views only; the admin (cookie set by ``/login``)
also sees final-part scores, probe flags, hidden posts and the audit details, and may hide or
unhide findings. Every response carries a strict Content-Security-Policy: scripts and styles
come only from ``/static``, so researcher-written text can never run in a reader's browser.
"""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path as FsPath
from typing import Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from aarlab.archive import ArchiveLimits
from aarlab.forum import search, snapshots
from aarlab.forum.schemas import SHA256, TAG, TASK
from aarlab.forum.service import ForumError, set_hidden
from aarlab.forum.tables import KINDS
from aarlab.sandbox import limits_report
from aarlab.scoring.routes import get_service
from aarlab.scoring.service import ScoringError
from aarlab.store.db import Store
from aarlab.store.identity import is_admin_token
from aarlab.web import auth, queries
from aarlab.web.chart import progress_svg

router = APIRouter(include_in_schema=False)

HERE = FsPath(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC = {  # the only files /static serves: no path from a request ever reaches the disk
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
FORUM_PAGE = 25
FILE_SHOWN = 256 * 1024
POLL_MS = 3000


# --- template helpers -------------------------------------------------------------------------


def _pgr(v: float | None, digits: int = 3) -> str:
    # Researcher-sent numbers reach this filter too: an integer past a float's range (10**400,
    # valid JSON) or a string must show as a dash, not make the page fail.
    try:
        return "–" if v is None or isinstance(v, bool) else f"{float(v):.{digits}f}"
    except (TypeError, ValueError, OverflowError):
        return "–"


def _when(t: datetime | None) -> str:
    if t is None:
        return "–"
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _since(value: float | int | None) -> str:
    # A notebook entry's ``time`` is the researcher's number: 1e15 or -1e12 must not make the
    # page that audits it a 500.
    try:
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return "–"


TEMPLATES.env.filters.update(
    pgr=_pgr, when=_when, epoch=_since,
    usd=lambda v: "n/a" if v is None else f"${v:,.2f}",
    hours=lambda v: "n/a" if v is None else f"{v:,.2f} h",
    pretty=lambda v: json.dumps(v, indent=1, sort_keys=True, default=str),
    short=lambda v, n=12: (v or "")[:n],
)


def _store(request: Request) -> Store:
    return request.app.state.store


@cache
def _sandbox_warning() -> str | None:
    """Shown on every page when sandboxes are bounded per process only (no cgroups here)."""
    return limits_report()["warning"]


def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
    admin = auth.is_admin(request)
    settings = request.app.state.settings
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    base = {"admin": admin, "csrf": auth.csrf_token(settings) if admin else "",
            "here": here, "section": name.split(".")[0], "poll_ms": POLL_MS,
            "sandbox_warning": _sandbox_warning()}
    resp = TEMPLATES.TemplateResponse(request, name, base | ctx, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    # Admin pages hold final scores: never let a shared cache or the back button keep them.
    resp.headers["Cache-Control"] = "no-store" if admin else "no-cache"
    return resp


def not_found(request: Request, what: str) -> HTMLResponse:
    return page(request, "error.html", status=404, title="Not found", message=what)


# --- pages ------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, task: str | None = Query(None, pattern=TASK)):
    admin, scoring = auth.is_admin(request), get_service(request)
    with _store(request).session() as s:
        t = queries.pick_task(s, scoring, task)
        data = queries.overview(s, scoring, t, admin) if t else None
        tasks = queries.task_names(s, scoring)
    chart = progress_svg(data["curves"], data["chart_refs"]) if data else None
    return page(request, "overview.html", task=t, tasks=tasks, d=data, chart=chart)


@router.get("/api/live")
def live(request: Request, task: str | None = Query(None, pattern=TASK),
         since: str | None = Query(None, max_length=64, pattern=r"^[0-9.]*$")) -> JSONResponse:
    """What the overview polls: counts, best, latest activity and a version that changes.

    ``since``: the version the page has; when nothing changed the answer is just that.
    """
    admin, scoring = auth.is_admin(request), get_service(request)
    with _store(request).session() as s:
        t = queries.pick_task(s, scoring, task)
        data = (queries.live(s, queries.scope_for(s, t, scoring), admin, since) if t
                else {"version": "0", "changed": False})
    return JSONResponse(jsonable_encoder(data), headers=SECURITY_HEADERS
                        | {"Cache-Control": "no-store"})


@router.get("/fragments/progress", response_class=HTMLResponse)
def progress_fragment(request: Request, task: str = Query(..., pattern=TASK)):
    admin, scoring = auth.is_admin(request), get_service(request)
    with _store(request).session() as s:
        data = queries.progress(s, scoring, queries.scope_for(s, task, scoring), admin)
    return page(request, "_chart.html", task=task,
                chart=progress_svg(data["curves"], data["chart_refs"]))


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard(request: Request, task: str | None = Query(None, pattern=TASK)):
    admin, scoring = auth.is_admin(request), get_service(request)
    with _store(request).session() as s:
        t = queries.pick_task(s, scoring, task)
        tasks = queries.task_names(s, scoring)
        try:
            board = queries.leaderboard(s, scoring, t, admin) if t else None
        except ScoringError as e:
            return page(request, "leaderboard.html", status=404, task=t, tasks=tasks,
                        board=None, message=str(e))
    return page(request, "leaderboard.html", task=t, tasks=tasks, board=board, message=None)


@router.get("/forum", response_class=HTMLResponse)
def forum(request: Request,
          q: str | None = Query(None, max_length=500),
          kind: Literal["result", "hypothesis", "insight", "error", ""] = "",
          author: str | None = Query(None, max_length=64),
          task: str | None = Query(None, pattern=f"^({TASK[1:-1]})?$"),
          tag: str | None = Query(None, pattern=f"^({TAG[1:-1]})?$"),
          sort: Literal["new", "top", "pgr", "relevance", ""] = "",
          page_no: int = Query(1, ge=1, le=10_000, alias="page"),
          hidden: bool = False):
    admin = auth.is_admin(request)
    query = search.Query(q=q or None, kind=kind or None, author=author or None,
                         task=task or None, tag=tag or None, sort=sort or None,
                         limit=FORUM_PAGE, offset=(page_no - 1) * FORUM_PAGE,
                         include_hidden=hidden and admin)
    with _store(request).session() as s:
        data = queries.forum(s, query, admin)
    filters = {"q": q or "", "kind": kind, "author": author or "", "task": task or "",
               "tag": tag or "", "sort": sort, "hidden": hidden and admin}
    pages = max(1, -(-data["total"] // FORUM_PAGE))
    return page(request, "forum.html", d=data, f=filters, kinds=KINDS, page_no=page_no,
                pages=pages)


@router.get("/forum/{finding_id}", response_class=HTMLResponse)
def finding(request: Request, finding_id: int = Path(ge=1)):
    admin = auth.is_admin(request)
    with _store(request).session() as s:
        try:
            data = queries.finding(s, finding_id, admin)
        except ForumError as e:
            return not_found(request, str(e))
    return page(request, "finding.html", **data)


def _hide(request: Request, finding_id: int, hidden: bool, reason: str, csrf: str):
    settings = request.app.state.settings
    if not auth.is_admin(request) or not auth.csrf_ok(settings, csrf):
        return page(request, "error.html", status=403, title="Forbidden",
                    message="hiding a finding needs the lab's admin sign-in")
    with _store(request).session() as s:
        try:
            set_hidden(s, finding_id, hidden, reason)
        except ForumError as e:
            return not_found(request, str(e))
    return RedirectResponse(f"/forum/{finding_id}", status_code=303)


@router.post("/forum/{finding_id}/hide")
def hide(request: Request, finding_id: int = Path(ge=1),
         reason: str = Form(..., min_length=1, max_length=500), csrf: str = Form("")):
    return _hide(request, finding_id, True, reason, csrf)


@router.post("/forum/{finding_id}/unhide")
def unhide(request: Request, finding_id: int = Path(ge=1),
           reason: str = Form(..., min_length=1, max_length=500), csrf: str = Form("")):
    return _hide(request, finding_id, False, reason, csrf)


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission(request: Request, submission_id: int = Path(ge=1)):
    with _store(request).session() as s:
        sub = queries.submission(s, submission_id, auth.is_admin(request))
    if sub is None:
        return not_found(request, f"no submission {submission_id}")
    return page(request, "submission.html", sub=sub)


def _blobs(request: Request) -> tuple[snapshots.BlobStore, ArchiveLimits]:
    settings = request.app.state.settings
    return snapshots.BlobStore(settings.snapshots_dir), ArchiveLimits.from_settings(settings)


@router.get("/snapshots/{snapshot_id}", response_class=HTMLResponse)
def snapshot(request: Request, snapshot_id: str = Path(pattern=SHA256)):
    with _store(request).session() as s:
        try:
            snap = snapshots.detail(s, snapshot_id)
        except ForumError as e:
            return not_found(request, str(e))
    return page(request, "snapshot.html", snap=snap, path=None, content=None)


@router.get("/snapshots/{snapshot_id}/files/{path:path}", response_class=HTMLResponse)
def snapshot_file(request: Request, snapshot_id: str = Path(pattern=SHA256),
                  path: str = Path(max_length=1024)):
    blobs, limits = _blobs(request)
    with _store(request).session() as s:
        try:
            snap = snapshots.detail(s, snapshot_id)
            data, size = snapshots.member(s, blobs, limits, snapshot_id, path,
                                          prefix=FILE_SHOWN)
        except ForumError as e:
            return not_found(request, str(e))
    try:
        # Shown as escaped text inside <pre>: a researcher's file is data, never markup. A cut
        # prefix may end inside a character: not final, so that is no sign of a binary file.
        content = codecs.getincrementaldecoder("utf-8")().decode(data, final=size <= len(data))
    except UnicodeDecodeError:
        content = None
    return page(request, "snapshot.html", snap=snap, path=path, content=content,
                size=size, truncated=size > FILE_SHOWN)


@router.get("/researchers", response_class=HTMLResponse)
def researchers(request: Request):
    with _store(request).session() as s:
        rows = queries.researchers(s, auth.is_admin(request))
    return page(request, "researchers.html", rows=rows)


@router.get("/researchers/{name}", response_class=HTMLResponse)
def researcher(request: Request, name: str = Path(max_length=64)):
    admin, scoring = auth.is_admin(request), get_service(request)
    with _store(request).session() as s:
        data = queries.researcher(s, scoring, name, admin)
    if data is None:
        return not_found(request, f"no researcher {name!r}")
    chart = progress_svg(data["curves"], queries.chart_refs(None), width=720, height=220)
    return page(request, "researcher.html", d=data, chart=chart)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, kind: str | None = Query(None, max_length=64)):
    admin, scoring = auth.is_admin(request), get_service(request)
    with _store(request).session() as s:
        data = queries.audit_page(s, scoring, kind or None, admin)
    return page(request, "audit.html", d=data, kind=kind or "")


@router.get("/tasks", response_class=HTMLResponse)
def tasks(request: Request):
    scoring = get_service(request)
    with _store(request).session() as s:
        names = queries.task_names(s, scoring)
    return page(request, "tasks.html", names=names, served=set(scoring.served_names()))


@router.get("/tasks/{name}", response_class=HTMLResponse)
def task(request: Request, name: str = Path(pattern=TASK)):
    data = queries.task_page(get_service(request), name, auth.is_admin(request))
    if data is None:
        return not_found(request, f"task {name!r} is not built on this server")
    return page(request, "task.html", t=data)


# --- admin sign-in ----------------------------------------------------------------------------


def _signed_in(request: Request, token: str, target: str | None) -> Response:
    resp = RedirectResponse(auth.safe_next(target), status_code=303)
    auth.set_admin_cookie(resp, token, secure=request.url.scheme == "https")
    return resp


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, token: str | None = Query(None, max_length=500),
               next: str | None = Query(None, max_length=2000)):  # noqa: A002
    if token is not None:  # ?token= once: set the cookie and drop the token from the URL
        if is_admin_token(token, request.app.state.settings.admin_token):
            return _signed_in(request, token, next)
        return page(request, "login.html", status=401, next=auth.safe_next(next),
                    error="token: this is not the lab's admin token")
    return page(request, "login.html", next=auth.safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, token: str = Form("", max_length=500),
          next: str = Form("/", max_length=2000)):  # noqa: A002
    if is_admin_token(token, request.app.state.settings.admin_token):
        return _signed_in(request, token, next)
    return page(request, "login.html", status=401, next=auth.safe_next(next),
                error="token: this is not the lab's admin token" if token
                else "token: paste the lab's admin token")


@router.post("/logout")
def logout(request: Request) -> Response:
    resp = RedirectResponse("/", status_code=303)
    auth.clear_admin_cookie(resp)
    return resp


@router.get("/static/{name}")
def static(name: str) -> Response:
    media = STATIC.get(name)
    if media is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response((HERE / "static" / name).read_bytes(), media_type=media,
                    headers={"Cache-Control": "public, max-age=300",
                             "X-Content-Type-Options": "nosniff"})
