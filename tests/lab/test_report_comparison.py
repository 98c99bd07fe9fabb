"""The run JSON's comparison with the tuned baseline: a win only when the paired interval of the
difference lies above 0, and the report says so in words."""

from __future__ import annotations

import numpy as np

from aarlab.lab.report import comparison, verdict
from aarlab.scoring.probes import pack
from aarlab.scoring.tables import Submission
from aarlab.tasks.scorer import Scorer

TUNED = {"method": "logconf", "vote": {"seeds": [0, 1, 2]},
         "tuning": {"signal": "heldout_agree", "candidates": 5, "submissions_budget": 60,
                    "submitted": 5}}


def _submission(pred: np.ndarray, scorer: Scorer, build: str | None = None) -> Submission:
    return Submission(id=7, n_rows=len(pred), predictions=pack(pred), seeds=[0, 1, 2],
                      build_fingerprint=build or scorer.fingerprint)


def _flip(pred: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = pred.copy()
    out[rows] = 1 - out[rows]
    return out


def test_a_clear_gain_is_a_win(tiny_snli):
    kit, key = tiny_snli
    scorer = Scorer(key, kit.ids("test"))
    weak = kit.weak_probs("test", 0).argmax(1)
    out = comparison(scorer, _submission(scorer.truth.copy(), scorer), TUNED, weak)
    d = out["diff_vs_tuned_baseline"]
    assert d["ci95"][0] > 0 and out["win"] is True
    assert d["n_rows"] == int(scorer.masks["final"].sum())
    lo, hi = out["best_final_pgr_ci95"]
    assert lo <= hi
    assert out["tuned_baseline_method"] == "logconf"
    text = verdict({**out, "win": out["win"]})
    assert "**a win**" in text and f"{d['mean']:+.3f}" in text
    # The first report's interval is row-only; it says where the seed noise is measured.
    assert "not the noise of which teacher seeds" in text
    assert "The headline with the seed noise of a vote" in text


def test_an_interval_straddling_zero_is_no_win(tiny_snli):
    kit, key = tiny_snli
    scorer = Scorer(key, kit.ids("test"))
    final = np.flatnonzero(scorer.masks["final"])
    base = _flip(scorer.truth, final[::4])  # 75 % right on final
    # the lab's pick: two more rows right and two others wrong — the same score, other rows
    pick = _flip(_flip(base, final[::4][:2]), final[1::4][:2])
    out = comparison(scorer, _submission(pick, scorer), TUNED, base)
    d = out["diff_vs_tuned_baseline"]
    assert d["ci95"][0] < 0 < d["ci95"][1]
    assert out["win"] is False
    text = verdict(out)
    assert "includes 0" in text and "**no win**" in text and "**a win**" not in text


def test_no_submission_no_comparison():
    assert "no scored submission" in verdict({"diff_vs_tuned_baseline": None})


def test_a_submission_of_another_build_is_not_compared(tiny_snli):
    """A task rebuilt with as many test rows: the old pick's predictions belong to other rows,
    so they are neither scored on this answer key nor called a win."""
    kit, key = tiny_snli
    scorer = Scorer(key, kit.ids("test"))
    weak = kit.weak_probs("test", 0).argmax(1)
    out = comparison(scorer, _submission(scorer.truth.copy(), scorer, build="0" * 64), TUNED,
                     weak)
    assert "diff_vs_tuned_baseline" not in out and "another build" in out["comparison_note"]
