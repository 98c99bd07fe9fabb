"""The lab's headline cannot be won by climbing the released score (issue 15, break 3).

A real SQLite store and the tiny tweets task: an honest researcher whose gain holds on both
halves, and a climber whose submission is better on the feedback rows only (so the Ladder
released it higher). The pick is by released score with the final half as a veto.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from aarlab.lab import headline
from aarlab.lab.report import lab_summary, render_markdown
from aarlab.lab.tables import LabMember, LabRun
from aarlab.scoring.probes import pack
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher
from aarlab.tasks.scorer import Scorer


def vectors(kit, key):
    """(weak, honest, climber) class indices on the test rows."""
    ids = kit.ids("test")
    gold, weak = key.labels("test", ids), kit.weak_probs("test", 0).argmax(1)
    masks = {p: np.isin(ids, key.parts[p]) for p in ("feedback", "final")}
    honest, climber = weak.copy(), weak.copy()
    for part in ("feedback", "final"):  # honest: right on 8 more rows of each half
        fix = np.flatnonzero((weak != gold) & masks[part])[:8]
        honest[fix] = gold[fix]
    fix = np.flatnonzero((weak != gold) & masks["feedback"])[:16]  # feedback rows only ...
    climber[fix] = gold[fix]
    hurt = np.flatnonzero((weak == gold) & masks["final"])[:16]  # ... and worse on final
    climber[hurt] = 1 - gold[hurt]
    return weak, honest, climber


def test_parts_check_vetoes_a_gain_that_lives_on_the_feedback_half_only(tiny_tweets):
    kit, key = tiny_tweets
    parts = headline.task_parts(kit, key)
    weak, honest, climber = vectors(kit, key)
    assert not parts.check(weak).vetoed and parts.check(weak).se == 0
    assert not parts.check(honest).vetoed
    c = parts.check(climber)
    assert c.vetoed and c.feedback_gain > 0 > c.final_gain


def test_lab_summary_picks_the_honest_release_and_reports_the_vetoed_one(tiny_tweets, settings,
                                                                           tmp_path):
    kit, key = tiny_tweets
    scorer = Scorer(key, kit.ids("test"))
    store = Store(f"sqlite:///{tmp_path / 'lab.db'}")
    store.create_all()
    _, honest, climber = vectors(kit, key)
    with store.session() as s:
        lab = LabRun(task=kit.name, config={})
        s.add(lab)
        s.flush()
        ids = {}
        for name, pred, released in (("honest", honest, 0.4), ("climber", climber, 0.9)):
            r, _ = add_researcher(s, name)
            s.add(LabMember(lab_id=lab.id, researcher_id=r.id, direction="d", workspace="w"))
            sc = scorer.score(pred)
            row = Submission(researcher_id=r.id, task=kit.name, created_at=datetime.now(UTC),
                             n_rows=len(pred), predictions=pack(pred), method=name,
                             **{f"acc_{p}": sc.accuracy[p] for p in sc.accuracy},
                             **{f"pgr_{p}": sc.pgr[p] for p in sc.pgr},
                             released_pgr=released, new_best=True)
            s.add(row)
            s.flush()
            ids[name] = row.id
        lab_id = lab.id
    summary = lab_summary(store, settings, lab_id)
    assert summary["best_submission_id"] == ids["honest"]  # not the higher released one
    assert [v["submission_id"] for v in summary["released_above_final"]] == [ids["climber"]]
    assert summary["researchers"]["climber"]["best_method"] is None  # nothing left to pick
    md = render_markdown(summary | {"llm_costs": []}, "plot.png")
    assert "1 release(s) vetoed" in md and "How the lab's pick is made" in md


def test_a_submission_of_another_build_is_neither_checked_nor_vetoed_here(tiny_tweets):
    """As many rows, another build (a rebuilt task): its predictions belong to other rows, so
    this build's halves say nothing about it, for or against."""
    kit, key = tiny_tweets
    parts = headline.task_parts(kit, key)
    _, _, climber = vectors(kit, key)
    row = Submission(id=1, researcher_id=1, n_rows=len(climber), predictions=pack(climber),
                     is_probe=False, new_best=True, released_pgr=0.9, pgr_feedback=0.9,
                     build_fingerprint="0" * 64)
    chosen, vetoed = headline.choose([row], parts)
    assert chosen is row and vetoed == []
    same = Submission(**{c: getattr(row, c) for c in ("id", "researcher_id", "n_rows",
                                                      "predictions", "is_probe", "new_best",
                                                      "released_pgr", "pgr_feedback")},
                      build_fingerprint=parts.scorer.fingerprint)
    chosen, vetoed = headline.choose([same], parts)  # the same vector on this build: vetoed
    assert chosen is None and [v["submission_id"] for v in vetoed] == [1]


def test_equal_scores_go_to_the_earlier_submission_a_later_copy_takes_no_credit(tiny_tweets):
    """An exact copy of a release gets its score. Were ties won by the later submission, a
    sandbox could copy the lab's best predictions under a spec of its choosing and have that
    spec reported and replicated as the lab's pick: the first submission keeps the credit,
    within a researcher and across researchers, in whatever order they are listed."""
    kit, key = tiny_tweets
    parts = headline.task_parts(kit, key)
    _, honest, _ = vectors(kit, key)

    def sub(i, researcher, method):
        return Submission(id=i, researcher_id=researcher, n_rows=len(honest),
                          predictions=pack(honest), is_probe=False, new_best=True,
                          released_pgr=0.95, pgr_feedback=0.96, method=method,
                          build_fingerprint=parts.scorer.fingerprint)

    original, copy = sub(9, 1, "guarded"), sub(13, 2, "a spec of the copier's choosing")
    assert headline.choose([copy, original], parts)[0] is original
    assert max([copy, original], key=headline.rank) is original
    assert max([original, copy], key=headline.rank) is original
    higher = sub(15, 2, "later but higher")
    higher.released_pgr = 0.97
    assert max([original, higher], key=headline.rank) is higher  # the score still comes first
