"""The node-side forwarder: a sandbox's Unix socket piped to the lab server's TCP address."""

from __future__ import annotations

import socket
import threading

import httpx
import uvicorn

from aarlab.client import LabClient
from aarlab.lab.backends.forward import SocketForwarder
from aarlab.server.app import create_app


def _serve(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    return server, thread, port


def test_requests_through_the_socket_reach_the_tcp_server(tmp_path, settings):
    server, thread, port = _serve(create_app(settings))
    fwd = SocketForwarder(tmp_path / "s" / "lab.sock", "127.0.0.1", port)
    try:
        path = fwd.start()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        with LabClient(socket=path, token="not-a-token") as client:
            assert client.health()["ok"] is True
            # Many requests on one kept-alive connection, and a large answer, arrive whole.
            for _ in range(20):
                assert client.get("/openapi.json")["info"]["title"] == "aarlab"
            # The forwarder adds no privilege: a bad token is still refused by the server.
            r = client.http.get("/v1/tasks")
            assert r.status_code == 401
    finally:
        fwd.stop()
        server.should_exit = True
        thread.join(timeout=10)
    assert not (tmp_path / "s" / "lab.sock").exists()


def test_a_dead_server_closes_the_connection_cleanly(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    fwd = SocketForwarder(tmp_path / "lab.sock", "127.0.0.1", port)
    try:
        path = fwd.start()
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://lab") as c:
            try:
                c.get("/healthz", timeout=5)
                raised = False
            except httpx.TransportError:
                raised = True
        assert raised
    finally:
        fwd.stop()
