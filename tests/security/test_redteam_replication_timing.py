"""The end-of-run replication skips a job whose estimate does not fit its budget, and the
estimate is the seconds a researcher's own telemetry claims for the spec. A sandbox claiming
``1e12`` (or ``1e400``, kept as infinity) for its own spec dodged the replication of its result;
claiming it for another researcher's spec got theirs skipped. Now a claim counts only up to the
server's own clock (the time since that researcher's previous event), the shortest report of a
spec wins, and non-numbers are ignored. Events go in over HTTP to the real app on a real SQLite
file; ``measured_seconds`` reads them back as the final report does."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.replication.report import measured_seconds
from aarlab.server.app import create_app
from aarlab.store.db import Store
from aarlab.store.identity import Researcher

ADMIN = "timing-redteam-admin"


def test_self_reported_seconds_cannot_dodge_or_sabotage_replication(settings, tmp_path):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN})
    store = Store(s.database_url)
    with TestClient(create_app(s, store, role="researcher"), base_url="http://lab") as c, \
            TestClient(create_app(s, store, role="all"), base_url="http://lab") as admin:
        heads = {}
        for name in ("alice", "mallory"):
            r = admin.post("/v1/admin/researchers", json={"name": name},
                           headers={"Authorization": f"Bearer {ADMIN}"})
            heads[name] = {"Authorization": f"Bearer {r.json()['token']}",
                           "Content-Type": "application/json"}
        with store.session() as db:
            lab = LabRun(task="tweets", status="finished", config={})
            db.add(lab)
            db.flush()
            lab_id = lab.id
            for rid in db.scalars(select(Researcher.id)):
                db.add(LabMember(lab_id=lab.id, researcher_id=rid, policy="search",
                                 direction="d", workspace="/nowhere"))

        def post(who: str, body: bytes, status: int = 201) -> None:
            r = c.post("/v1/lab/events", headers=heads[who],
                       content=b'{"kind": "experiment", "payload": ' + body + b"}")
            assert r.status_code == status, r.text

        time.sleep(0.8)  # alice's experiment really takes its 0.5 s
        post("alice", b'{"spec": "noisy_em", "seconds": 0.5}')  # honest
        post("mallory", b'{"spec": "noisy_em", "seconds": 1e12}')  # alice's spec: sabotage
        post("mallory", b'{"spec": "mine", "seconds": 1e12}')  # its own: dodge
        post("mallory", b'{"spec": "mine-inf", "seconds": 1e400}', status=422)  # not JSON
        with store.session() as db:  # as a store written before that rule may hold it
            mallory = db.scalar(select(Researcher.id).where(Researcher.name == "mallory"))
            db.add(LabEvent(researcher_id=mallory, kind="experiment",
                            payload={"spec": "mine-inf", "seconds": float("inf")}))
        post("mallory", b'{"spec": "mine-text", "seconds": "forever"}')
        post("mallory", b'{"spec": "mine-bool", "seconds": true}')
    measured = measured_seconds(store, lab_id)
    store.engine.dispose()
    assert measured["noisy_em"] == 0.5
    assert measured["mine"] < 120  # the server saw seconds pass, not 1e12
    assert "mine-inf" not in measured and "mine-text" not in measured
    assert "mine-bool" not in measured
