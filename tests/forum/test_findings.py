"""Findings over HTTP: results cite real scored submissions, history is append-only, one vote per
researcher, search by words with filters, admin hiding through the audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from aarlab.scoring.tables import Submission

pytestmark = pytest.mark.anyio


async def test_result_without_a_scored_submission_is_refused(lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    r = await lab.post(alice, kind="result", title="PGR 0.9 with a confidence loss")
    assert r.status_code == 422
    assert "submission_id" in r.text and "scored submission" in r.text

    r = await lab.post(alice, kind="result", submission_id=999)
    assert r.status_code == 422 and "not one of your scored submissions" in r.text

    bobs = await lab.submit(bob, 0.9)
    r = await lab.post(alice, kind="result", submission_id=bobs["id"])  # someone else's score
    assert r.status_code == 422 and "not one of your scored submissions" in r.text

    listed = await lab.http.get("/v1/forum/findings", headers=alice)
    assert listed.json()["total"] == 0


async def test_displayed_pgr_is_the_servers_released_score(lab):
    alice = await lab.researcher("alice")
    receipt = await lab.submit(alice, 0.9)  # above the weak teacher: released
    claim = "We reach **PGR = 0.99** (released_pgr: 0.99) on tweets!"
    r = await lab.post(alice, kind="result", submission_id=receipt["id"], body=claim,
                       task="tweets")
    assert r.status_code == 201, r.text
    posted = r.json()
    with lab.store.session() as s:
        stored = s.get(Submission, receipt["id"]).released_pgr
    assert stored is not None and stored != 0.99
    assert posted["metrics"]["released_pgr"] == stored == receipt["released_pgr"]
    assert posted["metrics"]["submission_id"] == receipt["id"]
    assert posted["task"] == "tweets" and posted["body"] == claim

    shown = (await lab.http.get(f"/v1/forum/findings/{posted['id']}", headers=alice)).json()
    assert shown["metrics"]["released_pgr"] == stored
    listed = (await lab.http.get("/v1/forum/findings", headers=alice)).json()["items"]
    assert listed[0]["metrics"]["released_pgr"] == stored

    # Numbers cannot be smuggled in as fields either, and the task must match the submission.
    r = await lab.post(alice, kind="result", submission_id=receipt["id"],
                       metrics={"released_pgr": 0.99})
    assert r.status_code == 422 and "metrics" in r.text
    r = await lab.post(alice, kind="result", submission_id=receipt["id"], task="snli-pref")
    assert r.status_code == 422 and "task" in r.text


async def test_edits_append_revisions_and_history_cannot_be_rewritten(lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    f = (await lab.post(alice, kind="hypothesis", title="Confidence loss helps",
                        body="first draft about entropy", tags=["loss"])).json()
    for body in ("second draft about calibration", "third draft about bootstrapping"):
        r = await lab.http.post(f"/v1/forum/findings/{f['id']}/revisions", json={"body": body},
                                headers=alice)
        assert r.status_code == 201, r.text
    r = await lab.http.post(f"/v1/forum/findings/{f['id']}/revisions",
                            json={"title": "Confidence loss helps a lot", "tags": ["loss", "w2s"]},
                            headers=alice)
    head = r.json()
    assert head["revision"] == 4 and head["body"] == "third draft about bootstrapping"
    assert head["tags"] == ["loss", "w2s"]

    detail = (await lab.http.get(f"/v1/forum/findings/{f['id']}", headers=bob)).json()
    assert [v["number"] for v in detail["revisions"]] == [1, 2, 3, 4]
    assert detail["revisions"][0]["body"] == "first draft about entropy"
    assert detail["revisions"][0]["title"] == "Confidence loss helps"
    assert detail["revisions"][3]["title"] == "Confidence loss helps a lot"

    r = await lab.http.post(f"/v1/forum/findings/{f['id']}/revisions", json={"body": "mine now"},
                            headers=bob)
    assert r.status_code == 403 and "only its author" in r.text
    r = await lab.http.post(f"/v1/forum/findings/{f['id']}/revisions", json={}, headers=alice)
    assert r.status_code == 422 and "at least one of title, body, tags" in r.text

    # Search sees the head only; the history stays readable but is not the post any more.
    hits = (await lab.http.get("/v1/forum/findings", params={"q": "bootstrapping"},
                               headers=bob)).json()
    assert [h["id"] for h in hits["items"]] == [f["id"]]
    assert (await lab.http.get("/v1/forum/findings", params={"q": "entropy"},
                               headers=bob)).json()["total"] == 0

    # The database itself refuses to rewrite or delete history.
    with lab.store.engine.begin() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.execute(text("UPDATE finding_revisions SET body = 'rewritten'"))
    with lab.store.engine.begin() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.execute(text("DELETE FROM finding_revisions"))


async def test_one_vote_per_researcher(lab):
    alice, bob, carol = [await lab.researcher(n) for n in ("alice", "bob", "carol")]
    f = (await lab.post(alice, kind="insight", title="Soft labels copy the teacher")).json()
    url = f"/v1/forum/findings/{f['id']}/vote"

    async def vote(who, value):
        r = await lab.http.put(url, json={"value": value}, headers=who)
        assert r.status_code == 200, r.text
        return r.json()["score"]

    assert await vote(bob, 1) == 1
    assert await vote(bob, 1) == 1  # again: still one vote
    assert await vote(carol, 1) == 2
    assert await vote(bob, -1) == 0  # changed, not added
    assert await vote(bob, 0) == 1  # withdrawn
    assert await vote(bob, 0) == 1
    r = await lab.http.put(url, json={"value": 1}, headers=alice)
    assert r.status_code == 403 and "own finding" in r.text
    r = await lab.http.put(url, json={"value": 5}, headers=bob)
    assert r.status_code == 422 and "value" in r.text
    detail = (await lab.http.get(f"/v1/forum/findings/{f['id']}", headers=carol)).json()
    assert detail["score"] == 1 and detail["my_vote"] == 1
    with lab.store.session() as s:
        assert s.execute(text("SELECT count(*) FROM forum_votes")).scalar() == 1


async def test_search_by_words_with_filters_and_sorts(lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    low, high = await lab.submit(alice, 0.85), await lab.submit(bob, 0.95)
    posts = [
        (alice, dict(kind="result", submission_id=low["id"], title="Entropy loss",
                     body="Auxiliary confidence loss with calibration of the student.",
                     tags=["loss"])),
        (bob, dict(kind="result", submission_id=high["id"], title="Bootstrapped labels",
                   body="Relabel with the student, then retrain; calibrated thresholds.",
                   tags=["bootstrap"])),
        (alice, dict(kind="hypothesis", task="tweets", title="Calibration matters",
                     body="Maybe the teacher is overconfident on neutral tweets.")),
        (bob, dict(kind="error", task="snli-pref", title="OOM", body="Calibrating crashed.")),
        (bob, dict(kind="insight", title="Unrelated", body="Nothing about it here.")),
    ]
    ids = []
    for who, p in posts:
        r = await lab.post(who, **p)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    async def find(**params):
        r = await lab.http.get("/v1/forum/findings", params=params, headers=alice)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    # Porter stemming: "calibration" finds calibrated / calibration / calibrating.
    assert set(await find(q="calibration")) == set(ids[:4])
    assert await find(q="calibration", kind="result", sort="new") == [ids[1], ids[0]]
    assert set(await find(q="calibration", task="tweets")) == {ids[0], ids[1], ids[2]}
    assert await find(q="teacher overconfident") == [ids[2]]  # every word must match
    assert await find(q="student", author="alice") == [ids[0]]
    assert await find(tag="bootstrap") == [ids[1]]
    assert await find(kind="error") == [ids[3]]
    assert await find(q="nonexistentword") == []
    assert await find() == ids[::-1]  # newest first
    assert (await find(sort="pgr"))[:2] == [ids[1], ids[0]]  # best released PGR first
    assert (await find(q='" AND NEAR( * calibr')) == []  # query syntax is plain text

    await lab.http.put(f"/v1/forum/findings/{ids[4]}/vote", json={"value": 1}, headers=alice)
    assert (await find(sort="top"))[0] == ids[4]

    r = await lab.http.get("/v1/forum/findings", params={"kind": "rumour"}, headers=alice)
    assert r.status_code == 422 and "kind" in r.text


async def test_comments_and_admin_hiding_is_audited_not_erased(lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    f = (await lab.post(alice, kind="insight", title="Spam", body="buy tokens")).json()
    r = await lab.http.post(f"/v1/forum/findings/{f['id']}/comments", json={"body": "hm"},
                            headers=bob)
    assert r.status_code == 201 and r.json()["author"]["name"] == "bob"

    r = await lab.http.post(f"/v1/forum/findings/{f['id']}/hide", json={"reason": "spam"},
                            headers=bob)
    assert r.status_code == 401
    r = await lab.http.post(f"/v1/forum/findings/{f['id']}/hide", json={"reason": "spam"},
                            headers=lab.admin)
    assert r.status_code == 200 and r.json()["hidden"] is True

    assert (await lab.http.get(f"/v1/forum/findings/{f['id']}", headers=bob)).status_code == 404
    listed = await lab.http.get("/v1/forum/findings", params={"q": "tokens"}, headers=bob)
    assert listed.json()["total"] == 0
    r = await lab.http.get("/v1/forum/findings", params={"include_hidden": True}, headers=bob)
    assert r.status_code == 403
    r = await lab.http.get("/v1/forum/findings", params={"include_hidden": True, "q": "tokens"},
                           headers=lab.admin)
    assert [x["id"] for x in r.json()["items"]] == [f["id"]]
    kept = (await lab.http.get(f"/v1/forum/findings/{f['id']}", headers=lab.admin)).json()
    assert kept["body"] == "buy tokens" and kept["comments"][0]["body"] == "hm"
    r = await lab.http.post(f"/v1/forum/findings/{f['id']}/comments", json={"body": "x"},
                            headers=bob)
    assert r.status_code == 404 and "hidden" in r.text

    events = (await lab.http.get("/v1/admin/audit", params={"kind": "forum.hide"},
                                 headers=lab.admin)).json()
    assert len(events) == 1 and events[0]["details"]["finding_id"] == f["id"]
    assert events[0]["details"]["reason"] == "spam"
    await lab.http.post(f"/v1/forum/findings/{f['id']}/unhide", json={"reason": "appeal"},
                        headers=lab.admin)
    assert (await lab.http.get(f"/v1/forum/findings/{f['id']}", headers=bob)).status_code == 200
    with lab.store.engine.begin() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.execute(text("DELETE FROM forum_comments"))


async def test_forum_needs_a_token_and_is_in_the_openapi_spec(lab):
    r = await lab.http.get("/v1/forum/findings")
    assert r.status_code == 401
    r = await lab.http.post("/v1/forum/findings", json={"kind": "insight", "title": "x"},
                            headers={"Authorization": "Bearer aar_forged"})
    assert r.status_code == 401
    paths = (await lab.http.get("/openapi.json")).json()["paths"]
    assert {"/v1/forum/findings", "/v1/forum/findings/{finding_id}/vote", "/v1/snapshots",
            "/v1/snapshots/{snapshot_id}/archive"} <= set(paths)
    upload = paths["/v1/snapshots"]["post"]["requestBody"]["content"]
    assert {"application/gzip", "application/zip", "multipart/form-data"} <= set(upload)
