"""Attacks on identity: missing, forged, revoked and misused tokens; the stored secrets; the
append-only audit log. Over HTTP to the app (httpx ASGI transport) and a real SQLite file."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from aarlab.server.app import create_app
from aarlab.store import audit
from aarlab.store.db import Store
from aarlab.store.identity import hash_token

pytestmark = pytest.mark.anyio
ADMIN = "auth-test-admin-token"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def lab(settings, tmp_path):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN})
    store = Store(s.database_url)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s, store)),
                               base_url="http://lab")
    return client, store


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add(client, name: str, token: str = ADMIN) -> httpx.Response:
    return await client.post("/v1/admin/researchers", json={"name": name}, headers=bearer(token))


RESEARCHER_ENDPOINTS = [("GET", "/v1/me"), ("GET", "/v1/tasks"),
                        ("GET", "/v1/tasks/tweets/leaderboard"),
                        ("GET", "/v1/submissions/1"),
                        ("POST", "/v1/tasks/tweets/submissions")]
ADMIN_ENDPOINTS = [("GET", "/v1/admin/researchers"), ("GET", "/v1/admin/audit"),
                   ("GET", "/v1/admin/tasks/tweets/leaderboard"),
                   ("GET", "/v1/admin/submissions/1"),
                   ("POST", "/v1/admin/researchers/1/revoke")]


@pytest.mark.parametrize("headers", [
    {}, bearer(""), bearer("aar_forged-token"), bearer("x" * 10_000),
    {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer"},
])
async def test_requests_without_a_valid_token_get_401(lab, headers):
    client, _ = lab
    await add(client, "alice")
    for method, path in RESEARCHER_ENDPOINTS + ADMIN_ENDPOINTS:
        r = await client.request(method, path, headers=headers, json={})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert "authorization" in r.json()["detail"]


async def test_roles_do_not_mix(lab):
    client, _ = lab
    token = (await add(client, "alice")).json()["token"]
    for method, path in ADMIN_ENDPOINTS:  # a researcher token is not an admin token
        assert (await client.request(method, path, headers=bearer(token))).status_code == 401
    assert (await add(client, "eve", token=token)).status_code == 401
    # and the admin token is nobody's researcher identity
    assert (await client.get("/v1/me", headers=bearer(ADMIN))).status_code == 401
    assert (await client.get("/v1/me", headers=bearer(token))).json()["name"] == "alice"


async def test_revoked_token_gets_401_immediately(lab):
    client, _ = lab
    alice = (await add(client, "alice")).json()
    assert (await client.get("/v1/me", headers=bearer(alice["token"]))).status_code == 200
    r = await client.post(f"/v1/admin/researchers/{alice['name']}/revoke", headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert (await client.get("/v1/me", headers=bearer(alice["token"]))).status_code == 401
    # the name stays taken: a revoked identity cannot be re-issued to someone else
    r = await add(client, "alice")
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = await client.post("/v1/admin/researchers/nobody/revoke", headers=bearer(ADMIN))
    assert r.status_code == 404


async def test_tokens_are_unique_and_stored_only_hashed(lab, tmp_path):
    client, store = lab
    tokens = [(await add(client, f"r{i}")).json()["token"] for i in range(5)]
    assert len(set(tokens)) == 5 and all(len(t) > 40 for t in tokens)
    raw = (tmp_path / "lab.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("lab.db-*"))
    for t in tokens:
        assert t.encode() not in raw
        assert hash_token(t).encode() in raw
    listing = (await client.get("/v1/admin/researchers", headers=bearer(ADMIN))).text
    assert not any(t in listing or hash_token(t) in listing for t in tokens)


async def test_bad_researcher_names_are_refused_with_the_rule(lab):
    client, _ = lab
    for name in ["Alice", "../x", "", "a" * 65, "a b"]:
        r = await add(client, name)
        assert r.status_code == 422, name
        assert "name" in r.text


async def test_audit_log_is_append_only_in_the_database(lab):
    client, store = lab
    await add(client, "alice")
    events = (await client.get("/v1/admin/audit", headers=bearer(ADMIN))).json()
    assert [e["kind"] for e in events] == ["researcher_added"]
    with pytest.raises(Exception, match="append-only"), store.session() as s:
        s.execute(text("UPDATE audit_log SET kind = 'nothing'"))
    with pytest.raises(Exception, match="append-only"), store.session() as s:
        s.execute(text("DELETE FROM audit_log"))
    with pytest.raises(audit.AppendOnlyError), store.session() as s:
        audit.events(s)[0].kind = "edited"
    with store.session() as s:
        assert [e.kind for e in audit.events(s)] == ["researcher_added"]
