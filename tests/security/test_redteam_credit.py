"""Red-team pass (session 14) on whose score and whose code a result is credited with.

A submission the Ladder does not release stores what its author was told: with no release of
their own, the lab's best, i.e. another researcher's score. Each attack below took that number,
or another researcher's code, as one's own:

- an exact copy of one's own unreleased candidate ranked as "a copy of a release" and took the
  lab's headline at someone else's score;
- the final report's leaderboard (which also chooses what is replicated) and the forum's result
  posts showed unreleased submissions at the lab's best, under the junk's author;
- a submission could name any snapshot (another researcher's, or none that exists) as the code
  that produced it, listing junk under that code and pointing the audit and the replication
  at it;
- a Unicode digit (``uploader=²``) made the snapshot listing fail (a 500).

All through the real ASGI app, on a real SQLite file.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from sqlalchemy import select

from aarlab.lab import headline
from aarlab.lab.report import lab_summary
from aarlab.replication.method import load_method
from aarlab.replication.report import leaderboard
from aarlab.scoring.tables import Submission
from redteam_lab import lab_of, noisy, ok, register, submit
from tarballs import targz_files


def test_a_copy_of_an_unreleased_candidate_takes_no_credit(lab, tiny_tweets):
    s, store, c = lab
    kit, key = tiny_tweets
    truth = key.labels("test", kit.ids("test"))
    alice, bob = register(c, "alice"), register(c, "bob")
    a = ok(submit(c, alice, kit, noisy(truth, 4, 0), "alice-method"))
    assert a["new_best"]
    # Bob's candidate is worse than alice's: not released, answered with alice's score.
    candidate = noisy(truth, 40, 1)
    first = ok(submit(c, bob, kit, candidate, "bob-method"))
    again = ok(submit(c, bob, kit, candidate, "bob-method"))  # the same bytes
    assert not first["new_best"] and not again["new_best"]
    assert again["released_pgr"] == a["released_pgr"]  # the answer itself is unchanged
    # A copy of alice's release is still credited with it (and loses the tie to her).
    copy = ok(submit(c, bob, kit, noisy(truth, 4, 0), "bob-copies-alice"))
    with store.session() as db:
        rows = {x.id: x for x in db.scalars(select(Submission))}
    assert headline.own_released(rows[again["id"]]) is None
    assert headline.own_released(rows[first["id"]]) is None
    assert headline.own_released(rows[copy["id"]]) == a["released_pgr"]
    assert headline.rank(rows[a["id"]]) > headline.rank(rows[copy["id"]])

    summary = lab_summary(store, s, lab_of(store, ["alice", "bob"]))
    assert summary["best_submission_id"] == a["id"]
    assert summary["best_method"] == "alice-method"


def test_the_final_reports_board_and_the_forum_show_only_released_scores(lab, tiny_tweets):
    s, store, c = lab
    kit, key = tiny_tweets
    truth = key.labels("test", kit.ids("test"))
    alice, bob = register(c, "alice"), register(c, "bob")
    released = [ok(submit(c, alice, kit, noisy(truth, k, k), f"alice-v{i}"))
                for i, k in enumerate((16, 0))]
    assert all(r["new_best"] for r in released)
    rng = np.random.default_rng(7)
    junk = [ok(submit(c, bob, kit, rng.integers(0, 2, len(truth)), f"bob-junk-{j}"))
            for j in range(3)]
    assert all(not j["new_best"] and j["released_pgr"] == released[-1]["released_pgr"]
               for j in junk)

    board = leaderboard(store, lab_of(store, ["alice", "bob"]))
    # Every release ranks above every unreleased submission, which shows no released score;
    # the first entries are what the report replicates.
    assert [x["method"] for x in board[:2]] == ["alice-v1", "alice-v0"]
    assert all(x["released_pgr"] is None for x in board if x["researcher"] == "bob")

    post = c.post("/v1/forum/findings", headers=bob, json={
        "kind": "result", "title": "bob's breakthrough", "submission_id": junk[0]["id"]})
    assert post.status_code == 201, post.text
    assert post.json()["metrics"]["released_pgr"] is None
    mine = c.post("/v1/forum/findings", headers=alice, json={
        "kind": "result", "title": "alice's result", "submission_id": released[0]["id"]})
    assert mine.status_code == 201, mine.text
    top = c.get("/v1/forum/findings", headers=bob, params={"sort": "pgr"}).json()
    items = top.get("items", top) if isinstance(top, dict) else top
    assert items[0]["title"] == "alice's result"
    page = c.get("/forum").text
    bob_entry = page[page.index("bob&#39;s breakthrough"):][:600]
    assert "released PGR" not in bob_entry and "did not release" in bob_entry
    shown = f"{released[-1]['released_pgr']:.3f}"
    assert shown not in bob_entry


def test_a_submission_can_only_name_a_snapshot_its_author_uploaded(lab, tiny_tweets):
    s, store, c = lab
    kit, key = tiny_tweets
    truth = key.labels("test", kit.ids("test"))
    alice, bob = register(c, "alice"), register(c, "bob")
    archive = targz_files({"spec.json": b'{"method": "weak_soft"}'})
    snap = c.post("/v1/snapshots", headers=alice, content=archive)
    assert snap.status_code in (200, 201), snap.text
    sid = snap.json()["id"]
    junk = np.random.default_rng(0).integers(0, 2, len(truth))

    # Alice's code, or code nobody uploaded, on bob's junk: refused, naming the field, and
    # nothing stored (no budget spent).
    for cited in (sid, "0" * 64):
        r = submit(c, bob, kit, junk, "bob", snapshot_id=cited)
        assert r.status_code == 422, r.text
        assert "snapshot_id" in r.text
    with store.session() as db:
        assert db.scalars(select(Submission)).all() == []
    assert c.get(f"/v1/snapshots/{sid}", headers=bob).json()["submission_ids"] == []

    # Linking afterwards is refused the same way.
    mine = ok(submit(c, bob, kit, junk, "bob"))
    r = c.post(f"/v1/snapshots/{sid}/links", headers=bob, json={"submission_id": mine["id"]})
    assert r.status_code == 422 and "snapshot_id" in r.text

    # Bob may run alice's code: uploading the same bytes makes him a holder of that snapshot
    # (content-addressed, one row), and then his submission may name it.
    again = c.post("/v1/snapshots", headers=bob, content=archive)
    assert again.status_code in (200, 201) and again.json()["id"] == sid
    ran = ok(submit(c, bob, kit, noisy(truth, 30, 3), "bob runs alice's code",
                      snapshot_id=sid))
    assert load_method(store, s, ran["id"]).snapshot_id == sid


def test_a_post_shows_only_its_authors_code_and_a_result_only_its_submissions(lab, tiny_tweets):
    # Round 9: a submission or a link naming another's snapshot was refused, but a forum post
    # could name any snapshot: a result on mallory's release showed alice's code as the code
    # behind it (and the search researchers read a top result's snapshot spec as the lab's
    # best), and a result could cite mallory's own code that did not produce it.
    s, store, c = lab
    kit, key = tiny_tweets
    truth = key.labels("test", kit.ids("test"))
    alice, mallory = register(c, "alice"), register(c, "mallory")

    def created(r) -> dict:  # noqa: ANN001
        assert r.status_code in (200, 201), r.text
        return r.json()

    theirs = created(c.post("/v1/snapshots", headers=alice,
                       content=targz_files({"spec.json": b'{"steps": []}'})))["id"]
    decoy = created(c.post("/v1/snapshots", headers=mallory,
                      content=targz_files({"spec.json": b'{"decoy": 1}'})))["id"]
    code = created(c.post("/v1/snapshots", headers=mallory,
                     content=targz_files({"run.py": b"print(1)"})))["id"]
    made = ok(submit(c, mallory, kit, noisy(truth, 30, 1), "mine", snapshot_id=code))

    def post(kind: str, **fields) -> object:
        return c.post("/v1/forum/findings", headers=mallory,
                      json={"kind": kind, "title": "t", "body": "b", **fields})

    for named in (theirs, decoy):  # another's code, or one's own that did not produce it
        r = post("result", submission_id=made["id"], snapshot_id=named)
        assert r.status_code == 422 and "snapshot_id" in r.text, r.text
    r = post("insight", snapshot_id=theirs)
    assert r.status_code == 422 and "not uploaded by you" in r.text
    assert c.get("/v1/forum/findings", headers=alice).json()["items"] == []
    # What is the author's own stays as it was: the submission's code by default or by name,
    # one's own snapshot on an insight, and one's own named for a submission with no code
    # yet, which becomes its link.
    assert created(post("result", submission_id=made["id"]))["snapshot_id"] == code
    named = created(post("result", submission_id=made["id"], snapshot_id=code))
    assert named["snapshot_id"] == code
    assert created(post("insight", snapshot_id=decoy))["snapshot_id"] == decoy
    bare = ok(submit(c, mallory, kit, noisy(truth, 40, 2), "no code"))
    linked = created(post("result", submission_id=bare["id"], snapshot_id=decoy))
    assert linked["snapshot_id"] == decoy
    assert bare["id"] in c.get(f"/v1/snapshots/{decoy}", headers=alice).json()["submission_ids"]


@pytest.mark.parametrize("uploader", ["²", "٣", "¹²"])
def test_a_unicode_digit_as_uploader_is_a_name_not_a_crash(lab, uploader):
    _, _, c = lab
    h = register(c, "alice")
    r = c.get("/v1/snapshots", headers=h, params={"uploader": uploader})
    assert r.status_code == 200 and r.json() == [], r.text


def test_report_cells_and_archive_names_carry_no_control_or_bidi_characters():
    from aarlab.archive import UnsafeArchiveError, _check_name
    from aarlab.replication.audit import md_cell

    hostile = "ok\x9b31mred\u202eexe.txt\x1b]52;c;cHduZWQ=\x07"
    cell = md_cell(hostile)
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", cell), cell
    for name in ("run\u202eyp.txt", "a\x9bb.py", "x\u2067y", "ok\x1b.py"):
        with pytest.raises(UnsafeArchiveError, match="control characters"):
            _check_name(name)
    _check_name("notebook-ünïcode.md")  # letters of any script are fine
