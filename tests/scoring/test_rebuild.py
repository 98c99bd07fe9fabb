"""A task rebuilt with as many test rows but other rows: its old submissions stay in the store
and must neither be copied, nor probed against, nor climbed from, nor ranked with the new
build's (over HTTP, on a real re-drawn build of the tiny tweets task)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from aarlab.kits.kit import TaskKit
from aarlab.replication.redraw import redraw
from aarlab.scoring.probes import pack
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(lab_settings, tiny_tweets, tmp_path):
    """Settings of a home of its own holding a copy of the tiny tweets build (seed 0)."""
    s = lab_settings.model_copy(update={"home": tmp_path / "home",
                                        "sources_root": lab_settings.sources_dir,
                                        "answer_key_root": None})
    kit, key = tiny_tweets
    shutil.copytree(kit.dir, kit_dir(s, "tweets"))
    shutil.copytree(key.dir, answer_key_dir(s, "tweets"))
    return s


def rebuild(s) -> tuple[TaskKit, AnswerKey]:
    """Build seed 1 of the same rows and sizes, moved into place as `task build` would."""
    kit = TaskKit(kit_dir(s, "tweets"))
    new_kit, new_key = redraw(kit, AnswerKey(answer_key_dir(s, "tweets"), kit.format), s, 1)
    for src, dst in ((new_kit.dir, kit_dir(s, "tweets")),
                     (new_key.dir, answer_key_dir(s, "tweets"))):
        shutil.rmtree(dst)
        shutil.copytree(src, dst)
    return TaskKit(kit_dir(s, "tweets")), AnswerKey(answer_key_dir(s, "tweets"), kit.format)


def client(s, app_factory):
    import httpx

    app = app_factory(s, Store(s.database_url))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lab")


async def test_a_same_size_rebuilds_old_submissions_neither_copy_nor_steer_new_ones(
        home, register, as_predictions, admin_headers):
    from aarlab.server.app import create_app

    kit = TaskKit(kit_dir(home, "tweets"))
    key = AnswerKey(answer_key_dir(home, "tweets"), kit.format)
    old_ids, old_gold = kit.ids("test"), key.labels("test", kit.ids("test"))
    async with client(home, create_app) as c:
        alice = await register(c, "alice")
        first = (await c.post("/v1/tasks/tweets/submissions", headers=alice, json={
            "predictions": as_predictions(old_ids, old_gold, kit.label_names)})).json()
    assert first["new_best"] is True and first["released_pgr"] is not None

    kit, key = rebuild(home)
    ids = kit.ids("test")
    assert len(ids) == len(old_ids) and ids != old_ids  # as many rows, other rows
    scorer = Scorer(key, ids)
    async with client(home, create_app) as c:  # the server restarted on the new build
        bob = await register(c, "bob")
        # alice's perfect vector, row for row: the same bytes, but on other rows a guess
        copy = (await c.post("/v1/tasks/tweets/submissions", headers=bob, json={
            "predictions": as_predictions(ids, old_gold, kit.label_names)})).json()
        adm = (await c.get(f"/v1/admin/submissions/{copy['id']}", headers=admin_headers)).json()
        assert adm["probe_of"] is None and adm["is_probe"] is False  # no copy of alice's
        expected = scorer.score(old_gold).pgr["feedback"]
        ladder = c._transport.app.state.scoring.task("tweets").ladder
        # judged on this build from the weak teacher's floor, not answered with alice's release
        assert copy["released_pgr"] in (None, ladder.round(expected))
        assert copy["released_pgr"] != first["released_pgr"]
        # a modest honest submission climbs this build's Ladder from the floor
        good = scorer.truth.copy()
        good[:8] = 1 - good[:8]
        r = (await c.post("/v1/tasks/tweets/submissions", headers=bob, json={
            "predictions": as_predictions(ids, good, kit.label_names)})).json()
        assert r["new_best"] is True
        assert r["released_pgr"] == ladder.round(scorer.score(good).pgr["feedback"])
        # the leaderboard ranks this build's releases only, alice's old one is not among them
        board = (await c.get("/v1/admin/tasks/tweets/leaderboard", headers=admin_headers))
        assert board.status_code == 200, board.text
        assert [x["researcher"] for x in board.json()["by_researcher"]] == ["bob"]
        row = board.json()["by_researcher"][0]
        assert row["final_pgr_ci95"] is not None and row["submissions"] == 2
        # so does the dashboard: its best, counts and curves are this build's
        live = (await c.get("/api/live", params={"task": "tweets"})).json()
        assert live["best_released_pgr"] == r["released_pgr"] < first["released_pgr"]
        assert live["counts"]["submissions"] == 2
        assert {x["researcher"] for x in live["submissions"]} == {"bob"}
        chart = (await c.get("/fragments/progress", params={"task": "tweets"})).text
        assert "bob" in chart and "alice" not in chart


async def test_unstamped_rows_count_only_when_they_score_the_same_here(
        home, register, as_predictions):
    """A store from before builds were fingerprinted: its rows read NULL. One whose stored
    scores are what its predictions score on this build is this build's (an exact copy gets
    its release); one of as many rows whose scores differ (another build) is ignored."""
    from sqlalchemy import text

    from aarlab.server.app import create_app
    from aarlab.store.identity import Researcher

    kit = TaskKit(kit_dir(home, "tweets"))
    key = AnswerKey(answer_key_dir(home, "tweets"), kit.format)
    ids = kit.ids("test")
    scorer = Scorer(key, ids)
    honest = scorer.truth.copy()
    honest[:6] = 1 - honest[:6]
    other = scorer.truth.copy()
    other[-30:] = 1 - other[-30:]
    async with client(home, create_app) as c:
        for name in ("alice", "bob"):
            await register(c, name)
    store = Store(home.database_url)
    with store.session() as s:
        rid = {r.name: r.id for r in s.scalars(select(Researcher))}
        sc = scorer.score(honest)
        s.add(legacy_row(rid["alice"], honest, sc.accuracy, sc.pgr, released=0.7))
        fake = {p: 1.0 for p in ("test", "feedback", "final")}  # scored on other rows
        s.add(legacy_row(rid["bob"], other, fake, fake, released=0.99))
    with store.engine.begin() as conn:  # as a store from before the column existed
        conn.execute(text("ALTER TABLE submissions DROP COLUMN build_fingerprint"))
    store.engine.dispose()
    async with client(home, create_app) as c:  # the upgraded server adds the column back
        carol = await register(c, "carol")
        r = (await c.post("/v1/tasks/tweets/submissions", headers=carol, json={
            "predictions": as_predictions(ids, honest, kit.label_names)})).json()
        assert r["released_pgr"] == 0.7 and r["new_best"] is False  # alice's, adopted
        r = (await c.post("/v1/tasks/tweets/submissions", headers=carol, json={
            "predictions": as_predictions(ids, other, kit.label_names)})).json()
        assert r["released_pgr"] != 0.99  # bob's row of another build is no copy
    with Store(home.database_url).session() as s:
        stamps = dict(s.execute(select(Submission.released_pgr, Submission.build_fingerprint)
                                .where(Submission.method == "legacy")).all())
    assert stamps == {0.7: scorer.fingerprint, 0.99: None}


def legacy_row(researcher_id: int, pred: np.ndarray, acc: dict, pgr: dict,
               released: float) -> Submission:
    return Submission(researcher_id=researcher_id, task="tweets", created_at=datetime.now(UTC),
                      n_rows=len(pred), predictions=pack(pred), method="legacy",
                      acc_test=acc["test"], acc_feedback=acc["feedback"],
                      acc_final=acc["final"], pgr_test=pgr["test"],
                      pgr_feedback=pgr["feedback"], pgr_final=pgr["final"],
                      released_pgr=released, new_best=True)
