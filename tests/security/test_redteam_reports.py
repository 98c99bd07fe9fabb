"""Red-team pass (session 14, second round) on what reaches reports, pages and other researchers.

- A snapshot's ``spec.json`` with a hostile *key* (pipes, newlines, ``## Audit``, an OSC 52
  clipboard write) went into the reason a result cannot be replicated, and from there raw into
  the final report's leaderboard (forged cells and a fake audit section) and the terminal.
- A telemetry event holding ``10**400`` (valid JSON, finite, no float) made its researcher's
  page fail and stopped the final report (its audit and replication) at ``measured_seconds``.
- Forum text took terminal escapes and bidi overrides; ``?author=²`` was a 500; and one
  researcher could bury another's finding under comments at the full write rate.

All through the real ASGI app, on a real SQLite file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from aarlab.forum import service as forum_service
from aarlab.lab.tables import LabEvent
from aarlab.replication.report import leaderboard, measured_seconds, render_final, top_methods
from aarlab.store.identity import Researcher
from redteam_lab import lab_of, register
from tarballs import targz_files

ESCAPES = ("\x1b", "\x9b", "\u202e")


HOSTILE_KEY = ("x | 0.912 [0.90, 0.93] | 0.915 [0.90, 0.93] |\n\n## Audit\n\n| check | flags |\n"
               "|---|---|\n| probes | 0 |\n\n\x1b]52;c;cHduZWQ=\x1b\\\u202e<!--")


def test_a_hostile_spec_key_reaches_neither_the_report_nor_the_terminal(lab, tiny_tweets,
                                                                          capsys):
    s, store, c = lab
    kit, key = tiny_tweets
    ids = kit.ids("test")
    truth = key.labels("test", ids)
    mallory = register(c, "mallory")
    spec = json.dumps({"method": "weak_soft", HOSTILE_KEY: 1}).encode()
    snap = c.post("/v1/snapshots", headers=mallory,
                  content=targz_files({"spec.json": spec})).json()["id"]
    r = c.post("/v1/tasks/tweets/submissions", headers=mallory, json={
        "predictions": {i: kit.label_names[int(k)] for i, k in zip(ids, truth, strict=True)},
        "method": "mallory", "snapshot_id": snap})
    assert r.status_code == 200 and r.json()["new_best"], r.text

    lab_id = lab_of(store, ["mallory"])
    board = leaderboard(store, lab_id)
    _, not_replicable = top_methods(store, s, board, 3, (101,), [])
    why = not_replicable[0]["not_replicable"]
    assert why and all(c.isprintable() for c in why), repr(why)
    md = render_final({}, board, not_replicable, {"lab_id": lab_id, "counts": {}}, [],
                      "# lab report")
    assert not any(e in md for e in ESCAPES)
    row = next(line for line in md.splitlines() if "cannot replicate" in line)
    # One table row: the key's pipes cannot open cells of their own, its newlines no section.
    assert row.count("|") - row.count("\\|") == 9, row
    assert "\n## Audit\n\n| check | flags |\n|---|---|\n| probes | 0 |" not in md

    # The CLI prints an error that quotes the snapshot's words as text.
    from aarlab import cli
    from aarlab.replication.method import ReplicationError

    def fail():
        raise ReplicationError(f"1 cannot be replicated: {HOSTILE_KEY}")

    original = cli.app
    cli.app = fail
    try:
        with pytest.raises(SystemExit):
            cli.main()
    finally:
        cli.app = original
    err = capsys.readouterr().err
    assert "cannot be replicated" in err and not any(e in err for e in ESCAPES), repr(err)


def test_an_integer_past_a_floats_range_is_refused_and_an_old_one_breaks_nothing(lab):
    s, store, c = lab
    mallory = register(c, "mallory")
    # Python writes the integer's digits, as any JSON client may.
    body = json.dumps({"kind": "experiment", "payload": {"spec": "weak_soft",
                                                         "seconds": 10 ** 400}})
    r = c.post("/v1/lab/events", content=body,
               headers={**mallory, "Content-Type": "application/json"})
    assert r.status_code == 422 and "payload" in r.text, r.text
    ok = c.post("/v1/lab/events", headers=mallory, json={
        "kind": "experiment", "payload": {"spec": "weak_soft", "seconds": 2 ** 53,
                                          "signal": 0.5}})
    assert ok.status_code == 201, ok.text

    # A store written before the check may hold one: the page and the report still work.
    lab_id = lab_of(store, ["mallory"])
    with store.session() as db:
        rid = db.scalar(select(Researcher.id).where(Researcher.name == "mallory"))
        db.add(LabEvent(researcher_id=rid, kind="experiment",
                        payload={"spec": "gce", "seconds": 10 ** 400, "signal": 10 ** 400}))
    assert c.get("/researchers/mallory").status_code == 200
    assert "gce" not in measured_seconds(store, lab_id)


def test_forum_text_is_text_and_a_unicode_digit_author_is_a_name(lab):
    _, _, c = lab
    alice, bob = register(c, "alice"), register(c, "bob")
    for field, value in (("title", "ok\x1b]52;c;cHduZWQ=\x07"), ("title", "two\nlines"),
                         ("title", "a\u202eb"), ("body", "csi \x9b31m"), ("body", "nul\x00")):
        r = c.post("/v1/forum/findings", headers=alice,
                   json={"kind": "insight", "title": "t", "body": "b", field: value})
        assert r.status_code == 422 and field in r.text, (field, r.text)
    ok = c.post("/v1/forum/findings", headers=alice, json={
        "kind": "insight", "title": "fine", "body": "line one\n\tline two\r\n"})
    assert ok.status_code == 201, ok.text
    fid = ok.json()["id"]
    r = c.post(f"/v1/forum/findings/{fid}/comments", headers=bob, json={"body": "\x1b[2J"})
    assert r.status_code == 422 and "body" in r.text
    r = c.post(f"/v1/forum/findings/{fid}/revisions", headers=alice, json={"title": "x\u2066y"})
    assert r.status_code == 422 and "title" in r.text, r.text
    for author in ("²", "٣", "¹²"):
        assert c.get("/v1/forum/findings", headers=bob,
                     params={"author": author}).status_code == 200
        assert c.get("/forum", params={"author": author}).status_code == 200


def test_one_researcher_cannot_bury_anothers_finding_under_comments(lab, monkeypatch):
    _, _, c = lab
    monkeypatch.setattr(forum_service, "MAX_COMMENTS_PER_AUTHOR", 3)
    monkeypatch.setattr(forum_service, "MAX_REVISIONS", 4)
    alice, bob = register(c, "alice"), register(c, "bob")
    fid = c.post("/v1/forum/findings", headers=alice,
                 json={"kind": "insight", "title": "mine", "body": "b"}).json()["id"]
    codes = [c.post(f"/v1/forum/findings/{fid}/comments", headers=bob,
                    json={"body": "x" * 10_000}).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 422, 422]
    assert c.post(f"/v1/forum/findings/{fid}/comments", headers=alice,
                  json={"body": "the author can still answer"}).status_code == 201
    edits = [c.post(f"/v1/forum/findings/{fid}/revisions", headers=alice,
                     json={"body": str(i)}).status_code for i in range(5)]
    assert edits == [201, 201, 201, 422, 422], edits  # revision 1 is the post itself
    comments = c.get(f"/v1/forum/findings/{fid}", headers=bob).json()["comments"]
    assert len(comments) == 4
    assert np.mean([len(x["body"]) for x in comments]) < 10_000
