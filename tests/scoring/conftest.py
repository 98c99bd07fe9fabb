"""Fixtures for scoring tests: a fresh store per test, the app over httpx's ASGI transport or
as a real `aarlab serve` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from aarlab.client import LabClient, LabError
from aarlab.server.app import create_app
from aarlab.store.db import Store

ADMIN = "test-admin-token"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def lab_settings(settings, tiny_tweets, tmp_path):
    """Settings with the tiny tasks built and a fresh SQLite store for this test."""
    return settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                       "admin_token": ADMIN})


@pytest.fixture
def make_client(lab_settings):
    """``make_client(**setting_overrides)`` -> an AsyncClient on a fresh app."""
    clients = []

    def make(**overrides) -> httpx.AsyncClient:
        s = lab_settings.model_copy(update=overrides)
        app = create_app(s, Store(s.database_url))
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lab")
        clients.append(c)
        return c

    yield make


@pytest.fixture
def truth(tiny_tweets):
    """(test ids, gold class indices, label names) of the tiny tweets task."""
    kit, key = tiny_tweets
    ids = kit.ids("test")
    return ids, key.labels("test", ids), kit.label_names


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def register(admin_headers):
    """``await register(client, name)`` -> auth headers of a new researcher."""
    async def register(client: httpx.AsyncClient, name: str) -> dict[str, str]:
        r = await client.post("/v1/admin/researchers", json={"name": name},
                              headers=admin_headers)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}
    return register


@pytest.fixture
def as_predictions():
    """``as_predictions(ids, class indices, label names)`` -> the submission's dict."""
    def as_predictions(ids, indices, labels) -> dict:
        return {i: labels[int(k)] for i, k in zip(ids, np.asarray(indices), strict=True)}
    return as_predictions


class ServerProcess:
    """``aarlab serve --socket`` as a child process with its own SQLite store."""

    def __init__(self, settings, tmp_path, **env: str):
        self.sock, self.db = tmp_path / "lab.sock", tmp_path / "lab.db"
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one (64 KiB
        # of logged tracebacks) would block the server's next write and hang every request.
        self.log = tmp_path / "server.log"
        self.env = {**os.environ, "AARLAB_HOME": str(settings.home), "AARLAB_ADMIN_TOKEN": ADMIN,
                    "AARLAB_DB_URL": f"sqlite:///{self.db}", **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aarlab.commands.serve", "--socket", str(self.sock)],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                with LabClient(socket=self.sock) as c:
                    c.health()
                return self
            except LabError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    err = self.log.read_text(errors="replace")[-2000:]
                    pytest.fail(f"server did not start: {err}")
                time.sleep(0.1)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self, token: str | None = None, **kw) -> LabClient:
        return LabClient(socket=self.sock, token=token, **kw)


@pytest.fixture
def spawn_server(settings, tiny_tweets, tmp_path):
    """``spawn_server(**env)`` -> a started ``ServerProcess``; stopped after the test."""
    servers = []

    def spawn(**env: str) -> ServerProcess:
        servers.append(ServerProcess(settings, tmp_path, **env))
        return servers[-1].start()

    yield spawn
    for s in servers:
        s.stop()
