"""Label-free selection signals: right on hand-made arrays, deterministic, and computable from a
kit alone (the answer key moved away and every read under it refused)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from aarlab.kits.kit import TaskKit
from aarlab.w2s import signals as sig
from aarlab.w2s.runner import run_experiment
from sealed_key import sealed_answer_key

FAST = {"epochs": 5}


def test_pure_signals_on_hand_made_arrays():
    weak = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    pred = np.array([0, 1, 1, 0])
    assert sig.agreement(pred, weak) == 0.5
    assert sig.misfit(pred, weak) == 0.5
    # The two most confident teacher rows are 0 (0.9) and 2 (0.8); the student agrees on both.
    assert sig.confident_rows(weak, 0.5).tolist() == [True, False, True, False]
    assert sig.confident_agreement(pred, weak, 0.5) == 1.0
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [1.0, 0.0]])
    expected = np.mean([0.9 * np.log(0.9) + 0.1 * np.log(0.1), np.log(0.5),
                        0.2 * np.log(0.2) + 0.8 * np.log(0.8),
                        0.45 * np.log(1.0) + 0.55 * np.log(1e-6)])
    assert sig.soft_loglik(probs, weak) == pytest.approx(expected)
    assert sig.swap_consistency(np.array([0, 1, 1, 0]), np.array([1, 0, 1, 1])) == 0.75
    # Teacher prior 0.5375/0.4625; predicted shares 0.5/0.5 -> total variation 0.0375.
    assert sig.balance(pred, weak, 2) == pytest.approx(1 - 0.0375)
    assert sig.balance(np.zeros(4, int), weak, 2) == pytest.approx(1 - 0.4625)


def test_stability_and_smoothness_on_hand_made_arrays():
    a = np.array([0, 1, 1, 0])
    assert sig.stability([a, a]) == 1.0 and sig.stability([a, 1 - a]) == 0.0
    assert sig.stability([a]) == 1.0
    # Two tight clusters; a prediction that follows them is smooth, one odd row out is not.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal([5, 0], 0.1, (6, 2)), rng.normal([0, 5], 0.1, (6, 2))])
    pred = np.array([0] * 6 + [1] * 6)
    assert sig.smoothness(pred, x, 2, pairwise=False, k=3) == 1.0
    odd = pred.copy()
    odd[0] = 1
    assert sig.smoothness(odd, x, 2, pairwise=False, k=3) == pytest.approx(11 / 12)
    # Pairs: -x is the swapped pair, so a mirrored neighbour votes for the other class.
    xs = np.concatenate([x[:6], -x[:6]])
    assert sig.smoothness(np.array([0] * 6 + [1] * 6), xs, 2, pairwise=True, k=3) == 1.0


def test_selection_score_sums_its_signals_and_refuses_missing_ones():
    full = {k: 0.5 for k in sig.SIGNALS}
    assert sig.selection_score(full) == pytest.approx(0.5 * len(sig.SELECTION))
    assert sig.selection_score({}) == -np.inf


def test_crossfit_folds_cover_once_and_keep_groups_whole():
    groups = np.array([0, 0, 1, 1, 1, -1, -1, 2, -1, 2])
    folds = sig.crossfit_folds(groups, folds=2, seed=3)
    rows = np.concatenate(folds)
    assert sorted(rows.tolist()) == list(range(len(groups)))
    for g in (0, 1, 2):
        members = set(np.flatnonzero(groups == g).tolist())
        assert any(members <= set(f.tolist()) for f in folds), g
    again = sig.crossfit_folds(groups, folds=2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    with pytest.raises(ValueError, match="folds must be at least 2"):
        sig.crossfit_folds(groups, folds=1)


def _check_ranges(s: dict) -> None:
    for name in ("heldout_agree", "heldout_confident_agree", "confident_agree", "misfit",
                 "balance", "crossfit_stability", "smoothness"):
        assert 0.0 <= s[name] <= 1.0, name
    assert s["heldout_loglik"] <= 0.0


def test_signals_on_a_pairwise_task_are_deterministic_for_a_seed(tiny_snli):
    kit, _ = tiny_snli
    a = run_experiment(kit, {"method": "weak_soft", "head": FAST}, seeds=[1], signals=True)
    b = run_experiment(kit, {"method": "weak_soft", "head": FAST}, seeds=[1], signals=True)
    assert a.diagnostics[1]["signals"] == b.diagnostics[1]["signals"]
    s = a.signals
    assert set(s) == {*sig.SIGNALS, "selection"}
    assert s["selection"] == sig.selection_score(s)
    _check_ranges(s)
    assert 0.0 <= s["swap_consistency"] <= 1.0
    assert s["misfit"] == pytest.approx(1 - a.diagnostics[1]["agree_weak_test"])
    # Signals cost extra fits but never change the predictions themselves.
    plain = run_experiment(kit, {"method": "weak_soft", "head": FAST}, seeds=[1])
    np.testing.assert_array_equal(plain[1], a[1])
    assert "signals" not in plain.diagnostics[1] and plain.signals == {}


def test_a_symmetrised_student_is_fully_swap_consistent(tiny_snli):
    kit, _ = tiny_snli
    spec = {"steps": [{"method": "weak_soft"}, {"method": "consistency"}], "head": FAST}
    out = run_experiment(kit, spec, seeds=[0], signals=True)
    assert out.signals["swap_consistency"] == 1.0


def test_binary_task_has_no_swap_signal_and_means_cover_seeds(tiny_tweets):
    kit, _ = tiny_tweets
    out = run_experiment(kit, {"method": "confidence_filter", "head": FAST}, seeds=[0, 1],
                         signals=True)
    assert out.diagnostics[0]["signals"]["swap_consistency"] is None
    assert "swap_consistency" not in out.signals
    _check_ranges(out.signals)
    per_seed = [out.diagnostics[s]["signals"]["heldout_agree"] for s in (0, 1)]
    assert out.signals["heldout_agree"] == pytest.approx(np.mean(per_seed))


def test_signals_need_no_answer_key(tiny_snli, tmp_path, monkeypatch):
    """Attack: a copy of the kit, the answer key moved away and every read under it refused;
    every signal (cross-fitting included, for every method stage) must still be computed."""
    kit, key = tiny_snli
    copy = TaskKit(shutil.copytree(kit.dir, tmp_path / "kit"))
    with sealed_answer_key(key.dir, monkeypatch) as touched:
        spec = {"steps": [{"method": "noisy_em"}, {"method": "probe_filter"},
                          {"method": "logconf"}, {"method": "self_train", "params": {"rounds": 1}},
                          {"method": "consistency"}], "head": FAST}
        out = run_experiment(copy, spec, seeds=[0], signals=True)
    assert touched == []
    assert set(out.signals) == {*sig.SIGNALS, "selection"}


def test_balanced_agreement_scores_a_majority_collapse_at_one_over_k():
    weak = np.zeros((10, 2))
    weak[:8, 1] = 1.0  # 80 % of the teacher's labels are class 1
    weak[8:, 0] = 1.0
    collapsed = np.ones(10, dtype=int)
    assert sig.agreement(collapsed, weak) == pytest.approx(0.8)
    assert sig.balanced_agreement(collapsed, weak) == pytest.approx(0.5)
    assert sig.balanced_agreement(weak.argmax(1), weak) == pytest.approx(1.0)
