"""Response bodies sent a chunk at a time, so that a client that stops reading holds its request.

A whole body handed to uvicorn at once lands in the connection's write buffer: the request
counts as done (the in-flight limit lets it go) while the bytes wait for a reader that may never
come, so a sandbox could park a 20 MB snapshot per connection in the lab process. Streamed, each
``send`` waits for the client (uvicorn's flow control), the request stays in flight, and a
stalled reader holds one chunk and one of its own token's in-flight slots.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

CHUNK = 1 << 16


def file_chunks(f: IO[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Read ``f`` in chunks, closing it at the end (or when the response is abandoned)."""
    with f:
        while chunk := f.read(size):
            yield chunk


def bytes_chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start:start + size])
