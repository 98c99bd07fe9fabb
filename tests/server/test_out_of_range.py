"""Numbers past what the database holds are the caller's mistake: 422 naming the rule, not 500.

Found by the OpenAPI fuzz test: ``GET /v1/admin/submissions/99999999999999999999`` crashed
(SQLite cannot bind an integer over 64 bits).
"""

from __future__ import annotations

import httpx
import pytest

from aarlab.config import Settings
from aarlab.server.app import create_app
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher

HUGE = "99999999999999999999"


@pytest.fixture
def client_and_token(tmp_path):
    settings = Settings(home=tmp_path, admin_token="adm")
    store = Store(f"sqlite:///{tmp_path / 'lab.db'}")
    app = create_app(settings, store)
    with store.session() as s:
        _, token = add_researcher(s, "ada")
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://lab"), token


@pytest.mark.anyio
@pytest.mark.parametrize("who, path", [
    ("adm", f"/v1/admin/submissions/{HUGE}"),
    ("researcher", f"/v1/submissions/{HUGE}"),
    ("researcher", f"/v1/forum/findings/{HUGE}"),
    ("researcher", f"/v1/forum/findings?offset={HUGE}"),
    ("researcher", f"/v1/snapshots?submission_id={HUGE}"),
])
async def test_too_large_numbers_are_refused_as_input_errors(client_and_token, who, path):
    client, token = client_and_token
    async with client:
        r = await client.get(path, headers={
            "Authorization": f"Bearer {'adm' if who == 'adm' else token}"})
    assert r.status_code in (404, 422), (r.status_code, r.text[:300])
    if r.status_code == 422:
        assert "out of range" in r.text or "less than" in r.text
