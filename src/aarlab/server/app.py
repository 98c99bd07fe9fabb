"""Application factory. Each service contributes a router; logic lives in the services.

``create_app(settings)`` builds the app around one ``Store``; routers get it through
``request.app.state.store`` (see ``aarlab.server.deps``).

``role`` says who the listener is for. ``"researcher"``: what a sandbox (or a Ray node) reaches,
the researcher API only: scoring, kits, forum, snapshots, telemetry; no dashboard page and no
route that takes the admin token, so nothing a sandbox can ask for is rendered from the lab's
files or guarded only by a secret it might steal. ``"dashboard"``: the web pages and the admin
API, for a person. ``"all"``: both (a person's loopback listener, and tests).
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from aarlab import __version__
from aarlab.config import Settings, get_settings
from aarlab.errors import AarlabError
from aarlab.forum import routes as forum_routes
from aarlab.forum import snapshot_routes
from aarlab.forum import tables as _forum_tables
from aarlab.lab import routes as lab_routes
from aarlab.lab import tables as _lab_tables  # noqa: F401
from aarlab.researchers.llm import tables as _llm_tables  # noqa: F401
from aarlab.scoring import routes as scoring_routes
from aarlab.scoring import tables as _scoring_tables  # noqa: F401
from aarlab.server.deps import require_admin
from aarlab.server.limits import BodyLimitMiddleware, InFlightLimitMiddleware
from aarlab.server.streams import ChunkedBodies
from aarlab.store import audit as _audit_tables  # noqa: F401
from aarlab.store.db import Store
from aarlab.store.identity import authenticate
from aarlab.tasks import routes as task_routes
from aarlab.web import routes as web_routes

# The ``*_tables`` imports above register every table, so that ``store.create_all()`` makes
# them all: the store itself names no service above it.

Role = Literal["researcher", "dashboard", "all"]
ROLES: tuple[str, ...] = ("researcher", "dashboard", "all")

# Each module exposes ``router`` (an APIRouter). Listed in the order the OpenAPI doc shows them.
API_MODULES: list[ModuleType] = [scoring_routes, task_routes, forum_routes, snapshot_routes,
                                 lab_routes]
DASHBOARD_MODULES: list[ModuleType] = [web_routes]
ROUTER_MODULES = API_MODULES + DASHBOARD_MODULES


def open_store(settings: Settings) -> Store:
    """The lab's store with every table made (a command that needs the store but no app)."""
    store = Store(settings.database_url)
    store.create_all()
    return store


def create_app(settings: Settings | None = None, store: Store | None = None,
               role: Role = "all") -> FastAPI:
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    settings = settings or get_settings()
    store = store or Store(settings.database_url)
    store.create_all()
    app = FastAPI(title="aarlab", version=__version__,
                  description={"researcher": "The researcher API of an aarlab lab: scoring, "
                                            "kits, forum, snapshots and telemetry.",
                               "dashboard": "The dashboard and admin API of an aarlab lab.",
                               "all": "Scoring server, forum and dashboard of an aarlab lab."
                               }[role])
    if role == "researcher":
        # Not even a stolen admin token opens anything here: this app does not know it.
        settings = settings.model_copy(update={"admin_token": None})
    app.state.settings = settings
    app.state.role = role
    app.state.store = store
    app.state.holds_snapshot = _forum_tables.holds_snapshot  # for scoring, a layer below
    app.add_middleware(BodyLimitMiddleware, limit_for=lambda method, path: _body_cap(
        settings, method, path))
    # Inside the in-flight limit: a large answer is sent in pieces that wait for the client,
    # so one nobody reads holds its request's slot (aarlab.server.streams).
    app.add_middleware(ChunkedBodies)
    # Added last, so it runs first: a refused request's body is never read.
    app.add_middleware(InFlightLimitMiddleware, per_token=settings.requests_in_flight,
                       anonymous=role == "researcher", known=lambda token: _is_researcher(
                           store, token))

    @app.exception_handler(AarlabError)
    async def _user_error(request: Request, exc: AarlabError) -> JSONResponse:
        # The one mapping from a service's error to HTTP: its status, its one-line message.
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)},
                            headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name each field and what was wrong, never echo the input: it is the caller's (a
        # sandbox's) bytes, and a value JSON cannot carry (-Infinity parses) would turn the
        # answer into a 500.
        return JSONResponse(status_code=422, content={"detail": validation_details(exc)})

    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: OverflowError) -> JSONResponse:
        # An id, limit or offset past what the database holds (SQLite: 64-bit integers) is the
        # caller's mistake, never a server error.
        return JSONResponse(status_code=422, content={
            "detail": f"a number in the request is out of range: ids, limits and offsets "
                      f"are at most {2 ** 63 - 1}"})

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict:
        return {"ok": True, "version": __version__}

    for router in routers_for(role):
        app.include_router(router)
    return app


def _is_researcher(store: Store, token: str) -> bool:
    with store.session() as s:
        return authenticate(s, token) is not None


def validation_details(exc: RequestValidationError) -> list[dict]:
    """FastAPI's error list, each entry cut to where (``loc``), what (``msg``) and ``type``."""
    return [{"type": str(e.get("type", "")), "loc": [p if isinstance(p, int) else str(p)
                                                    for p in e.get("loc", ())],
             "msg": str(e.get("msg", ""))} for e in exc.errors()]


def routers_for(role: Role) -> list[APIRouter]:
    """The routers a listener of ``role`` serves (each module's own, or a copy holding only
    the routes that role keeps)."""
    out = []
    for module in API_MODULES if role == "researcher" else ROUTER_MODULES:
        router = module.router
        if role != "all":
            router = APIRouter()
            router.routes.extend(r for r in module.router.routes if _keep(r, role))
        out.append(router)
    return out


def _keep(route, role: Role) -> bool:  # noqa: ANN001
    if not isinstance(route, APIRoute):
        return role == "all"  # nothing else is in our routers today; refuse the unknown
    if role == "researcher":
        return not _needs_admin(route)
    # The dashboard: its pages (outside /v1) and the admin API; its pages check the admin
    # cookie themselves.
    return not route.path.startswith("/v1/") or _needs_admin(route)


def _needs_admin(route: APIRoute) -> bool:
    """Whether ``route`` depends, anywhere in its dependency tree, on ``require_admin``."""
    todo = [route.dependant]
    while todo:
        d = todo.pop()
        if d.call is require_admin:
            return True
        todo.extend(d.dependencies)
    return False


def _body_cap(settings: Settings, method: str, path: str) -> int | None:
    """Bytes a request body may have; None where the route enforces its own cap as it reads."""
    if method == "POST" and path.startswith("/v1/tasks/") and path.endswith("/submissions"):
        return None  # the scoring route streams and names the task before the size
    if method == "POST" and path.rstrip("/") == "/v1/snapshots":
        return settings.snapshot_max_bytes + 65536  # an archive, plus multipart framing
    return settings.max_body_bytes
