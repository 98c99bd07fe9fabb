"""The app's limits: a cap on request bodies, requests in flight per token, and one rate of
writes per researcher.

FastAPI reads a whole JSON body before validating it, so without the cap a single request could
make the server buffer gigabytes. Declared lengths are refused up front; streamed (chunked)
bodies are counted as they arrive and cut off at the cap.

``InFlightLimitMiddleware`` bounds what one token holds at once: a body is read (and buffered,
up to its cap) only once a request is admitted, so a sandbox opening a thousand uploads and
stalling them cannot hold a thousand bodies.

``WriteRate`` is the one limiter on what a researcher stores (telemetry, forum writes, notebook
publishes): a sandbox writing in a loop is refused with 429 and a ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aarlab.errors import TooManyRequests


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int | None]):
        self.app = app
        self.limit_for = limit_for  # (method, path) -> bytes, or None: the route caps itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        seen, started, refused = 0, False, False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answer now: a route may turn the error below into its own 400.
                    if not started:
                        refused = True
                        await _refuse(send, limit)
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 already went out
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):  # the 413 was sent from counting_receive
            await self.app(scope, counting_receive, tracking_send)


_REFUSE = b"refuse"  # a _key result: not a bucket, a 401
LISTENER = "aarlab.listener"  # the scope key naming the listener (connections.ListenerTag)


class InFlightLimitMiddleware:
    """``per_token`` requests in flight per bearer token; with ``anonymous`` (a listener that
    sandboxes reach, where every route but ``open_paths`` needs a token), a request that may
    carry a body without a known token is a 401 before the app runs (FastAPI reads a JSON body
    before its auth check, so such requests could hold bodies and slots shared by every
    sandbox), and the others without one share a bucket per listener (``ListenerTag``); a bodiless
    request's made-up token is a bucket of its own, at most a connection's worth (one request
    at a time each, 64 connections a listener)."""

    def __init__(self, app: ASGIApp, per_token: int, anonymous: bool = False,
                 known: Callable[[str], bool] | None = None,
                 open_paths: frozenset[str] = frozenset({"/healthz"})):
        """``known(token)``: whether a token is one the listener serves (a researcher's)."""
        self.app = app
        self.per_token = per_token
        self.anonymous = anonymous
        self.open_paths = open_paths
        self.known = known
        self._in_flight: dict[bytes, int] = {}
        self._lock = threading.Lock()  # one app may be served by several listeners' loops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(k == b"authorization"
                                           for k, _ in scope["headers"]) > 1:
            # Starlette's header map and this one would disagree on which counts: the auth
            # check took the first, the bucket the last (a made-up one per request).
            await _answer(send, 400, "authorization: expected one Authorization header")
            return
        key = self._key(scope)
        if key == _REFUSE:
            await _answer(send, 401, "authorization: expected header 'Authorization: Bearer "
                                     "<token>' with a researcher's token",
                          [(b"www-authenticate", b"Bearer")])
            return
        if key is None:
            await self.app(scope, receive, send)
            return
        with self._lock:
            n = self._in_flight.get(key, 0)
            if n < self.per_token:
                self._in_flight[key] = n + 1
        if n >= self.per_token:
            await _answer(send, 429, f"requests: at most {self.per_token} in flight per token "
                                     "(requests_in_flight)", [(b"retry-after", b"1")])
            return
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                left = self._in_flight[key] - 1
                if left:
                    self._in_flight[key] = left
                else:
                    del self._in_flight[key]

    def _key(self, scope: Scope) -> bytes | None:
        if scope["type"] != "http":
            return None
        token = bearer_token(dict(scope["headers"]).get(b"authorization"))
        refuse = (self.anonymous and scope.get("path") not in self.open_paths
                  and _may_have_body(scope))
        if not token:  # one bucket per listener: each sandbox has a listener of its own
            listener = str(scope.get(LISTENER, "")).encode()
            return (_REFUSE if refuse else b"anonymous:" + listener) if self.anonymous else None
        # Asked each time, not cached: a token revoked since must not have its bodies read.
        if refuse and self.known is not None and not self.known(token):
            return _REFUSE
        return hashlib.sha256(token.encode("latin-1")).digest()  # no token kept as it was sent


def bearer_token(header: bytes | None) -> str:
    """The token of an ``Authorization`` header read exactly as the auth check reads it
    (FastAPI's ``HTTPBearer``: Latin-1, the scheme up to the first space, the rest stripped of
    any whitespace ``str.strip`` knows), so that one token is one bucket however its header is
    spelt; "" when the scheme is not Bearer (the auth check then sees no token either)."""
    scheme, token = get_authorization_scheme_param((header or b"").decode("latin-1"))
    return token if scheme.lower() == "bearer" else ""


def _may_have_body(scope: Scope) -> bool:
    """A request whose body FastAPI could read before its auth check (a bodiless GET without a
    token is answered at once, 401 or 404, so it holds nothing)."""
    headers = dict(scope["headers"])
    return (scope.get("method") not in ("GET", "HEAD", "OPTIONS")
            or b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0")


async def _answer(send: Send, status: int, detail: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, limit: int) -> None:
    await _answer(send, 413, f"body: at most {limit} bytes")


class TooManyWrites(TooManyRequests):
    pass


class WriteRate:
    """At most ``per_minute`` writes per researcher in any sliding minute (kept in memory: a
    restart forgets it, which only a lab owner can cause)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, researcher_id: int) -> None:
        now = self._clock()
        with self._lock:
            q = self._seen.setdefault(researcher_id, deque())
            while q and q[0] <= now - 60:
                q.popleft()
            if len(q) >= self.per_minute:
                raise TooManyWrites(f"writes: {self.per_minute} per minute used "
                                    f"(writes_per_minute)", q[0] + 60 - now)
            q.append(now)
