"""``bench/lab.py`` runs labs and then reads the researchers' experiment telemetry back from
the store for its CPU accounting: sandbox-written numbers. One event with ``cpu_s`` a string, a
list or ``1e400`` (kept as infinity) crashed the bench after its 30-minute lab had run, losing
the pooled result; a negative one made the overhead share exceed 1. Only finite non-negative
numbers count now. Events go in over HTTP to the real app on a real SQLite file and come back
the way the bench reads them. ``--pool-with`` reads an earlier run's pick from that run's own
store, and refuses a home that is not one run's, or a run on another task."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import bench_scripts
from aarlab.lab.tables import LabEvent
from aarlab.server.app import create_app
from aarlab.store.db import Store
from redteam_lab import ok, register, served_lab, submit

ADMIN = "bench-redteam-admin"


def test_hostile_cpu_telemetry_neither_crashes_nor_skews_the_bench(settings, tmp_path):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN})
    store = Store(s.database_url)
    bodies = [b'{"cpu_s": 2.5, "process_cpu_s": 3.0, "process": "p1"}',  # honest
              b'{"cpu_s": "lots", "process_cpu_s": [1], "process": ["unhashable"]}',
              b'{"cpu_s": 1e400, "process_cpu_s": 1e400, "process": {"a": 1}}',
              b'{"cpu_s": -1e9, "process_cpu_s": -5, "process": "p1"}',
              b'{"cpu_s": true, "process_cpu_s": null}',
              b'{"cpu_s": 1.5, "process_cpu_s": 4.0, "process": "p1"}']  # honest
    with TestClient(create_app(s, store, role="researcher"), base_url="http://lab") as c, \
            TestClient(create_app(s, store, role="all"), base_url="http://lab") as admin:
        r = admin.post("/v1/admin/researchers", json={"name": "mallory"},
                       headers={"Authorization": f"Bearer {ADMIN}"})
        me = {"Authorization": f"Bearer {r.json()['token']}",
              "Content-Type": "application/json"}
        for body in bodies:
            r = c.post("/v1/lab/events", headers=me,
                       content=b'{"kind": "experiment", "payload": ' + body + b"}")
            # Infinity is refused at the door now (not JSON); a store written before that
            # rule may still hold it, so the bench must still read it (added below).
            assert r.status_code == (422 if b"1e400" in body else 201), r.text
    with store.session() as db:
        db.add(LabEvent(researcher_id=1, kind="experiment", payload={
            "cpu_s": float("inf"), "process_cpu_s": float("inf"), "process": {"a": 1}}))
    with store.session() as db:
        events = [e.payload for e in db.scalars(select(LabEvent).where(
            LabEvent.kind == "experiment"))]
    store.engine.dispose()
    inside, processes = bench_scripts.load("lab").researcher_cpu(events)  # raised ValueError before
    assert inside == 4.0 and processes == 4.0


def test_pool_with_reads_an_earlier_runs_pick_from_its_own_store(settings, tiny_tweets,
                                                                 tmp_path):
    kit, key = tiny_tweets
    pred = key.labels("test", kit.ids("test"))
    with served_lab(settings, tmp_path) as (_, store, c):
        sid = ok(submit(c, register(c, "alice"), kit, pred, "m"))["id"]
        store.engine.dispose()
    home = tmp_path / "bench-runs" / "20261202-225107-seed2"
    (home / "reports").mkdir(parents=True)
    shutil.copy(tmp_path / "lab.db", home / "aarlab.db")
    report = home / "reports" / "lab1-report.json"
    report.write_text(json.dumps({"task": "tweets", "best_submission_id": sid}))
    bench = bench_scripts.load("lab")
    run = bench.earlier_run(home, "tweets")
    assert np.array_equal(run["pick"], pred) and run["seed"] == "2, earlier"
    with pytest.raises(SystemExit, match="was on 'tweets', not 'snli-pref'"):
        bench.earlier_run(home, "snli-pref")
    report.unlink()
    with pytest.raises(SystemExit, match="expected one lab report"):
        bench.earlier_run(home, "tweets")
