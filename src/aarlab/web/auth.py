"""Who is looking at the dashboard: anyone (read-only, public views) or the lab's admin.

A browser cannot send a bearer header on a plain link, so the admin signs in once: the login
form (or ``/login?token=...``, redirected away at once so the token leaves the address bar)
stores the admin token in an HttpOnly, SameSite=Strict cookie. Scripts cannot read it and other
sites cannot send it. Admin forms also carry a CSRF token derived from the admin token, so a
request forged from elsewhere fails even in a browser that ignores SameSite.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request
from fastapi.responses import Response

from aarlab.config import Settings
from aarlab.store.identity import is_admin_token

COOKIE = "aarlab_admin"
COOKIE_MAX_AGE = 12 * 3600


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def presented_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(COOKIE)


def is_admin(request: Request) -> bool:
    return is_admin_token(presented_token(request), _settings(request).admin_token)


def csrf_token(settings: Settings) -> str:
    if not settings.admin_token:
        return ""
    return hmac.new(settings.admin_token.encode(), b"aarlab-dashboard-csrf",
                    hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, value: str | None) -> bool:
    expected = csrf_token(settings)
    return bool(expected and value) and hmac.compare_digest(expected, value)


def set_admin_cookie(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, httponly=True,
                        samesite="strict", secure=secure, path="/")


def clear_admin_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def safe_next(target: str | None) -> str:
    """Only a path on this site: ``//evil`` or ``https://evil`` would make an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
