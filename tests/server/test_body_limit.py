"""Oversized request bodies are refused with 413 before any route parses them."""

from __future__ import annotations

import httpx
import pytest

from aarlab.config import Settings
from aarlab.server.app import create_app
from aarlab.store.db import Store


@pytest.fixture
def client(tmp_path):
    settings = Settings(home=tmp_path, max_body_bytes=4096, admin_token="adm")
    app = create_app(settings, Store(f"sqlite:///{tmp_path / 'lab.db'}"))
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://lab")


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/v1/forum/findings", "/v1/lab/events",
                                  "/v1/forum/findings/1/comments"])
async def test_declared_oversized_body_is_refused(client, path):
    async with client:
        r = await client.post(path, content=b"{" + b" " * 10_000 + b"}",
                              headers={"Authorization": "Bearer x",
                                       "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["detail"] == "body: at most 4096 bytes"


@pytest.mark.anyio
async def test_streamed_oversized_body_is_cut_off(client):
    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    async with client:
        r = await client.post("/v1/forum/findings", content=chunks(),
                              headers={"Authorization": "Bearer x"})
    assert r.status_code == 413


@pytest.mark.anyio
async def test_small_bodies_still_reach_the_routes(client):
    async with client:
        r = await client.post("/v1/lab/events", json={"kind": "note"},
                              headers={"Authorization": "Bearer nobody"})
    assert r.status_code == 401  # got past the cap, then auth said no


@pytest.fixture
def anyio_backend():
    return "asyncio"
