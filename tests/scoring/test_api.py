"""The submission API end to end over HTTP (ASGI transport): scores, release, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aarlab.tasks.scorer import Scorer

pytestmark = pytest.mark.anyio


def corrupt(truth_idx: np.ndarray, n_wrong: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pred = truth_idx.copy()
    flip = rng.choice(len(pred), n_wrong, replace=False)
    pred[flip] = 1 - pred[flip]
    return pred


async def test_released_score_is_the_ladder_on_the_feedback_part(make_client, truth, tiny_tweets,
                                                                 register, as_predictions,
                                                                 admin_headers):
    ids, gold, labels = truth
    c = make_client()
    h = await register(c, "alice")
    # below the weak teacher (where an empty lab's Ladder starts): nothing is released
    low = (await c.post("/v1/tasks/tweets/submissions", headers=h, json={
        "predictions": as_predictions(ids, corrupt(gold, 60, seed=2), labels)})).json()
    assert low["released_pgr"] is None and low["new_best"] is False
    pred = corrupt(gold, 4, seed=0)
    r = await c.post("/v1/tasks/tweets/submissions", headers=h,
                     json={"predictions": as_predictions(ids, pred, labels), "method": "m1"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = Scorer(tiny_tweets[1], ids).score(pred).pgr["feedback"]
    ladder = c._transport.app.state.scoring.task("tweets").ladder
    assert body["released_pgr"] == ladder.round(expected)
    assert body["new_best"] is True
    # nothing about the final part, accuracies or per-row results reaches the researcher
    text = r.text.lower()
    for word in ("final", "accuracy", "acc_", "pgr_test", "is_probe", "correct"):
        assert word not in text
    assert body["budget"] == {"per_hour": 60, "total": 1000, "hour_remaining": 58,
                              "total_remaining": 998}
    assert r.headers["X-Budget-Hour-Remaining"] == "58"

    # a worse submission (far from the first: not a probe) is answered with the previous best
    worse = corrupt(gold, 70, seed=1)
    r2 = (await c.post("/v1/tasks/tweets/submissions", headers=h,
                       json={"predictions": as_predictions(ids, worse, labels)})).json()
    assert r2["released_pgr"] == body["released_pgr"] and r2["new_best"] is False

    # the admin sees both parts of the stored scores
    adm = (await c.get(f"/v1/admin/submissions/{body['id']}", headers=admin_headers)).json()
    score = Scorer(tiny_tweets[1], ids).score(pred)
    assert adm["pgr"]["final"] == pytest.approx(score.pgr["final"])
    assert adm["accuracy"]["test"] == pytest.approx(score.accuracy["test"])
    assert adm["is_probe"] is False


async def test_leaderboard_views(make_client, truth, tiny_tweets, register, as_predictions,
                                 admin_headers):
    ids, gold, labels = truth
    c = make_client()
    ha, hb = await register(c, "alice"), await register(c, "bob")
    weak = tiny_tweets[0].weak_probs("test", 0).argmax(1)
    bob = weak.copy()
    fix = np.flatnonzero(weak != gold)[:20]
    bob[fix] = gold[fix]
    # bob beats the weak teacher, alice's first is below it, her second beats bob's: the
    # leaderboard counts only submissions the Ladder released
    for h, pred, method in [(hb, bob, "vanilla"), (ha, corrupt(gold, 60, 0), "vanilla"),
                            (ha, corrupt(gold, 2, 1), "confidence")]:
        r = await c.post("/v1/tasks/tweets/submissions", headers=h, json={
            "predictions": as_predictions(ids, pred, labels), "method": method})
        assert r.status_code == 200, r.text
        assert r.json()["new_best"] is (h is hb or method == "confidence")
    board = (await c.get("/v1/tasks/tweets/leaderboard", headers=hb)).json()
    assert [r["researcher"] for r in board["by_researcher"]] == ["alice", "bob"]
    assert board["by_researcher"][0]["submissions"] == 2
    assert {r["method"] for r in board["by_method"]} == {"vanilla", "confidence"}
    # a label is the submitter's word: each method row names who released its score
    assert {r["method"]: r["released_by"] for r in board["by_method"]} == {
        "vanilla": "bob", "confidence": "alice"}
    assert "final_pgr" not in json.dumps(board)
    adm = (await c.get("/v1/admin/tasks/tweets/leaderboard", headers=admin_headers)).json()
    row = adm["by_researcher"][0]
    assert row["gap"] == pytest.approx(row["best_released_pgr"] - row["final_pgr"])
    vanilla = next(m for m in adm["by_method"] if m["method"] == "vanilla")
    assert vanilla["researchers"] == 1
    # the researcher view rejects the admin endpoint
    assert (await c.get("/v1/admin/tasks/tweets/leaderboard", headers=ha)).status_code == 401

    me = (await c.get("/v1/me", headers=ha)).json()
    assert me["name"] == "alice" and me["budget"]["total_remaining"] == 998
    assert me["best_released_pgr"]["tweets"] == board["by_researcher"][0]["best_released_pgr"]
    mine = (await c.get("/v1/tasks/tweets/submissions", headers=ha)).json()
    assert [m["method"] for m in mine] == ["vanilla", "confidence"]
    one = (await c.get(f"/v1/submissions/{mine[0]['id']}", headers=hb)).json()
    assert one["researcher"] == "alice" and "pgr" not in one


@pytest.mark.parametrize("mutate, status, needle", [
    (lambda p: p.pop(next(iter(p))) and p, 422, "missing 1 of 160 test row ids"),
    (lambda p: p | {"not-a-row": True}, 422, "not test row ids"),
    (lambda p: p | {next(iter(p)): "yes"}, 422, "expected one of [false, true], got 'yes'"),
    (lambda p: p | {next(iter(p)): 1}, 422, "expected one of [false, true], got 1"),
    (lambda p: {k: [v] for k, v in p.items()}, 422, "expected one of"),
])
async def test_bad_predictions_are_named(make_client, truth, mutate, status, needle, register,
                                         as_predictions, admin_headers):
    ids, gold, labels = truth
    c = make_client()
    h = await register(c, "alice")
    preds = mutate(as_predictions(ids, gold, labels))
    r = await c.post("/v1/tasks/tweets/submissions", headers=h, json={"predictions": preds})
    assert r.status_code == status
    assert needle in r.json()["detail"]
    # refused submissions cost nothing
    assert (await c.get("/v1/me", headers=h)).json()["budget"]["total_remaining"] == 1000


async def test_train_unlabel_ids_and_other_fields_are_refused(make_client, truth, tiny_tweets,
                                                              register, as_predictions,
                                                              admin_headers):
    ids, gold, labels = truth
    kit = tiny_tweets[0]
    c = make_client()
    h = await register(c, "alice")
    unl = {i: True for i in kit.ids("train_unlabel")}
    r = await c.post("/v1/tasks/tweets/submissions", headers=h, json={"predictions": unl})
    assert r.status_code == 422 and "only the test split is scorable" in r.json()["detail"]
    body = {"predictions": as_predictions(ids, gold, labels), "split": "train_unlabel"}
    r = await c.post("/v1/tasks/tweets/submissions", headers=h, json=body)
    assert r.status_code == 422 and r.json()["detail"].startswith("split: Extra inputs")
    body = {"predictions": as_predictions(ids, gold, labels), "snapshot_id": "abc"}
    r = await c.post("/v1/tasks/tweets/submissions", headers=h, json=body)
    assert r.status_code == 422 and r.json()["detail"].startswith("snapshot_id:")
    r = await c.post("/v1/tasks/tweets/submissions", headers=h, content=b"{not json")
    assert r.status_code == 422 and "JSON" in r.json()["detail"]


async def test_wrong_task_and_oversized_body(make_client, truth, register, as_predictions,
                                             admin_headers):
    ids, gold, labels = truth
    c = make_client(max_body_bytes=4096)
    h = await register(c, "alice")
    body = {"predictions": as_predictions(ids, gold, labels)}
    r = await c.post("/v1/tasks/nope/submissions", headers=h, json=body)
    assert r.status_code == 404 and "task: no served task 'nope'" in r.json()["detail"]
    assert "tweets" in r.json()["detail"]  # the hint lists what is served
    r = await c.post("/v1/tasks/..%2F..%2Fetc/submissions", headers=h, json=body)
    assert r.status_code == 404
    r = await c.post("/v1/tasks/tweets/submissions", headers=h, json=body)
    assert r.status_code == 413 and "over the limit of 4096 bytes" in r.json()["detail"]

    async def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(10):
            yield b" " * 1000

    r = await c.post("/v1/tasks/tweets/submissions", headers=h, content=chunks())
    assert r.status_code == 413


async def test_hourly_budget_answers_429_with_retry_after(make_client, truth, register,
                                                          as_predictions, admin_headers):
    ids, gold, labels = truth
    c = make_client(submissions_per_hour=3, submissions_total=5)
    h = await register(c, "alice")
    rng = np.random.default_rng(0)
    codes = []
    for _ in range(4):
        pred = rng.integers(0, 2, len(ids))
        r = await c.post("/v1/tasks/tweets/submissions", headers=h,
                         json={"predictions": as_predictions(ids, pred, labels)})
        codes.append(r.status_code)
    assert codes == [200, 200, 200, 429]
    assert 3500 <= int(r.headers["Retry-After"]) <= 3600
    assert r.headers["X-Budget-Hour-Remaining"] == "0"
    assert r.headers["X-Budget-Total-Remaining"] == "2"
    assert "3 submissions per hour" in r.json()["detail"]


async def test_openapi_is_published(make_client):
    c = make_client()
    doc = (await c.get("/openapi.json")).json()
    op = doc["paths"]["/v1/tasks/{task}/submissions"]["post"]
    assert "predictions" in op["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


async def test_final_labels_never_change_a_researcher_facing_answer(settings, tiny_tweets,
                                                                    tmp_path, register):
    """Same queries against two keys that differ only in the final part's labels: every
    researcher-facing answer (receipts, leaderboard, me) is byte-for-byte the same."""
    import shutil

    import httpx

    from aarlab.server.app import create_app
    from aarlab.store.db import Store

    kit, key = tiny_tweets
    ids, final = kit.ids("test"), set(key.parts["final"])
    transcripts = []
    for flip in (False, True):
        home = tmp_path / f"home-{flip}"
        shutil.copytree(kit.dir, home / "tasks" / "tweets" / "kit")
        shutil.copytree(key.dir, home / "answer-keys" / "tweets")
        labels_path = home / "answer-keys" / "tweets" / "labels.json"
        labels = json.loads(labels_path.read_text())
        if flip:
            labels["test"] = {i: (not v if i in final else v) for i, v in labels["test"].items()}
        labels_path.write_text(json.dumps(labels))
        s = settings.model_copy(update={"home": home, "answer_key_root": None,
                                        "db_url": f"sqlite:///{home / 'lab.db'}",
                                        "admin_token": "test-admin-token"})
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s, Store(
            s.database_url))), base_url="http://lab")
        h = await register(c, "mallory")
        gold = key.labels("test", ids)  # the unflipped key's: the same queries for both
        out = []
        for t in range(25):  # closer and closer to the truth, so the Ladder releases some
            pred = corrupt(gold, 75 - 3 * t, seed=t)
            r = await c.post("/v1/tasks/tweets/submissions", headers=h, json={
                "predictions": {i: bool(k) for i, k in zip(ids, pred, strict=True)}})
            out.append({k: v for k, v in r.json().items() if k != "created_at"})
        out.append((await c.get("/v1/tasks/tweets/leaderboard", headers=h)).json())
        out.append((await c.get("/v1/me", headers=h)).json())
        transcripts.append(out)
    assert transcripts[0] == transcripts[1]
    assert len({json.dumps(r.get("released_pgr")) for r in transcripts[0][:25]}) > 1


async def test_exact_copies_are_answered_and_not_probes_near_copies_are(
        make_client, truth, register, as_predictions, admin_headers):
    """Honest reuse (issue 15, break 5): adopting another researcher's published result."""
    ids, gold, labels = truth
    c = make_client()
    ha, hb = await register(c, "alice"), await register(c, "bob")

    async def send(h, pred) -> dict:
        r = await c.post("/v1/tasks/tweets/submissions", headers=h,
                         json={"predictions": as_predictions(ids, pred, labels)})
        assert r.status_code == 200, r.text
        return r.json()

    best = corrupt(gold, 3, seed=4)
    original = await send(ha, best)
    assert original["new_best"]
    copy = await send(hb, best)  # bob adopts alice's result as it stands
    assert copy["released_pgr"] == original["released_pgr"] and not copy["new_best"]
    again = await send(ha, best)  # and alice resubmits her own
    assert again["released_pgr"] == original["released_pgr"]
    for r in (copy, again):
        adm = (await c.get(f"/v1/admin/submissions/{r['id']}", headers=admin_headers)).json()
        assert adm["is_probe"] is False and adm["probe_of"] == original["id"]

    near = best.copy()
    near[:3] ^= 1  # three rows differ: a near-copy still learns nothing and is flagged
    probe = await send(hb, near)
    adm = (await c.get(f"/v1/admin/submissions/{probe['id']}", headers=admin_headers)).json()
    assert adm["is_probe"] is True and probe["new_best"] is False
    assert probe["released_pgr"] == original["released_pgr"]  # bob's Ladder: the lab's best
    events = (await c.get("/v1/admin/audit?kind=probe", headers=admin_headers)).json()
    assert [e["details"]["submission_id"] for e in events] == [probe["id"]]


async def test_a_rebuilt_tasks_old_submissions_neither_break_nor_steer_new_ones(
        make_client, truth, lab_settings, register, as_predictions):
    """A task rebuilt with another test size keeps its old submissions in the store: they are
    not compared with new ones (no probe, no Ladder reference), and submitting still works."""
    from datetime import UTC, datetime

    from aarlab.scoring.tables import Submission
    from aarlab.store.db import Store

    ids, gold, labels = truth
    c = make_client()
    h = await register(c, "alice")
    with Store(lab_settings.database_url).session() as s:  # a release on the old 48-row build
        rid = s.scalar(select_researcher_id("alice"))
        s.add(Submission(researcher_id=rid, task="tweets", created_at=datetime.now(UTC),
                         n_rows=48, predictions=b"\xff" * 8, new_best=True, released_pgr=0.99,
                         acc_test=1, acc_feedback=1, acc_final=1, pgr_test=1, pgr_feedback=1,
                         pgr_final=1))
    r = await c.post("/v1/tasks/tweets/submissions", headers=h,
                     json={"predictions": as_predictions(ids, corrupt(gold, 4, seed=0), labels)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["new_best"] is True and body["released_pgr"] != 0.99  # judged on this build


def select_researcher_id(name: str):
    from sqlalchemy import select

    from aarlab.store.identity import Researcher

    return select(Researcher.id).where(Researcher.name == name)
