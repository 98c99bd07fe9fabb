"""HTTP transport to a lab server: TCP base URL or Unix socket, bearer auth, error mapping.

Sandboxes see only the lab's Unix socket, so ``socket=`` is the common case there; on the lab
machine a ``base_url`` works too. Every non-2xx answer becomes a ``LabError`` subclass carrying
the server's one-line message, so callers (and the CLI) print it without a traceback.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from aarlab.errors import AarlabError


class LabError(AarlabError):
    """The server refused a request; ``status`` is the HTTP code, ``message`` its explanation."""

    def __init__(self, status: int, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.status = status


class AuthError(LabError):
    pass


class NotFound(LabError):
    pass


class InvalidRequest(LabError):
    pass


class BudgetExceeded(LabError):
    def __init__(self, status: int, message: str, retry_after: float | None):
        super().__init__(status, message,
                         hint=f"retry after {retry_after:.0f} s" if retry_after else None)
        self.retry_after = retry_after


class ServerError(LabError):
    pass


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI's validation errors: name each field
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
                         for e in detail if isinstance(e, dict)) or str(detail)
    return str(detail)


def raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    code, msg = resp.status_code, _detail(resp)
    if code == 401:
        raise AuthError(code, msg, hint="check the token (AARLAB_TOKEN)")
    if code == 404:
        raise NotFound(code, msg)
    if code == 429:
        ra = resp.headers.get("Retry-After")
        raise BudgetExceeded(code, msg, float(ra) if ra else None)
    if code >= 500:
        raise ServerError(code, msg)
    raise InvalidRequest(code, msg)


class BaseClient:
    """One connection pool to the lab. Use as a context manager or call ``close()``.

    ``base_url`` (e.g. ``http://127.0.0.1:8400``) or ``socket`` (a Unix socket path); without
    either, ``AARLAB_SOCKET`` then ``AARLAB_URL`` from the environment. ``token`` defaults to
    ``AARLAB_TOKEN``.
    """

    def __init__(self, base_url: str | None = None, socket: str | os.PathLike | None = None,
                 token: str | None = None, timeout: float = 60.0):
        if base_url and socket:
            raise ValueError("give base_url or socket, not both")
        socket = socket or (None if base_url else os.environ.get("AARLAB_SOCKET"))
        base_url = base_url or (None if socket else os.environ.get("AARLAB_URL"))
        if not base_url and not socket:
            raise AarlabError("no lab address", hint="pass base_url= or socket=, or set "
                              "AARLAB_SOCKET / AARLAB_URL")
        token = token if token is not None else os.environ.get("AARLAB_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.HTTPTransport(uds=str(socket)) if socket else None
        self.http = httpx.Client(base_url=base_url or "http://lab", transport=transport,
                                 headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send, raise ``LabError`` on refusal, return the decoded JSON (or None if empty)."""
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise LabError(0, f"cannot reach the lab at {self.http.base_url}: {e}",
                           hint="is `aarlab serve` running?") from e
        raise_for(resp)
        self.last_response = resp
        return resp.json() if resp.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def health(self) -> dict:
        return self.get("/healthz")

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
