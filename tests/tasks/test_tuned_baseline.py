"""Like-for-like baselines: chosen on the feedback half, reported on the final half; the tuned
baseline spends a researcher's submission budget on the Ladder; the cache follows the task."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.lab import baselines, tuned
from aarlab.lab.baselines import majority_vote, pick_on_feedback, score_preds
from aarlab.scoring.ladder import Ladder
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.methods import METHODS
from aarlab.w2s.spec import parse_spec

FAST = {"head": {"epochs": 3, "min_steps": 10}}


def _half_wrong(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Right everywhere but on every other row of ``mask``."""
    pred = truth.copy()
    rows = np.flatnonzero(mask)[::2]
    pred[rows] = 1 - pred[rows]
    return pred


def test_best_default_is_chosen_on_feedback_and_reported_on_final(tiny_snli):
    kit, key = tiny_snli
    scorer = Scorer(key, kit.ids("test"))
    fb, fin = scorer.masks["feedback"], scorer.masks["final"]
    good_on_feedback = _half_wrong(scorer.truth, fin)  # perfect on feedback, poor on final
    good_on_final = _half_wrong(scorer.truth, fb)
    rows = []
    for name, pred in (("A", good_on_feedback), ("B", good_on_final)):
        preds = np.stack([pred] * 3)
        rows.append({"method": name, **score_preds(scorer, preds, 2, [0, 1, 2])})
    a, b = rows
    assert a["vote"]["pgr_feedback"]["mean"] > b["vote"]["pgr_feedback"]["mean"]
    assert a["vote"]["pgr_final"]["mean"] < b["vote"]["pgr_final"]["mean"]
    chosen = pick_on_feedback(rows)
    assert chosen["method"] == "A"  # the whole-test or final pick would have been B
    for r in rows:
        for part in ("pgr_feedback", "pgr_final"):
            lo, hi = r[part]["ci95"]
            assert lo <= r[part]["mean"] <= hi


def test_majority_vote():
    preds = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [1, 0, 1, 0]])
    assert majority_vote(preds, 2).tolist() == [1, 1, 1, 0]


def _cand(i, signal, feedback, n=200, flips=0):
    vote = np.zeros(n, int)
    vote[:flips] = 1
    return tuned.Candidate(i, signal, vote, feedback)


def test_tuned_choice_spends_the_budget_in_signal_order_and_picks_by_release():
    # Distinct votes (far apart), signal order 3 > 0 > 2 > 1, feedback best on candidate 1.
    cands = [_cand(0, 0.9, 0.30, flips=40), _cand(1, 0.1, 0.80, flips=80),
             _cand(2, 0.5, 0.31, flips=120), _cand(3, 0.95, 0.20, flips=160)]
    ladder = Ladder(0.02)
    c = tuned.choose(cands, 3, tuned.ladder_release(ladder), probe_limit=10)
    assert c.submitted == [3, 0, 2]  # the best by signal, budget 3: candidate 1 never scored
    # 0.31 is within eta of 0.30: it is told 0.30 again but raised nothing; as the lab's
    # headline ranks its own pick, the submission that earned the release wins
    assert c.released == [0.2, 0.3, 0.3] and c.index == 0
    c = tuned.choose(cands, 2, tuned.ladder_release(ladder), probe_limit=10)
    assert c.submitted == [3, 0] and c.index == 0
    c = tuned.choose(cands, 10, tuned.ladder_release(ladder), probe_limit=10)
    assert c.index == 1 and len(c.submitted) == 4
    c = tuned.choose(cands, 10, tuned.ladder_release(ladder), probe_limit=10,
                     veto=lambda vote: int(vote.sum()) == 80)  # the final half vetoes 1
    assert c.index == 0
    c = tuned.choose(cands, 0, tuned.ladder_release(ladder), probe_limit=10)
    assert c.submitted == [] and c.index == 3  # nothing scored: the best guess by signal


def test_tuned_choice_skips_near_duplicates_as_the_server_would_flag_them():
    cands = [_cand(0, 0.9, 0.30, flips=40), _cand(1, 0.8, 0.90, flips=42)]
    c = tuned.choose(cands, 5, tuned.ladder_release(Ladder(0.02)), probe_limit=10)
    assert c.submitted == [0] and c.index == 0


def test_candidate_grid_covers_every_method_with_valid_specs():
    specs = tuned.candidate_specs()
    methods = {s.all_steps()[0][1].method for s in specs}
    assert methods == set(METHODS)
    assert len({s.label for s in specs}) == len(specs)
    assert len(specs) < 150  # one parameter at a time, not a product
    # the transductive flag is varied like any parameter: once, at each method's defaults
    transductive = {s.all_steps()[0][1].method for s in specs if s.transductive}
    assert transductive == set(METHODS)
    for s in specs:
        parse_spec(s.canonical())  # every candidate is a valid spec
    for name in METHODS:  # every default is there
        assert parse_spec({"method": name}).label in {s.label for s in specs}


def test_researcher_budget_follows_the_server_and_the_lab(settings):
    s = settings.model_copy(update={"submissions_per_hour": 7, "submissions_total": 20})
    assert tuned.researcher_submissions(s) == 7
    assert tuned.researcher_submissions(s, lab_budget_s=2.5 * 3600) == 20
    assert tuned.researcher_submissions(s, 600, max_submissions=3) == 3


def test_tuned_baseline_row_cache_and_invalidation(task_copy, settings, monkeypatch):
    kit, key = task_copy
    specs = [parse_spec({"method": "weak_soft", **FAST}),
             parse_spec({"method": "confidence_filter", "params": {"threshold": 0.8}, **FAST}),
             parse_spec({"method": "logconf", **FAST})]
    monkeypatch.setattr(baselines, "default_specs", lambda: specs[:1])
    row, vote = baselines.tuned_baseline(kit, key, settings, submissions=2, specs=specs)
    assert row["tuning"]["candidates"] == 3 and row["tuning"]["submitted"] <= 2
    assert row["tuning"]["signal"] == tuned.SIGNAL
    assert row["vote"]["seeds"] == kit.seeds[:3] and vote.shape == (len(kit.ids("test")),)
    lo, hi = row["vote"]["pgr_final"]["ci95"]
    assert lo <= row["vote"]["pgr_final"]["mean"] <= hi and hi - lo > 0
    assert (key.dir / "baselines.json").exists() and (key.dir / "baselines.npz").exists()

    calls = []
    real = baselines.run_spec
    monkeypatch.setattr(baselines, "run_spec", lambda *a, **k: calls.append(1) or real(*a, **k))
    again, vote2 = baselines.tuned_baseline(kit, key, settings, submissions=2, specs=specs)
    assert calls == [] and again == row and (vote2 == vote).all()  # from the cache

    ref = key.dir / "reference.json"  # a rebuilt task: the cache no longer matches
    ref.write_text(ref.read_text() + " ")
    baselines.tuned_baseline(kit, AnswerKey(key.dir, kit.format), settings, submissions=2,
                             specs=specs)
    assert calls  # recomputed


def test_a_grown_grid_runs_only_its_new_specs(task_copy, settings, monkeypatch):
    kit, key = task_copy
    specs = [parse_spec({"method": "weak_soft", **FAST}),
             parse_spec({"method": "logconf", **FAST})]
    monkeypatch.setattr(baselines, "default_specs", lambda: specs[:1])
    first, _ = baselines.candidates(kit, key, specs=specs, settings=settings)
    ran = []
    real = baselines.run_spec
    monkeypatch.setattr(baselines, "run_spec",
                        lambda k, sc, spec, *a, **kw: ran.append(spec.label) or
                        real(k, sc, spec, *a, **kw))
    grown = specs + [parse_spec({"method": "confidence_filter", "params": {"threshold": 0.8},
                                 **FAST})]
    monkeypatch.setattr(baselines, "default_specs", lambda: grown[:1] + grown[2:])
    recs, preds = baselines.candidates(kit, key, specs=grown, settings=settings)
    assert ran == [grown[2].label]  # one new default row; the candidate grid reuses it
    assert [r["method"] for r in recs] == [s.label for s in grown]
    assert recs[:2] == first and preds.shape[0] == 3


def test_server_release_is_the_paired_ladder_from_the_weak_floor(tiny_snli, settings):
    kit, key = tiny_snli
    scorer = Scorer(key, kit.ids("test"))
    floor = kit.weak_probs("test", kit.seeds[0]).argmax(1)
    release = tuned.server_release(settings, scorer, floor)

    def cand(i, pred):
        return tuned.Candidate(i, 0.0, pred, scorer.score(pred).pgr["feedback"])

    assert release(cand(0, floor)) == (None, False)  # no better than the teacher
    best = cand(1, scorer.truth.copy())
    shown, new = release(best)
    assert new and shown == pytest.approx(best.pgr_feedback, abs=0.2)  # on the Ladder's grid
    worse = scorer.truth.copy()
    worse[np.flatnonzero(scorer.masks["feedback"])[:3]] ^= 1
    assert release(cand(2, worse)) == (shown, False)  # below the last release: told it again


def test_worker_processes_give_the_rows_of_one_process_and_a_stop_keeps_what_finished(
        task_copy, settings, monkeypatch):
    """The first report on a task runs every baseline spec: in one worker process per core
    they must give what one process gives, and each finished spec is cached at once, so a
    stopped report reruns only what it had not finished."""
    kit, key = task_copy
    specs = [parse_spec({"method": "weak_soft", **FAST}),
             parse_spec({"method": "logconf", **FAST}),
             parse_spec({"method": "confidence_filter", "params": {"threshold": 0.8}, **FAST})]
    # a spec sent to a worker is rebuilt from its canonical form: the same cache key
    assert all(baselines.spec_key(parse_spec(s.canonical())) == baselines.spec_key(s)
               for s in specs)
    monkeypatch.setattr(baselines, "default_specs", lambda: specs[:2])

    def without_seconds(recs):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in recs]

    par_recs, par_preds = baselines.candidates(kit, key, specs=specs, settings=settings,
                                               workers=2)
    par_rows = baselines.default_rows(kit, key)
    for p in key.dir.glob("baselines*"):
        p.unlink()

    seen = []

    def stop_at_second(label):
        seen.append(label)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        baselines.default_rows(kit, key, progress=stop_at_second)
    kept = baselines.BaselineCache(kit, key).record["defaults"]
    assert [r["method"] for r in kept] == [specs[0].label]  # the finished one, cached

    ran = []
    real = baselines.run_spec
    monkeypatch.setattr(baselines, "run_spec",
                        lambda k, sc, spec, *a, **kw: ran.append(spec.label) or
                        real(k, sc, spec, *a, **kw))
    recs, preds = baselines.candidates(kit, key, specs=specs, settings=settings)
    assert ran == [specs[1].label, specs[2].label]  # only what the stop had not finished
    rows = baselines.default_rows(kit, key)
    assert without_seconds(rows) == without_seconds(par_rows)
    assert without_seconds(recs) == without_seconds(par_recs)
    assert (preds == par_preds).all()


def test_the_inductive_baseline_is_tuned_on_the_plain_specs_of_the_same_runs(
        task_copy, settings, monkeypatch):
    """bench/lab.py reports the baseline as it was before the grid varied ``transductive``
    beside the full one: from the same cached runs, without the transductive candidates."""
    kit, key = task_copy
    specs = [parse_spec({"method": "weak_soft", **FAST}),
             parse_spec({"method": "logconf", **FAST}),
             parse_spec({"steps": [{"method": "logconf"}], "transductive": True, **FAST})]
    monkeypatch.setattr(baselines, "default_specs", lambda: specs[:1])
    full, _ = baselines.tuned_baseline(kit, key, settings, submissions=3, specs=specs)
    assert full["tuning"]["candidates"] == 3
    calls = []
    monkeypatch.setattr(baselines, "run_spec", lambda *a, **k: calls.append(1))
    plain, vote = baselines.tuned_baseline(kit, key, settings, submissions=3, specs=specs,
                                           inductive=True)
    assert calls == []  # the same runs, from the cache
    assert plain["tuning"]["candidates"] == 2 and "transductive" not in plain["spec"]
    assert vote.shape == (len(kit.ids("test")),)
    # and the cache still holds every candidate of the grid
    assert len(baselines.candidates(kit, key, specs=specs, settings=settings)[0]) == 3
