"""Application factory. Each service contributes a router; logic lives in the services.

``create_app(settings)`` builds the app around one ``Store``; routers get it through
``request.app.state.store`` (see ``aarlab.server.deps``).
"""

from __future__ import annotations

import importlib

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aarlab import __version__
from aarlab.config import Settings, get_settings
from aarlab.server.limits import BodyLimitMiddleware
from aarlab.store.db import Store

# Each module exposes ``router`` (an APIRouter). Listed in the order the OpenAPI doc shows them.
ROUTER_MODULES = [
    "aarlab.scoring.routes",
    "aarlab.tasks.routes",
    "aarlab.forum.routes",
    "aarlab.forum.snapshot_routes",
    "aarlab.lab.routes",
    "aarlab.web.routes",
]


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = store or Store(settings.database_url)
    store.create_all()
    app = FastAPI(title="aarlab", version=__version__,
                  description="Scoring server, forum and dashboard of an aarlab lab.")
    app.state.settings = settings
    app.state.store = store
    app.add_middleware(BodyLimitMiddleware, limit_for=lambda method, path: _body_cap(
        settings, method, path))

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

    for name in ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        app.include_router(module.router)
    return app


def _body_cap(settings: Settings, method: str, path: str) -> int | None:
    """Bytes a request body may have; None where the route enforces its own cap as it reads."""
    if method == "POST" and path.startswith("/v1/tasks/") and path.endswith("/submissions"):
        return None  # the scoring route streams and names the task before the size
    if method == "POST" and path.rstrip("/") == "/v1/snapshots":
        return settings.snapshot_max_bytes + 65536  # an archive, plus multipart framing
    return settings.max_body_bytes
