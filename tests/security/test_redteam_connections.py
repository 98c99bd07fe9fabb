"""A sandbox cannot hold the lab process's file descriptors with connections that never ask.

Round 5 of the red team left this open: uvicorn closes a connection only after a response, so
thousands of connections that send nothing (or half a header) stayed open in the lab process,
each a file descriptor, until the process could open no more (its database included). Each
attack here runs against a real ``ServerThread`` over real Unix sockets, one per sandbox, with
small limits so that it is quick.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from aarlab.config import Settings
from aarlab.lab.server_thread import ServerThread
from aarlab.store.db import Store

CAP, TIMEOUT = 4, 0.6


@pytest.fixture
def listeners(tmp_path):
    s = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'lab.db'}",
                 listener_connections=CAP, request_timeout_s=TIMEOUT)
    sock_dir = Path(tempfile.mkdtemp(prefix="cn-"))  # AF_UNIX paths: 107 bytes
    mine, theirs = sock_dir / "lab-1.sock", sock_dir / "lab-2.sock"
    server = ServerThread(s, Store(s.database_url), [mine, theirs],
                          dashboard_socket=sock_dir / "web.sock")
    server.start()
    try:
        yield mine, theirs, sock_dir / "web.sock"
    finally:
        server.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def _raw(path: Path, send: bytes = b"") -> socket.socket:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(str(path))
    if send:
        c.sendall(send)
    return c


def _closed_by_server(c: socket.socket, within: float) -> tuple[bool, bytes]:
    """Whether the server closed ``c`` within ``within`` seconds, and what it sent first."""
    c.settimeout(within)
    got = b""
    try:
        while chunk := c.recv(4096):
            got += chunk
        return True, got
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


def _healthy(path: Path) -> bool:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://lab",
                      timeout=10) as c:
        return c.get("/healthz").status_code == 200


def test_a_listener_full_of_idle_connections_refuses_more_and_blocks_no_other_sandbox(listeners):
    mine, theirs, person = listeners
    idle = [_raw(mine) for _ in range(CAP)]
    time.sleep(0.1)
    extra = _raw(mine)
    closed, said = _closed_by_server(extra, 5)
    assert closed and said.startswith(b"HTTP/1.1 503") and b"connections" in said
    # The other sandbox's listener and the person's dashboard are untouched.
    assert _healthy(theirs) and _healthy(person)
    for c in idle:
        c.close()


def test_connections_that_never_send_a_request_are_closed(listeners):
    mine, _, _ = listeners
    silent = [_raw(mine) for _ in range(CAP)]
    half = _raw(mine, b"GET /healthz HTTP/1.1\r\nhost: lab\r\n")  # a header never finished
    t0 = time.monotonic()
    for c in [*silent, half]:
        closed, said = _closed_by_server(c, TIMEOUT + 5)
        assert closed and not said.startswith(b"HTTP/1.1 2"), said
    assert time.monotonic() - t0 < TIMEOUT + 5
    assert _healthy(mine)  # their slots are free again


def test_a_kept_alive_connection_that_stalls_mid_header_is_closed(listeners):
    mine, _, _ = listeners
    c = _raw(mine, b"GET /healthz HTTP/1.1\r\nhost: lab\r\n\r\n")
    c.settimeout(5)
    assert c.recv(4096).startswith(b"HTTP/1.1 200")
    c.sendall(b"GET /healthz HTTP/1.1\r\nhost: l")  # the next request, never finished
    closed, said = _closed_by_server(c, TIMEOUT + 5)
    assert closed and said == b""


def test_a_request_that_has_started_is_not_cut_by_the_deadline(listeners):
    mine, _, _ = listeners
    body = b'{"title": "x"}'
    c = _raw(mine, b"POST /v1/forum/findings HTTP/1.1\r\nhost: lab\r\n"
                   b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
    time.sleep(TIMEOUT * 2)  # a slow client: past the deadline, its request under way
    c.sendall(body)
    c.settimeout(5)
    answer = c.recv(4096)
    assert answer.startswith(b"HTTP/1.1 4"), answer  # answered (no token: refused), not cut
    c.close()


def test_a_busy_researcher_within_the_cap_is_served(listeners):
    mine, _, _ = listeners
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(mine)), base_url="http://lab",
                      timeout=10) as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200
            time.sleep(TIMEOUT * 0.3)
        time.sleep(TIMEOUT * 2)  # its pooled connection was closed while idle: a new one
        assert c.get("/healthz").status_code == 200


def test_settings_refuse_limits_that_disable_the_guard():
    with pytest.raises(ValueError, match="listener_connections"):
        Settings(listener_connections=0)
    with pytest.raises(ValueError, match="request_timeout_s"):
        Settings(request_timeout_s=0)
