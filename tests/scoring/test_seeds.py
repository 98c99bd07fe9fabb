"""A submission records the seeds behind it (replication runs on others); bad seeds are a 422;
a store made before the column existed gains it."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, select, text

from aarlab.scoring.tables import Submission
from aarlab.store.db import Store

pytestmark = pytest.mark.anyio


async def test_seeds_are_stored_and_shown_to_the_admin(make_client, truth, register,
                                                       as_predictions, admin_headers,
                                                       lab_settings):
    ids, gold, labels = truth
    c = make_client()
    h = await register(c, "alice")
    body = {"predictions": as_predictions(ids, gold, labels), "seeds": [0, 1, 2]}
    r = await c.post("/v1/tasks/tweets/submissions", headers=h, json=body)
    assert r.status_code == 200, r.text
    assert "seeds" not in r.json()  # the receipt says nothing new
    adm = (await c.get(f"/v1/admin/submissions/{r.json()['id']}", headers=admin_headers)).json()
    assert adm["seeds"] == [0, 1, 2]
    flipped = np.where(np.arange(len(gold)) < len(gold) // 2, 1 - gold, gold)
    r2 = await c.post("/v1/tasks/tweets/submissions", headers=h,
                      json={"predictions": as_predictions(ids, flipped, labels)})
    assert r2.status_code == 200, r2.text
    with Store(lab_settings.database_url).session() as s:
        stored = dict(s.execute(select(Submission.id, Submission.seeds)).all())
    assert stored == {r.json()["id"]: [0, 1, 2], r2.json()["id"]: None}  # None: not told


@pytest.mark.parametrize("seeds, where", [([-1], "seeds.0"), (["a"], "seeds.0"),
                                         ([2**40], "seeds.0"), ("0,1", "seeds"),
                                         (list(range(300)), "seeds")])
async def test_bad_seeds_are_a_422_naming_the_field(make_client, truth, register,
                                                    as_predictions, seeds, where):
    ids, gold, labels = truth
    c = make_client()
    h = await register(c, "bob")
    r = await c.post("/v1/tasks/tweets/submissions", headers=h,
                     json={"predictions": as_predictions(ids, gold, labels), "seeds": seeds})
    assert r.status_code == 422, r.text
    assert where in r.text


def test_an_old_store_gains_the_seeds_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    store.create_all()
    with store.engine.begin() as conn:  # as a store from before the column existed
        conn.execute(text("ALTER TABLE submissions DROP COLUMN seeds"))
    assert "seeds" not in {c["name"] for c in inspect(create_engine(url)).get_columns(
        "submissions")}
    Store(url).create_all()
    assert "seeds" in {c["name"] for c in inspect(create_engine(url)).get_columns(
        "submissions")}


async def test_admin_leaderboard_final_pgr_has_its_interval(make_client, truth, register,
                                                            as_predictions, admin_headers):
    ids, gold, labels = truth
    c = make_client()
    h = await register(c, "carol")
    pred = np.where(np.arange(len(gold)) % 25 == 0, 1 - gold, gold)  # 96 % right: released
    r = await c.post("/v1/tasks/tweets/submissions", headers=h,
                     json={"predictions": as_predictions(ids, pred, labels)})
    assert r.status_code == 200 and r.json()["new_best"], r.text
    adm = (await c.get("/v1/admin/tasks/tweets/leaderboard", headers=admin_headers)).json()
    for row in adm["by_researcher"] + adm["by_method"]:
        lo, hi = row["final_pgr_ci95"]
        assert lo <= row["final_pgr"] <= hi and hi > lo
    public = (await c.get("/v1/tasks/tweets/leaderboard", headers=h)).text
    assert "ci95" not in public and "final" not in public
