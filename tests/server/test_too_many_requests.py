"""Every 429 goes through one error type (``aarlab.errors.TooManyRequests``, or its rule
``retry_after_s`` for the scoring budget): a whole-second ``Retry-After`` >= 1 that the hint
repeats, and the body every other refusal has. Notebook publishes are writes like any other,
counted by the researcher's one write limiter: a burst is refused, a steady researcher never.
Over HTTP to the real app on a real SQLite file; the limiter's clock is ours."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from aarlab.errors import TooManyRequests, retry_after_s
from aarlab.lab.tables import LabNotebook
from aarlab.server.app import create_app
from aarlab.server.limits import WriteRate
from aarlab.store.db import Store

ADMIN = "too-many-admin"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lab(settings, tmp_path):
    """``lab(**settings)`` -> (client, store, clock, join) on a fresh app and SQLite file."""
    made = []

    def make(**overrides):
        s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                        "admin_token": ADMIN, **overrides})
        store, clock = Store(s.database_url), Clock()
        app = create_app(s, store)
        app.state.write_rate = WriteRate(s.writes_per_minute, clock=clock)
        client = TestClient(app, base_url="http://lab").__enter__()
        made.append((client, store))

        def join(name: str) -> dict[str, str]:
            r = client.post("/v1/admin/researchers", json={"name": name},
                            headers={"Authorization": f"Bearer {ADMIN}"})
            assert r.status_code == 201, r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}
        return client, store, clock, join

    yield make
    for client, store in made:
        client.__exit__(None, None, None)
        store.engine.dispose()


def _one_429(r) -> int:
    """The seconds a 429 asks for, after checking it is shaped like every other refusal."""
    assert r.status_code == 429, r.text
    wait = r.headers["Retry-After"]
    assert wait.isdigit() and int(wait) >= 1
    body = r.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str)
    assert body["detail"].endswith(f"(retry after {wait} s)")  # the hint says the same
    assert "Traceback" not in r.text
    return int(wait)


def test_the_three_429s_carry_a_valid_retry_after_and_one_body_shape(lab, tiny_tweets):
    client, _, clock, join = lab(writes_per_minute=3, submissions_per_hour=1)
    # 1. telemetry and forum writes past writes_per_minute
    h = join("writer")
    for _ in range(3):
        assert client.post("/v1/lab/events", json={"kind": "note", "payload": {}},
                           headers=h).status_code == 201
    clock.now += 20.4
    wait = _one_429(client.post("/v1/lab/events", json={"kind": "note", "payload": {}},
                                headers=h))
    assert wait == 40  # 39.6 s left in the minute, rounded up: sooner would be refused again
    # 2. a notebook published in a loop
    h = join("spinner")
    for k in range(3):
        assert client.put("/v1/lab/me/notebooks/notebook.md", content=f"v{k}",
                          headers=h).status_code == 200
    r = client.put("/v1/lab/me/notebooks/notebook.md", content="v3", headers=h)
    assert _one_429(r) == 60 and "writes_per_minute" in r.json()["detail"]
    # 3. the scoring budget
    h = join("scorer")
    kit, _ = tiny_tweets
    ids, labels = kit.ids("test"), kit.label_names
    rng = np.random.default_rng(0)
    codes = []
    for _ in range(2):
        pred = {i: labels[int(k)] for i, k in zip(ids, rng.integers(0, 2, len(ids)),
                                                   strict=True)}
        r = client.post("/v1/tasks/tweets/submissions", json={"predictions": pred}, headers=h)
        codes.append(r.status_code)
    assert codes == [200, 429]
    assert 3500 <= _one_429(r) <= 3600
    # any other refusal has the same body
    other = client.put("/v1/lab/me/notebooks/labels.json", content="x", headers=join("x"))
    assert other.status_code == 404 and list(other.json()) == ["detail"]


def test_a_notebook_burst_is_refused_and_a_steady_researcher_never(lab):
    client, store, clock, join = lab()  # the default writes_per_minute
    cap = client.app.state.settings.writes_per_minute
    steady, spin = join("steady"), join("spin")
    for k in range(72):  # 12 minutes of both notebooks every 10 s
        for name, text in (("notebook.md", f"# round {k}\n"),
                           ("notebook.jsonl", f'{{"round": {k}}}\n')):
            r = client.put(f"/v1/lab/me/notebooks/{name}", content=text, headers=steady)
            assert r.status_code == 200 and r.json()["changed"], (k, r.text)
        if k == 36:  # a burst at minute 6 by someone else slows no one else
            codes = [client.put("/v1/lab/me/notebooks/notebook.md", content=f"{j}",
                                headers=spin).status_code for j in range(cap + 5)]
            assert codes == [200] * cap + [429] * 5
        clock.now += 10
    r = client.put("/v1/lab/me/notebooks/notebook.md", content="late", headers=spin)
    assert r.status_code == 200  # the minute has passed
    with store.session() as s:
        revisions = {(n.researcher_id, n.name): n.revisions
                     for n in s.scalars(select(LabNotebook))}
    # one revision per publish let through: the burst's refused ones never reached the store
    assert sorted(revisions.values()) == [72, 72, cap + 1]


@pytest.mark.parametrize("seconds, header", [
    (None, 1), (0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.6, 60), (1020.4 + 60 - 1020.4, 60),
    (math.inf, 1), (math.nan, 1)])
def test_retry_after_is_whole_seconds_at_least_one(seconds, header):
    assert retry_after_s(seconds) == header
    e = TooManyRequests("budget: used", seconds)
    assert e.status == 429 and e.headers == {"Retry-After": str(header)}
    assert str(e) == f"budget: used (retry after {header} s)"
