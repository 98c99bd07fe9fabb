"""FastAPI dependencies shared by every router: the store, the settings, who is calling.

Every request that touches lab data is attributed: ``current_researcher`` resolves the bearer
token to an active researcher or answers 401; ``require_admin`` accepts only the lab's admin
token. Routes stay thin and receive these as arguments.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aarlab.config import Settings
from aarlab.server.limits import WriteRate
from aarlab.store.db import Store
from aarlab.store.identity import Researcher, authenticate, is_admin_token

# auto_error=False: we answer 401 ourselves (FastAPI's default is 403 for a missing header).
bearer = HTTPBearer(auto_error=False, description="A researcher token, or the admin token.")


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message,
                         headers={"WWW-Authenticate": "Bearer"})


def current_researcher(
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    store: Store = Depends(get_store),
) -> Researcher:
    """The active researcher behind the bearer token (a detached row: read its fields freely)."""
    if creds is None:
        raise _unauthorized("authorization: expected header 'Authorization: Bearer <token>'")
    with store.session() as s:
        r = authenticate(s, creds.credentials)
    if r is None:
        raise _unauthorized("authorization: unknown or revoked token")
    return r


def writing_researcher(request: Request,
                       researcher: Researcher = Depends(current_researcher)) -> Researcher:
    """``current_researcher`` for routes that store what the caller writes (telemetry, forum,
    notebooks): at most ``writes_per_minute`` of them, so a sandbox posting in a loop cannot
    fill the store or make it churn."""
    state = request.app.state
    rate = getattr(state, "write_rate", None)
    if rate is None:
        rate = state.write_rate = WriteRate(state.settings.writes_per_minute)
    rate.check(researcher.id)
    return researcher


def require_admin(
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    settings: Settings = Depends(get_settings),
) -> None:
    if creds is None:
        raise _unauthorized("authorization: expected header 'Authorization: Bearer <admin token>'")
    if not is_admin_token(creds.credentials, settings.admin_token):
        raise _unauthorized("authorization: this endpoint needs the lab's admin token")
