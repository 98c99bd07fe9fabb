"""Response bodies sent a chunk at a time, so that a client that stops reading holds its request.

A whole body handed to uvicorn at once lands in the connection's write buffer: the request
counts as done (the in-flight limit lets it go) while the bytes wait for a reader that may never
come, so a sandbox could park a 20 MB snapshot per connection in the lab process. Streamed, each
``send`` waits for the client (uvicorn's flow control), the request stays in flight, and a
stalled reader holds one of its own token's in-flight slots and what the route read (a chunk of
a file; a snapshot member or a JSON answer whole, sent in pieces by ``ChunkedBodies``) until
``aarlab.server.connections`` drops it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CHUNK = 1 << 16


class FileStream(StreamingResponse):
    """An open file streamed in chunks and closed when the response ends, however it ends: a
    client that disconnects half way leaves the chunk generator unfinished (and its ``with``
    unrun) until the garbage collector finds it, so the file is closed here instead."""

    def __init__(self, f: IO[bytes], size: int = CHUNK, **kwargs) -> None:
        self.file = f
        super().__init__(file_chunks(f, size), **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.file.close()


def file_chunks(f: IO[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Read ``f`` in chunks, closing it at the end (or when the response is abandoned)."""
    with f:
        while chunk := f.read(size):
            yield chunk


class ChunkedBodies:
    """Every response body larger than ``size`` sent in ``size`` pieces, each a ``send`` that
    waits for the client (uvicorn's flow control): a JSON answer nobody reads (a finding with a
    hundred long revisions) then stays in flight, one of its token's limited slots, instead of
    leaving the limit at once with its megabytes parked in the connection's write buffer.
    Mounted inside ``limits.InFlightLimitMiddleware``."""

    def __init__(self, app: ASGIApp, size: int = CHUNK):
        self.app, self.size = app, size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def chunked(message: Message) -> None:
            body = message.get("body", b"")
            if message["type"] != "http.response.body" or len(body) <= self.size:
                await send(message)
                return
            view, more = memoryview(body), message.get("more_body", False)
            for start in range(0, len(view), self.size):
                last = start + self.size >= len(view)
                await send({"type": "http.response.body",
                            "body": bytes(view[start:start + self.size]),
                            "more_body": more if last else True})

        await self.app(scope, receive, chunked)
