"""The search researcher when the teacher is near chance (issue 18): it says so from the kit,
scores specs without agreement with that teacher, tries the label-free families first, and
spends submissions on ties the label-free ranking cannot separate, never on near-copies."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest

from aarlab.lab.directions import family_of, load_directions
from aarlab.researchers.search import spend
from aarlab.researchers.search import suite as st
from aarlab.researchers.search import teacher as tc
from aarlab.researchers.search.hypotheses import LABEL_FREE, Planner
from aarlab.researchers.search.policy import SearchPolicy, key
from aarlab.w2s import signals as sig
from aarlab.w2s.methods import describe
from aarlab.w2s.spec import parse_spec
from synthetic_w2s import flip, soft, two_clusters

# -- the rule ------------------------------------------------------------------------------------


def test_the_rule_fires_on_kappa_near_zero_or_flat_probabilities():
    assert tc.uninformative(0.02, 0.01, 0.5)  # κ under the 0.1 floor
    assert tc.uninformative(0.15, 0.09, 0.5)  # under 2 SE on a small kit
    assert tc.uninformative(0.5, 0.01, 0.02)  # the teacher itself is guessing
    assert not tc.uninformative(0.2, 0.03, 0.5)  # nyt-like: weak but informative
    assert not tc.uninformative(0.6, 0.01, 0.6)


def test_synthetic_kits_an_informative_teacher_and_a_chance_level_one():
    x, y = two_clusters(n=600, d=16, seed=0)
    good = tc.check("good", x, soft(flip(y, 0.2)), pairwise=False)
    coin = tc.check("coin", x, soft(np.random.default_rng(4).integers(0, 2, len(y))),
                    pairwise=False)
    assert not good.uninformative and good.kappa > good.bar
    assert coin.uninformative and coin.kappa < coin.bar
    assert "looks uninformative on coin" in coin.text() and "κ =" in coin.text()
    assert "carries the concept on good" in good.text()
    # A pairwise teacher with a position bias ("A" on 3 rows in 4, whatever the pair).
    xp = np.random.default_rng(5).normal(size=(600, 16)).astype(np.float32)
    biased = soft((np.random.default_rng(6).random(600) < 0.25).astype(int), conf=0.55)
    assert tc.check("lm", xp, biased, pairwise=True).uninformative


def test_without_a_teacher_the_score_drops_the_agreement_term():
    s = {"smoothness": 0.87, "heldout_agree": 0.45}
    assert tc.task_score(s, False) == sig.selection_score(s)
    assert tc.task_score(s, True) == pytest.approx(0.87 + 0.5)
    assert tc.task_score({"heldout_agree": 0.9}, True) == -math.inf


# -- the planner ---------------------------------------------------------------------------------


def _planner(note=None):
    described = describe()
    dirs = load_directions()
    policy = SearchPolicy(described, ["noisy_em", "forward"], random.Random(0))
    fam = {m["name"]: family_of(m["name"], dirs, described) for m in described}
    p = Planner(policy, "label-noise", ["noisy_em", "forward"], fam, random.Random(0))
    p.teacher_note = note
    return p


def test_an_uninformative_teacher_puts_the_label_free_families_first():
    p = _planner("the teacher looks uninformative on snli-lm")
    seen = []
    for _ in range(len(LABEL_FREE) + 2):
        h = p.next()
        parse_spec(h.spec)
        seen.append((h.move, h.spec["steps"][0]["method"]))
        p.policy.record(h.spec, 1.0)
        if h.move == "label-free":
            assert h.why.startswith("the teacher looks uninformative") and "sign" in h.why
            assert h.family == "elicitation"
    assert seen[0] == ("baseline", "weak_soft")
    assert seen[1:1 + len(LABEL_FREE)] == [("label-free", m) for m, _ in LABEL_FREE]
    assert seen[-1] == ("family", "noisy_em")  # then the researcher's own family


def test_an_informative_teacher_changes_nothing():
    p = _planner(None)
    moves = []
    for _ in range(3):
        h = p.next()
        moves.append(h.move)
        p.policy.record(h.spec, 1.0)
    assert moves == ["baseline", "family", "family"]


# -- spending submissions on ties ----------------------------------------------------------------


def test_tie_band_is_two_se_of_a_score_difference():
    s = {"smoothness": 0.8, "heldout_agree": 0.9}
    band = spend.tie_band(s, 300, 400)
    assert band == pytest.approx(2 * math.sqrt(2 * (0.16 / 300 + 0.09 / 400)))
    assert spend.tie_band(s, 300, 400, teacher_free=True) == pytest.approx(
        2 * math.sqrt(2 * 0.16 / 300))
    assert spend.tie_band(s, 14000, 7000) < 0.02 < band  # big tasks separate finely


def test_ties_are_paced_and_never_near_copies():
    # A 10-minute lab: a quarter of half the hourly budget at once, then pro rata.
    assert spend.allowance(0, 600, per_hour=60) == 7
    assert spend.allowance(300, 600, per_hour=60) == 15
    assert spend.allowance(900, 600, per_hour=60) == 30
    assert spend.allowance(1800, 8 * 3600, per_hour=60) == 15  # a long lab: over its first hour
    a = np.zeros(300, dtype=int)
    b = a.copy()
    b[:40] = 1  # 13 % of rows
    c = b.copy()
    c[40:55] = 1  # 5 % from b
    assert spend.distinct(b, [a]) and not spend.distinct(c, [a, b])
    ok = spend.decide(1.37, 1.38, 0.05, b, [a], used_this_hour=2, allowed=7)
    assert ok.ok and "tie with the best" in ok.why and "3 of 7" in ok.why
    assert not spend.decide(1.30, 1.38, 0.05, b, [a], 0, 7).ok  # the ranking separates them
    assert "earlier submission" in spend.decide(1.38, 1.38, 0.05, c, [a, b], 0, 7).why
    assert "allowance" in spend.decide(1.38, 1.38, 0.05, b, [a], 7, 7).why


# -- wired into the researcher --------------------------------------------------------------------


def test_a_chance_level_teacher_turns_the_researcher_label_free(tiny_snli, tmp_path,
                                                                 monkeypatch):
    """The kit's teacher is declared at chance (what ``teacher.check`` measures on snli-lm):
    the rounds after the baseline are the label-free families, scored by smoothness, and what
    it submits is theirs, each departing from the others on many rows."""
    from test_search_research import Client, _researcher

    kit = tiny_snli[0]
    monkeypatch.setattr(st.Suite, "teacher_checks", lambda self: {
        kit.name: tc.TeacherCheck(kit.name, 0.01, 0.03, 0.1)})
    client = Client()
    r = _researcher([kit], client, tmp_path, experiments=5)
    r.run()
    rounds = [e for e in r.notebook.entries() if e.get("round")]
    assert [e["move"] for e in rounds] == ["baseline"] + ["label-free"] * 4
    for e in rounds:
        assert e["score"] == pytest.approx(e["signals"]["smoothness"] + 0.5)
    sent = [e for e in rounds if e["decision"] == "submitted"]
    assert sent and all(e["move"] == "label-free" for e in sent)
    assert all(e.get("tie") for e in sent[1:])  # after the first, only informative ties
    preds = [np.load(tmp_path / "submitted" / f"{e['submission_id']}.npy") for e in sent]
    for i, p in enumerate(preds):
        assert spend.distinct(p, preds[:i])
    md = (tmp_path / "notebook.md").read_text()
    assert "Teacher check: the teacher looks uninformative" in md
    # A restarted researcher remembers what it sent and its ties.
    again = _researcher([kit], Client(), tmp_path, experiments=5)
    assert len(again.submitted) == len(sent) and len(again.ties) == len(sent) - 1
    assert again.started <= rounds[0]["time"] < time.time()


def test_snli_like_teacher_is_left_alone(tiny_snli, tmp_path):
    """The tiny snli-pref kit's classical teacher is informative: no label-free rounds."""
    from test_search_research import Client, _researcher

    r = _researcher([tiny_snli[0]], Client(), tmp_path, experiments=2)
    check = r.teacher[tiny_snli[0].name]
    assert not check.uninformative and r.suite.teacher_free == set(), check.text()
    assert r.planner.teacher_note is None
    assert key(r.planner.next().spec) != key({"steps": [{"method": "strong_prior"}]})
