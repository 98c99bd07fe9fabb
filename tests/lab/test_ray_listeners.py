"""Each researcher on a Ray node reaches the lab server through a TCP listener of its own.

The red-team rounds gave every local sandbox a Unix socket of its own, so that one holding all
64 connections of its listener blocks only itself; on Ray the nodes' forwarders all reached one
shared TCP listener, so one sandbox could block every researcher on every node for up to 30 s
at a time. These run the backend's real listener allocation and the real lab server over TCP.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray")

from aarlab.config import Settings  # noqa: E402
from aarlab.errors import AarlabError  # noqa: E402
from aarlab.lab.backends.base import BackendOptions  # noqa: E402
from aarlab.lab.backends.raycluster import RayBackend  # noqa: E402
from aarlab.lab.server_thread import ServerThread  # noqa: E402
from aarlab.sandbox.spec import SandboxSpec  # noqa: E402
from aarlab.server.app import open_store  # noqa: E402

CAP = 4


def _backend(settings: Settings, first_port: int = 0) -> RayBackend:
    backend = RayBackend(BackendOptions(kind="ray", server_port=first_port), settings)
    backend.host = "127.0.0.1"  # what connect() sets from Ray; no cluster is needed here
    return backend


def test_each_member_gets_a_port_of_its_own(tmp_path):
    backend = _backend(Settings(home=tmp_path))
    listeners = backend.tcp_listeners(["ada", "bob", "cy"])
    assert len({port for _, port in listeners}) == 3
    assert set(backend.ports) == {"ada", "bob", "cy"}
    assert sorted(backend.ports.values()) == sorted(port for _, port in listeners)


def test_a_given_first_port_counts_up_and_one_without_room_is_a_clear_error(tmp_path):
    backend = _backend(Settings(home=tmp_path), first_port=41000)
    assert [p for _, p in backend.tcp_listeners(["a", "b"])] == [41000, 41001]
    with pytest.raises(AarlabError) as e:
        _backend(Settings(home=tmp_path), first_port=65535).tcp_listeners(["a", "b"])
    assert "--server-port" in str(e.value) and "65535" in str(e.value)


def test_a_member_without_a_listener_gets_no_actor(tmp_path):
    backend = _backend(Settings(home=tmp_path))
    backend.tcp_listeners(["ada"])
    with pytest.raises(AarlabError, match="no listener"):
        backend._create("eve", SandboxSpec(name="eve", workspace=tmp_path / "w"), "token")


def test_a_node_sandbox_holding_its_listener_full_blocks_no_other(tmp_path):
    s = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'lab.db'}",
                 listener_connections=CAP, request_timeout_s=5.0)
    backend = _backend(s)
    tcp = backend.tcp_listeners(["mallory", "alice"])
    sock_dir = Path(tempfile.mkdtemp(prefix="rl-"))  # AF_UNIX paths: 107 bytes
    server = ServerThread(s, open_store(s), sock_dir / "lab.sock", tcp=tcp)
    server.start()
    held = []
    try:
        mallory, alice = backend.ports["mallory"], backend.ports["alice"]
        for _ in range(CAP):  # what a sandbox's forwarder passes on: connections that ask nothing
            held.append(socket.create_connection(("127.0.0.1", mallory), timeout=10))
        time.sleep(0.1)
        extra = socket.create_connection(("127.0.0.1", mallory), timeout=10)
        held.append(extra)
        assert extra.recv(64).startswith(b"HTTP/1.1 503")  # mallory's listener is full
        with httpx.Client(base_url=f"http://127.0.0.1:{alice}", timeout=5) as c:
            assert c.get("/healthz").status_code == 200  # alice's is not
    finally:
        for c in held:
            c.close()
        server.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)
