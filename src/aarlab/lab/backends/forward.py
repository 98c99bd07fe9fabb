"""A Unix socket on a Ray node that forwards, byte for byte, to the lab server's TCP address.

A sandbox has no network namespace of its own to speak of: its one way out is a Unix socket
mounted into it. On the local backend that is the lab server's own socket. On another node the
lab server is across the network, so the researcher's actor listens on a node-local socket and
pipes each connection to the server. The sandbox contract stays the same on every backend, and
the researcher still authenticates with its own token: the forwarder adds no privilege.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

_CHUNK = 1 << 16


class SocketForwarder:
    """Listen on ``socket`` and forward every connection to ``host:port`` (in a daemon thread)."""

    def __init__(self, socket: Path, host: str, port: int):
        self.socket, self.host, self.port = Path(socket), host, port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="aarlab-forwarder")

    def start(self) -> Path:
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # left by an actor that was killed
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(timeout=10)
        os.chmod(self.socket, 0o600)  # only this user (and the sandbox it mounts into)
        return self.socket

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()  # open connections end with the forwarder
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> asyncio.base_events.Server:
        return await asyncio.start_unix_server(self._serve, path=str(self.socket))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()  # the client sees a closed connection, as with a dead server
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(ConnectionError, OSError):
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other side may still be answering
    except (ConnectionError, OSError):
        pass  # either side went away; the other pipe ends on its own EOF
