"""Red-team pass (session 15) on what a researcher's claims and copies are credited with.

- A submission's ``seeds`` naming a seed the kit does not have (one of the replication's
  reserved seeds, which no sandbox holds) made the replication fall back to the kit's own
  seeds, those the method was developed on, and call them fresh.
- Copy detection spans the store: a sandbox in a later lab downloaded an earlier lab's best
  predictions from its forum snapshot, resubmitted them under its own label, and took this
  lab's headline at that lab's score.
- Short researcher text in an audit cell stayed outside a code span: ``![](http://…)`` was a
  live remote image in the final report.
- A snapshot's ``label`` took control and bidi characters (refused in every other text field).
- The public forum page's filters listed a hidden finding's author and tags.
- The public task page showed test and feedback references with both sizes: the final half's
  weak and ceiling accuracies were one subtraction away.

Through the real ASGI app on a real SQLite file.
"""

from __future__ import annotations

import numpy as np

from aarlab.lab.report import lab_summary, verdict
from aarlab.replication.audit import md_cell
from aarlab.replication.method import Method
from aarlab.replication.replicate import fresh_seeds
from aarlab.tasks.answer_key import AnswerKey
from redteam_lab import ADMIN, lab_of, noisy, ok, register, submit
from tarballs import targz_files


def test_seeds_a_kit_does_not_have_are_refused_and_never_make_replication_stale(
        lab, tiny_tweets):
    _, _, c = lab
    kit, key = tiny_tweets
    truth = key.labels("test", kit.ids("test"))
    h = register(c, "mallory")
    reserved = [int(s) for s in key.reference["replication_seeds"]]
    r = submit(c, h, kit, noisy(truth, 4, 0), "m", seeds=[reserved[0]])
    assert r.status_code == 422 and "seeds" in r.json()["detail"]
    ok(submit(c, h, kit, noisy(truth, 4, 0), "m", seeds=list(kit.seeds)))

    # A claim overlapping the reserved seeds (a store written before the check) still gets
    # the reserved seeds, not the kit's own.
    _, seeds, fresh = fresh_seeds(Method(ref="a", seeds_used=[reserved[0]]), kit, key)
    assert seeds == reserved and fresh
    old = AnswerKey(key.dir, kit.format)  # a task built before seeds were reserved
    old.__dict__["reference"] = {**key.reference, "replication_seeds": []}
    _, seeds, fresh = fresh_seeds(Method(ref="b", seeds_used=[99]), kit, old)
    assert not fresh  # a seed the kit lacks says nothing about which were used
    _, seeds, fresh = fresh_seeds(Method(ref="c", seeds_used=[]), kit, old)
    assert not fresh and seeds == kit.seeds  # nor does none (was: every kit seed, "fresh")
    r = submit(c, h, kit, noisy(truth, 4, 0), "m", seeds=[])
    assert r.status_code == 422 and "seeds" in r.json()["detail"]


def test_a_copy_of_another_labs_release_takes_no_credit_in_this_lab(lab, tiny_tweets):
    s, store, c = lab
    kit, key = tiny_tweets
    ids = kit.ids("test")
    truth = key.labels("test", ids)
    alice = register(c, "alice")
    first = ok(submit(c, alice, kit, truth, "alice-method"))
    assert first["new_best"]
    lab_of(store, ["alice"])  # an earlier lab

    mallory, bob = register(c, "mallory"), register(c, "bob")
    copy = ok(submit(c, mallory, kit, truth, "mallory-label"))
    assert copy["released_pgr"] == first["released_pgr"]  # the answer is unchanged

    def own_work(wrong: int, first: bool) -> np.ndarray:
        # ``wrong`` rows wrong in each half (no near-copy of anything else here, and not
        # vetoed by the final half), below the copy on feedback
        pred = truth.copy()
        for part in ("feedback", "final"):
            rows = np.flatnonzero(np.isin(ids, key.parts[part]))
            rows = rows[:wrong] if first else rows[-wrong:]
            pred[rows] = 1 - pred[rows]
        return pred

    ok(submit(c, mallory, kit, own_work(7, first=True), "mallory-own"))
    honest = ok(submit(c, bob, kit, own_work(5, first=False), "bob-method"))
    summary = lab_summary(store, s, lab_of(store, ["mallory", "bob"]))
    # was mallory's copy: lab 1's predictions, reported and replicated as lab 2's pick
    assert summary["best_submission_id"] == honest["id"]
    assert summary["researchers"]["mallory"]["best_method"] == "mallory-own"
    # ... and the lab says how many it left out, and why (a later `aarlab run` in the same
    # home, whose researchers start from the forum's best snapshot, can have none of its own)
    assert summary["copies_of_earlier_labs"] == 1 and summary["submissions"] == 2
    carol = register(c, "carol")
    ok(submit(c, carol, kit, truth, "carol-label"))
    only_copies = lab_summary(store, s, lab_of(store, ["carol"]))
    assert only_copies["submissions"] == 0 and only_copies["copies_of_earlier_labs"] == 1
    assert "give it a home of its own" in verdict(only_copies)

    # Within one lab, a copy of a teammate's release is still fair reuse.
    summary = lab_summary(store, s, lab_of(store, ["alice", "mallory"]))
    assert summary["best_submission_id"] == first["id"]
    assert summary["researchers"]["mallory"]["best_method"] == "mallory-label"


def test_audit_cells_hold_researcher_text_in_a_code_span():
    for text in ("budget ![](http://x.io)", "[x](javascript:alert(1))", "<img src=x>", "a|b"):
        cell = md_cell(text)
        assert cell.startswith("`") and cell.endswith("`") and cell.count("`") == 2, cell
        assert "|" not in cell.replace("\\|", "")
    assert md_cell(None) == "–" and md_cell(3) == "3" and md_cell(0.5) == "0.500"


def test_a_snapshot_label_is_one_line_of_text(lab):
    _, _, c = lab
    h = {**register(c, "mallory"), "Content-Type": "application/gzip"}
    archive = targz_files({"run.py": b"print(1)\n"})
    for label in ("evil\u202egnp.py", "a\x1b]52;c;eA==\x07", "two\nlines"):
        r = c.post("/v1/snapshots", headers=h, params={"label": label}, content=archive)
        assert r.status_code == 422 and r.json()["detail"].startswith("label:"), r.text
    r = c.post("/v1/snapshots", headers=h, params={"label": "plain ünïcode"}, content=archive)
    assert r.status_code == 201, r.text


def test_the_public_sees_nothing_of_hidden_findings_nor_final_half_references(lab):
    _, _, c = lab
    h = register(c, "zelda")
    r = c.post("/v1/forum/findings", headers=h, json={
        "kind": "insight", "title": "hide me", "tags": ["secret-tag"]})
    assert r.status_code == 201, r.text
    r = c.post(f"/v1/forum/findings/{r.json()['id']}/hide",
               headers={"Authorization": f"Bearer {ADMIN}"}, json={"reason": "spam"})
    assert r.status_code == 200, r.text
    page = c.get("/forum").text
    assert "secret-tag" not in page and "zelda" not in page

    task = c.get("/tasks/tweets")
    assert task.status_code == 200
    # the references table has a feedback row and, for the public, no test row
    assert "<td>feedback</td><td>" in task.text and "<td>test</td><td>" not in task.text
