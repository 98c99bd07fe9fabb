"""Forum fixtures: a fresh app per test (real SQLite file, blobs in tmp_path) over httpx's ASGI
transport, researchers registered through the admin API, and real scored submissions on the
tiny tweets task."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest

from aarlab.server.app import create_app
from aarlab.store.db import Store

ADMIN = "test-admin-token"
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def lab_settings(settings, tiny_tweets, tmp_path):
    return settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                       "admin_token": ADMIN,
                                       "snapshots_root": tmp_path / "blobs",
                                       # forum tests need released scores from a few honest
                                       # steps on 80 feedback rows; the Ladder's climbing
                                       # defaults are attacked in tests/security/
                                       "ladder_safety": 1.0})


@dataclass
class Lab:
    http: httpx.AsyncClient
    store: Store
    ids: list[str]
    truth: np.ndarray
    labels: list
    admin: dict[str, str] = field(default_factory=lambda: dict(ADMIN_H))

    async def researcher(self, name: str) -> dict[str, str]:
        r = await self.http.post("/v1/admin/researchers", json={"name": name}, headers=ADMIN_H)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def submit(self, who: dict, correct: float, snapshot_id: str | None = None) -> dict:
        """A real scored submission: right on the first ``correct`` share of test rows."""
        pred = self.truth.copy()
        wrong = np.arange(len(pred)) >= int(correct * len(pred))
        pred[wrong] = 1 - pred[wrong]
        body = {"predictions": {i: self.labels[int(k)] for i, k in zip(self.ids, pred,
                                                                       strict=True)},
                "method": f"test {correct}", "snapshot_id": snapshot_id}
        r = await self.http.post("/v1/tasks/tweets/submissions", json=body, headers=who)
        assert r.status_code == 200, r.text
        return r.json()

    async def post(self, who: dict, **finding) -> httpx.Response:
        finding.setdefault("title", "a finding")
        return await self.http.post("/v1/forum/findings", json=finding, headers=who)


@pytest.fixture
async def lab(lab_settings, tiny_tweets):
    kit, key = tiny_tweets
    store = Store(lab_settings.database_url)
    app = create_app(lab_settings, store)
    ids = kit.ids("test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://lab") as http:
        yield Lab(http, store, ids, key.labels("test", ids), kit.label_names)

