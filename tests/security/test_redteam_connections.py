"""A sandbox cannot hold the lab process's file descriptors with connections that never ask.

Round 5 of the red team left this open: uvicorn closes a connection only after a response, so
thousands of connections that send nothing (or half a header) stayed open in the lab process,
each a file descriptor, until the process could open no more (its database included). Each
attack here runs against a real ``ServerThread`` over real Unix sockets, one per sandbox, with
small limits so that it is quick.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from aarlab.config import Settings
from aarlab.lab.server_thread import ServerThread
from aarlab.server.app import open_store
from aarlab.store.identity import add_researcher

CAP, TIMEOUT = 4, 0.6
SLOW_TIMEOUT = 3.0  # where a test needs several requests under way inside one deadline


@pytest.fixture
def listeners(tmp_path):
    s = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'lab.db'}",
                 listener_connections=CAP, request_timeout_s=TIMEOUT)
    sock_dir = Path(tempfile.mkdtemp(prefix="cn-"))  # AF_UNIX paths: 107 bytes
    mine, theirs = sock_dir / "lab-1.sock", sock_dir / "lab-2.sock"
    store = open_store(s)
    with store.session() as db:
        _, token = add_researcher(db, "mallory")
    server = ServerThread(s, store, [mine, theirs], dashboard_socket=sock_dir / "web.sock")
    server.start()
    try:
        yield mine, theirs, sock_dir / "web.sock", token
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


def _client(path: Path, token: str | None = None, timeout: float = 10) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://lab",
                        headers={"Authorization": f"Bearer {token}"} if token else {},
                        timeout=timeout)


def _healthy(path: Path) -> bool:
    with _client(path) as c:
        return c.get("/healthz").status_code == 200


def _answers(path: Path) -> bool:
    """Whether a server answers /healthz on ``path`` yet (its file exists once bound, before it
    listens)."""
    try:
        return path.exists() and _healthy(path)
    except httpx.TransportError:
        return False


def _get(path: str, token: str) -> bytes:
    """A raw GET of ``path`` with ``token``, as one request's bytes."""
    return (f"GET {path} HTTP/1.1\r\nhost: lab\r\n"
            f"authorization: Bearer {token}\r\n\r\n").encode()


def _unread(sock: Path, ask: bytes, n: int, gap: float = 0.0) -> list[socket.socket]:
    """``n`` connections that each send ``ask`` and read nothing (a small receive buffer)."""
    held = []
    for _ in range(n):
        k = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        k.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        k.connect(str(sock))
        k.sendall(ask)
        held.append(k)
        time.sleep(gap)
    return held


def _buffered(server: ServerThread) -> int:
    """Bytes in the write buffers of the first listener's connections."""
    return sum(conn.transport.get_write_buffer_size()
               for conn in server.servers[0].server_state.connections)


def _refused(held: list[socket.socket]) -> int:
    """How many of ``held`` were answered 429 (a full in-flight limit)."""
    n = 0
    for k in held:
        k.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            n += k.recv(64).startswith(b"HTTP/1.1 429")
    return n


def _stop(server: ServerThread, sock_dir: Path) -> None:
    for srv in server.servers:  # held connections: uvicorn's shutdown would wait for them
        for conn in list(srv.server_state.connections):
            conn.transport.abort()
    server.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_a_listener_full_of_idle_connections_refuses_more_and_blocks_no_other_sandbox(listeners):
    mine, theirs, person, _ = listeners
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
    mine, _, _, _ = listeners
    silent = [_raw(mine) for _ in range(CAP - 1)]  # with the next one: the listener full
    half = _raw(mine, b"GET /healthz HTTP/1.1\r\nhost: lab\r\n")  # a header never finished
    t0 = time.monotonic()
    for c in [*silent, half]:
        closed, said = _closed_by_server(c, TIMEOUT + 5)
        assert closed and not said.startswith(b"HTTP/1.1 2"), said
    assert time.monotonic() - t0 < TIMEOUT + 5
    assert _healthy(mine)  # their slots are free again


def test_a_kept_alive_connection_that_stalls_mid_header_is_closed(listeners):
    mine, _, _, _ = listeners
    c = _raw(mine, b"GET /healthz HTTP/1.1\r\nhost: lab\r\n\r\n")
    c.settimeout(5)
    assert c.recv(4096).startswith(b"HTTP/1.1 200")
    c.sendall(b"GET /healthz HTTP/1.1\r\nhost: l")  # the next request, never finished
    closed, said = _closed_by_server(c, TIMEOUT + 5)
    assert closed and b"HTTP/1.1" not in said  # (the rest of the first answer, at most)


def test_a_request_that_has_started_is_not_cut_by_the_deadline(listeners):
    mine, _, _, token = listeners
    body = b'{"title": "x"}'
    c = _raw(mine, b"POST /v1/forum/findings HTTP/1.1\r\nhost: lab\r\nauthorization: Bearer "
                   + token.encode() + b"\r\ncontent-type: application/json\r\n"
                   b"content-length: %d\r\n\r\n" % len(body))
    time.sleep(TIMEOUT * 2)  # a slow client: past the deadline, its request under way
    c.sendall(body)
    c.settimeout(5)
    answer = c.recv(4096)
    assert answer.startswith(b"HTTP/1.1 422"), answer  # answered (a finding needs a body)
    c.close()


def test_a_busy_researcher_within_the_cap_is_served(listeners):
    mine, _, _, _ = listeners
    with _client(mine) as c:
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


def _random_targz(n_bytes: int) -> bytes:
    import io
    import os
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = n_bytes
        tar.addfile(info, io.BytesIO(os.urandom(n_bytes)))
    return buf.getvalue()


@pytest.fixture
def small_in_flight(tmp_path):
    s = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'lab.db'}",
                 listener_connections=16, request_timeout_s=SLOW_TIMEOUT,
                 requests_in_flight=3)
    sock_dir = Path(tempfile.mkdtemp(prefix="cn-"))
    store = open_store(s)
    with store.session() as db:
        _, token = add_researcher(db, "mallory")
    server = ServerThread(s, store, [sock_dir / "lab-1.sock"])
    server.start()
    try:
        yield server, token
    finally:
        _stop(server, sock_dir)


def test_downloads_a_sandbox_never_reads_hold_its_own_slots_not_the_lab_memory(small_in_flight):
    # Round 6: a snapshot's archive was handed to uvicorn whole, so the request ended at once
    # (out of the in-flight limit) and its bytes sat in the lab process for as long as the
    # sandbox did not read them: 64 connections x 20 MB per sandbox. Streamed, an unread
    # download stays in flight, holding one of its own token's slots and a chunk or two;
    # round 7: and only until no byte of it has gone out for the request timeout.
    server, token = small_in_flight
    sock = server.socket
    archive = _random_targz(6_000_000)
    with _client(sock, token, 30) as c:
        r = c.post("/v1/snapshots", content=archive,
                   headers={"content-type": "application/gzip"})
        assert r.status_code in (200, 201), r.text
        sid = r.json()["id"]
        # a reader that does read gets the archive whole
        assert c.get(f"/v1/snapshots/{sid}/archive").content == archive
    time.sleep(0.5)  # that request's slot is released once its response has ended
    held = _unread(sock, _get(f"/v1/snapshots/{sid}/archive", token), 6)
    time.sleep(SLOW_TIMEOUT / 2)  # well within the deadline: all six asked, none read
    buffered = _buffered(server)
    assert buffered < len(archive) // 2, buffered  # not one archive's worth, let alone six
    # three admitted (requests_in_flight=3), the others told so at once
    assert _refused(held) == 3
    # A stalled reader is dropped once nothing has gone out for the deadline: its slots free.
    deadline = time.monotonic() + SLOW_TIMEOUT * 6
    while server.servers[0].server_state.connections and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.servers[0].server_state.connections
    with _client(sock, token, 30) as c:
        assert [c.get("/v1/me").status_code for _ in range(3)] == [200] * 3
    for k in held:
        k.close()


def test_a_pipelined_flood_nobody_reads_is_dropped_and_frees_the_shared_bucket(listeners):
    # Round 7: 4 connections each pipelining 4,000 token-less /healthz and reading none held
    # the token-less bucket (shared by every sandbox) for good: their writes waited on a reader.
    mine, theirs, _, _ = listeners
    flood = [_raw(mine) for _ in range(CAP - 1)]
    for c in flood:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(2)
        with contextlib.suppress(OSError):  # the server stops reading once its writes wait
            c.sendall(b"GET /healthz HTTP/1.1\r\nhost: lab\r\n\r\n" * 4000)
    time.sleep(TIMEOUT * 4)
    for c in flood:  # what was sent before the drop can still be read; then the end
        closed, said = _closed_by_server(c, 5)
        assert closed and len(said) < 4000 * 100
    assert _healthy(theirs) and _healthy(mine)


def test_requests_that_uvicorn_warns_about_do_not_flood_the_lab_log(listeners):
    # Round 6: each request asking for a protocol upgrade logged two WARNING lines, with no
    # token needed: 2,000 pipelined on one connection wrote 4,000 lines to the lab's terminal.
    import logging

    mine, _, _, _ = listeners
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("uvicorn.error").addHandler(handler)
    try:
        ask = (b"GET /healthz HTTP/1.1\r\nhost: lab\r\nconnection: upgrade\r\n"
               b"upgrade: websocket\r\n\r\n")
        c = _raw(mine, ask * 20 + b"\x00 not http\r\n\r\n")
        _closed_by_server(c, 5)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []


def test_a_download_abandoned_half_way_closes_its_file(small_in_flight):
    # Round 7: a client gone mid-download left the chunk generator unfinished, and its file
    # open until the garbage collector found the cycle (40 disconnects, collector off: 40
    # open files). The response closes its file however it ends.
    import gc
    import os

    server, token = small_in_flight
    sock = server.socket
    with _client(sock, token, 30) as c:
        sid = c.post("/v1/snapshots", content=_random_targz(2_000_000),
                     headers={"content-type": "application/gzip"}).json()["id"]

    def open_blobs() -> int:
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                n += sid in os.readlink(f"/proc/self/fd/{fd}")
        return n

    ask = _get(f"/v1/snapshots/{sid}/archive", token)
    gc.disable()
    try:
        for _ in range(8):
            k = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            k.connect(str(sock))
            k.sendall(ask)
            k.settimeout(5)
            k.recv(1000)  # the download has begun
            k.close()
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        while open_blobs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_blobs() == 0
    finally:
        gc.enable()


def _big_finding(sock: Path, token: str, revisions: int = 8) -> int:
    """A finding whose page (every revision) is about ``revisions`` x 200 KB of JSON."""
    body = "\U0001f600" * 49_990  # 4 bytes each in UTF-8
    with _client(sock, token, 30) as c:
        fid = c.post("/v1/forum/findings", json={"kind": "insight", "title": "t",
                                                 "body": body}).json()["id"]
        for i in range(revisions - 1):
            r = c.post(f"/v1/forum/findings/{fid}/revisions", json={"body": body + str(i)})
            assert r.status_code in (200, 201), r.text
        return fid


def test_large_answers_nobody_reads_hold_their_slots_not_the_lab_memory(small_in_flight):
    # Round 8: a finding's page (every revision; 80 MB at a researcher's text quota) was
    # written to uvicorn whole, so its request left the in-flight limit at once while the
    # bytes waited for a reader: one per connection, 64 connections, again after each drop.
    # Sent in pieces that wait for the client, an unread one holds one of its token's slots.
    server, token = small_in_flight
    sock = server.socket
    fid = _big_finding(sock, token)
    held = _unread(sock, _get(f"/v1/forum/findings/{fid}", token), 6, gap=0.1)
    time.sleep(SLOW_TIMEOUT / 2)
    buffered = _buffered(server)
    assert buffered < 1_000_000, buffered  # one page is 1.6 MB; six were parked before
    assert _refused(held) == 3
    for k in held:
        k.close()


def test_a_slow_but_steady_reader_of_a_large_answer_gets_all_of_it(small_in_flight):
    # Round 8: a reader slower than (answer / timeout) was cut mid-answer: the stall check
    # waited for the buffer to empty, not for it to shrink. (The kernel's socket buffers,
    # ~200 KB, hide a reader's progress from the lab for a while: a reader must take more
    # than that per timeout, here 16 KB every 50 ms against 3 s.)
    server, token = small_in_flight
    fid = _big_finding(server.socket, token, revisions=10)  # 2 MB: over two timeouts to read
    k = _raw(server.socket, _get(f"/v1/forum/findings/{fid}", token))
    got = b""
    k.settimeout(SLOW_TIMEOUT * 3)
    while not got.endswith(b"}"):
        chunk = k.recv(16_384)
        assert chunk, f"cut after {len(got)} bytes"
        got += chunk
        time.sleep(0.05)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) > 1_900_000
    k.close()


def test_the_token_less_bucket_is_each_listeners_own(tmp_path):
    # Round 8: token-less requests (a health check) shared one bucket across every sandbox's
    # listener: one sandbox pipelining unread /healthz, draining now and then, held it.
    s = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'lab.db'}",
                 listener_connections=8, request_timeout_s=SLOW_TIMEOUT, requests_in_flight=2)
    sock_dir = Path(tempfile.mkdtemp(prefix="cn-"))
    mine, theirs = sock_dir / "lab-1.sock", sock_dir / "lab-2.sock"
    server = ServerThread(s, open_store(s), [mine, theirs])
    server.start()
    flood = []
    try:
        for _ in range(2):
            c = _raw(mine)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.settimeout(2)
            with contextlib.suppress(OSError):
                c.sendall(b"GET /healthz HTTP/1.1\r\nhost: lab\r\n\r\n" * 4000)
            flood.append(c)
        # its own bucket fills once both floods wait on their unread answers (a busy machine
        # takes a moment); the stall check frees it only after SLOW_TIMEOUT
        with _client(mine) as c:
            end, full = time.monotonic() + SLOW_TIMEOUT / 2, False
            while not full and time.monotonic() < end:
                full = c.get("/healthz").status_code == 429
                time.sleep(0.05)
        assert full
        assert _healthy(theirs)  # another sandbox's: untouched
    finally:
        for c in flood:
            c.close()
        _stop(server, sock_dir)


def _status(k: socket.socket) -> bytes:
    k.settimeout(10)
    return k.recv(64).split(b"\r\n")[0]


def test_one_token_is_one_bucket_however_its_header_pads_it(small_in_flight):
    # Round 9: the in-flight bucket was keyed on the header's bytes, while FastAPI strips the
    # token of any whitespace str.strip knows (Latin-1 U+00A0 and U+0085 too) before the auth
    # check: 40 paddings of one token held 40 unread 8 MB answers (740 MB) past its 8 slots.
    server, token = small_in_flight
    sock = server.socket
    with _client(sock, token, 30) as c:
        r = c.post("/v1/snapshots", content=_random_targz(2_000_000),
                   headers={"content-type": "application/gzip"})
        assert r.status_code in (200, 201), r.text
        ask = f"/v1/snapshots/{r.json()['id']}/files/blob.bin"
    # Spellings the auth check accepts as this token (the scheme's case, ASCII and Latin-1
    # whitespace around it) share its one bucket of requests_in_flight=3.
    spellings = [(b"Bearer ", b""), (b"bearer ", b"\xa0"), (b"BEARER  ", b"\x85"),
                 (b"Bearer \t", b"\xa0\x85 "), (b"Bearer ", b"\x85\xa0\xa0")]
    held = []
    for i in range(8):
        scheme, pad = spellings[i % len(spellings)]
        raw = _get(ask, token).replace(b"Bearer ", scheme)
        held += _unread(sock, raw[:-4] + pad + b"\r\n\r\n", 1)
    time.sleep(0.5)
    said = [_status(k) for k in held]
    assert said.count(b"HTTP/1.1 200 OK") == 3, said
    assert said.count(b"HTTP/1.1 429 Too Many Requests") == 5, said
    for k in held:
        k.close()


def test_the_limit_reads_a_bearer_header_as_the_auth_check_does():
    from fastapi.security.utils import get_authorization_scheme_param

    from aarlab.server.limits import bearer_token

    for header in ["Bearer aar_x", "bearer aar_x \xa0", "BEARER \x85aar_x", "Basic aar_x",
                   "Bearer", "Bearer\taar_x", "", "Bearer  aar_x\u3000"[:-1]]:
        scheme, token = get_authorization_scheme_param(header)
        expected = token if scheme.lower() == "bearer" else ""
        assert bearer_token(header.encode("latin-1")) == expected, header


def test_aarlab_serve_gives_each_sandbox_socket_a_listener_of_its_own(tmp_path):
    # `aarlab serve` (a deployment outside `aarlab run`) had one --sandbox-socket for every
    # sandbox: one of them holding its 64 connections blocked all. Repeated, each is its own.
    import os
    import subprocess
    import sys

    sock_dir = Path(tempfile.mkdtemp(prefix="sv-"))
    a, b, person = sock_dir / "a.sock", sock_dir / "b.sock", sock_dir / "web.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AARLAB_")}
    env |= {"AARLAB_HOME": str(tmp_path / "home"), "AARLAB_LISTENER_CONNECTIONS": str(CAP),
            "AARLAB_REQUEST_TIMEOUT_S": "10"}
    log = sock_dir / "server.log"
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "aarlab.commands.serve", "--socket",
                                 str(person), "--sandbox-socket", str(a), "--sandbox-socket",
                                 str(b)], env=env, stdout=subprocess.DEVNULL, stderr=err)
    held = []
    try:
        deadline = time.monotonic() + 60
        while not all(_answers(p) for p in (a, b, person)):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        held = [_raw(a) for _ in range(CAP)]
        time.sleep(0.2)
        extra = _raw(a)
        held.append(extra)
        closed, said = _closed_by_server(extra, 5)
        assert closed and said.startswith(b"HTTP/1.1 503")  # a's listener is full
        assert _healthy(b) and _healthy(person)  # b's and the person's are not
    finally:
        for c in held:
            c.close()
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_aarlab_serve_never_gives_a_sandbox_the_person_socket_by_another_spelling(tmp_path):
    # Round 11: the check that keeps --sandbox-socket apart from --socket compared paths as
    # spelt, and binding replaced whatever socket sat there: `sub/../web.sock` put the
    # dashboard and the admin API on a sandbox's path, and a second serve took over a live
    # lab's socket.
    import os
    import subprocess
    import sys

    sock_dir = Path(tempfile.mkdtemp(prefix="sv-"))
    (sock_dir / "sub").mkdir()
    person = sock_dir / "web.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AARLAB_")}
    env["AARLAB_HOME"] = str(tmp_path / "home")

    def serve(*args: str, wait: bool = True):  # noqa: ANN202
        cmd = [sys.executable, "-m", "aarlab.cli", "serve", *args]
        if wait:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    try:
        for alias in (sock_dir / "sub" / ".." / "web.sock",):
            bad = serve("--socket", str(person), "--sandbox-socket", str(alias))
            assert bad.returncode != 0 and "--sandbox-socket" in bad.stderr + bad.stdout
            assert "Traceback" not in bad.stderr
        twice = serve("--socket", str(person), "--sandbox-socket", str(sock_dir / "a.sock"),
                      "--sandbox-socket", str(sock_dir / "sub" / ".." / "a.sock"))
        assert twice.returncode != 0 and "--sandbox-socket" in twice.stderr + twice.stdout
        # A live server's socket is never taken over by another serve.
        live = serve("--socket", str(person), wait=False)
        try:
            deadline = time.monotonic() + 60
            while not _answers(person):
                assert live.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            other = serve("--socket", str(sock_dir / "x.sock"), "--sandbox-socket", str(person))
            assert other.returncode != 0 and "in use" in other.stderr + other.stdout
            assert _healthy(person)
        finally:
            live.terminate()
            live.wait(timeout=15)
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
