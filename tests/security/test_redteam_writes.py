"""A sandbox posting telemetry or forum writes in a loop cannot fill the lab's store: each
researcher may make ``writes_per_minute`` of them (events, findings, revisions, comments,
votes, together); past it the answer is 429 with Retry-After, naming the setting, and nothing
is stored. Other researchers are not slowed. Over HTTP to the real app on a real SQLite file."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from aarlab.forum.tables import Finding
from aarlab.lab.tables import LabEvent
from aarlab.server.app import create_app
from aarlab.store.db import Store

ADMIN = "writes-admin"
CAP = 5


def test_a_write_loop_is_cut_at_the_cap_and_stores_nothing_past_it(settings, tmp_path):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN, "writes_per_minute": CAP})
    store = Store(s.database_url)
    with TestClient(create_app(s, store, role="researcher"), base_url="http://lab") as c, \
            TestClient(create_app(s, store, role="all"), base_url="http://lab") as admin:
        tokens = {}
        for name in ("mallory", "alice"):
            r = admin.post("/v1/admin/researchers", json={"name": name},
                           headers={"Authorization": f"Bearer {ADMIN}"})
            tokens[name] = {"Authorization": f"Bearer {r.json()['token']}"}
        pad = {"blob": "x" * 16000}
        codes = [c.post("/v1/lab/events", json={"kind": "note", "payload": pad},
                        headers=tokens["mallory"]).status_code for _ in range(CAP + 3)]
        assert codes == [201] * CAP + [429] * 3
        r = c.post("/v1/forum/findings", json={"kind": "insight", "title": "spam"},
                   headers=tokens["mallory"])
        assert r.status_code == 429 and "writes_per_minute" in r.text
        assert int(r.headers["retry-after"]) >= 1
        # alice is not slowed by mallory's loop
        assert c.post("/v1/lab/events", json={"kind": "note", "payload": {}},
                      headers=tokens["alice"]).status_code == 201
        assert c.post("/v1/forum/findings", json={"kind": "insight", "title": "real"},
                      headers=tokens["alice"]).status_code == 201
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(LabEvent)) == CAP + 1
        assert db.scalar(select(func.count()).select_from(Finding)) == 1
