"""Connection limits uvicorn does not have: a cap per listener and a deadline for a request.

uvicorn times a connection out only after a response (its keep-alive timeout). A connection that
never sends a request, or sends half a header and stops, stays open for good, holding a file
descriptor of the lab process; a sandbox could open thousands and leave the lab unable to open
its own database. ``limits.InFlightLimitMiddleware`` cannot see them: they never become requests.

``guarded_h11(max_connections, request_timeout)`` is uvicorn's h11 protocol with three limits:
a listener holds at most ``max_connections`` connections (one past it gets a 503 and is closed at
once, so its descriptor is freed); a connection waiting for a request, new or kept alive, is
dropped when no request has started within ``request_timeout`` seconds, whether or not the
client read the last response (unless it is still draining); and a response the client has
stopped reading (bodies are streamed or sent in pieces, ``aarlab.server.streams``, so it is still
in flight) is dropped when the write buffer has not shrunk for ``request_timeout`` seconds.
``ListenerTag`` names the listener a request came through, so that limits shared by one app's
listeners (the token-less bucket) can be kept per sandbox. With one listener per sandbox
(``aarlab.lab.server_thread``) a sandbox that fills its own listener blocks only itself.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from aarlab.server.limits import LISTENER

_FULL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
         b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


def guarded_h11(max_connections: int, request_timeout: float) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass for ``uvicorn.Config(http=...)`` with these limits."""
    if max_connections < 1 or request_timeout <= 0:
        raise ValueError("max_connections must be >= 1 and request_timeout > 0")

    class GuardedH11Protocol(_Guarded):
        pass

    GuardedH11Protocol.max_connections = max_connections
    GuardedH11Protocol.request_timeout = request_timeout
    return GuardedH11Protocol


class _Guarded(H11Protocol):
    max_connections: int
    request_timeout: float
    _deadline: asyncio.TimerHandle | None = None
    _buffered = 0  # the write buffer when the deadline was set
    _waiting_after = None  # the request cycle current when the deadline was set

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            body = (f"this listener already holds {self.max_connections} connections: close "
                    "idle ones (or send fewer requests at once) and retry\n").encode()
            transport.write(_FULL % (len(body), body))
            transport.close()
            return
        self._expect_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._expect_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_stall()
        super().connection_lost(exc)

    # A response the client stops reading: uvicorn pauses the app's writes (its flow control)
    # and the request stays in flight for as long as the client likes, holding what the app
    # holds. A connection whose write buffer has not shrunk for ``request_timeout`` seconds
    # while paused is dropped; a slow reader that keeps draining it is not.
    _stall: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_progress(self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        self._cancel_stall()
        super().resume_writing()

    def _watch_progress(self, buffered: int) -> None:
        self._cancel_stall()
        self._stall = self.loop.call_later(self.request_timeout, self._check_progress, buffered)

    def _check_progress(self, buffered: int) -> None:
        self._stall = None
        now = self.transport.get_write_buffer_size()
        if now >= buffered:
            self.transport.abort()
        else:
            self._watch_progress(now)

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _expect_request(self) -> None:
        self._cancel_deadline()
        self._waiting_after = self.cycle
        self._buffered = self.transport.get_write_buffer_size()
        self._deadline = self.loop.call_later(self.request_timeout, self._on_deadline)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        # A request started since (a new cycle) or still being answered keeps the connection:
        # requests in flight are bounded per token by the in-flight limit instead.
        started = self.cycle is not self._waiting_after
        busy = self.cycle is not None and not self.cycle.response_complete
        if not started and not busy:
            left = self.transport.get_write_buffer_size()
            if 0 < left < self._buffered:  # the last answer's tail still draining: wait on
                self._expect_request()
                return
            # abort, not close: close() waits for the write buffer to drain, and a client
            # that never reads a response it asked for would keep the connection (and the
            # buffered bytes) for good
            self.transport.abort()


class ListenerTag:
    """The app as one listener serves it: each request's scope says which (``LISTENER``)."""

    def __init__(self, app, name: str):  # noqa: ANN001 - any ASGI app
        self.app, self.name = app, name

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        await self.app({**scope, LISTENER: self.name}, receive, send)
