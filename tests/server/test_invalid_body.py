"""A body that fails validation is a 422 naming the field, whatever the body holds.

Found by the OpenAPI fuzz test: ``POST /v1/forum/findings/-607/hide`` with a body holding
``-Infinity`` (Python's JSON parser accepts it) was a 500: FastAPI's default answer echoes the
input, and JSON cannot carry it back. Echoing a sandbox's bytes is not wanted either.
"""

from __future__ import annotations

import httpx
import pytest

from aarlab.config import Settings
from aarlab.server.app import create_app
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher

ODD = b'{"reason": -Infinity, "marker": NaN, "secret-looking": "ECHO-ME"}'


@pytest.fixture
def client_and_token(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'lab.db'}")
    app = create_app(Settings(home=tmp_path, admin_token="adm"), store)
    with store.session() as s:
        _, token = add_researcher(s, "ada")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lab"), token


@pytest.mark.anyio
@pytest.mark.parametrize("who, path", [
    ("adm", "/v1/forum/findings/-607/hide"),
    ("researcher", "/v1/forum/findings"),
    ("researcher", "/v1/forum/findings/1/comments"),
])
async def test_a_body_json_cannot_echo_is_refused_as_an_input_error(client_and_token, who, path):
    client, token = client_and_token
    async with client:
        r = await client.post(path, content=ODD, headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {'adm' if who == 'adm' else token}"})
    assert r.status_code == 422, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert detail and all(set(e) == {"type", "loc", "msg"} for e in detail), detail
    assert all(e["loc"][0] == "body" for e in detail), detail
    assert "ECHO-ME" not in r.text and "Infinity" not in r.text


@pytest.mark.anyio
async def test_a_missing_field_is_named(client_and_token):
    client, _ = client_and_token
    async with client:
        r = await client.post("/v1/forum/findings/1/hide", json={},
                              headers={"Authorization": "Bearer adm"})
    assert r.status_code == 422
    assert ["body", "reason"] in [e["loc"] for e in r.json()["detail"]]


def test_an_event_holding_nan_is_refused_and_the_clients_events_never_hold_one(tmp_path):
    """Python's JSON parser takes NaN and Infinity; a JSON column (Postgres's) does not, and a
    stored one would reach every reader of the telemetry. Our own researchers post -inf as a
    score (a spec with a missing signal): the client sends it as null, and the event counts."""
    from starlette.testclient import TestClient

    from aarlab.client import LabClient
    from aarlab.lab.tables import LabEvent

    store = Store(f"sqlite:///{tmp_path / 'lab.db'}")
    app = create_app(Settings(home=tmp_path, admin_token="adm"), store)
    with store.session() as s:
        _, token = add_researcher(s, "ada")
    with TestClient(app) as http:
        r = http.post("/v1/lab/events", content=b'{"kind": "experiment", "payload": '
                      b'{"signal": NaN, "nested": [1, -Infinity]}}',
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": "application/json"})
        assert r.status_code == 422 and "payload" in r.json()["detail"], r.text
        client = LabClient(base_url="http://testserver", token=token)
        http.headers.update(client.http.headers)  # its token
        client.http.close()
        client.http = http  # the client's own calls, over the ASGI app
        client.post_event("experiment", {"spec": "x", "signal": float("-inf"),
                                         "signals": {"smoothness": float("nan"), "ok": 0.5}})
    with store.session() as s:
        payloads = [e.payload for e in s.query(LabEvent)]
    assert payloads == [{"spec": "x", "signal": None, "signals": {"smoothness": None,
                                                                   "ok": 0.5}}]
