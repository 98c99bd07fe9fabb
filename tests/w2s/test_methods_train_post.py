"""Self-training and consistency (swapped pairs flip; one true answer per question)."""

from __future__ import annotations

import numpy as np

import aarlab.w2s.methods.base as base
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.methods.consistency import (
    Consistency,
    at_most_one_true,
    swap_augment,
    symmetrize_pairs,
)
from aarlab.w2s.methods.self_train import SelfTrain, relabel
from aarlab.w2s.methods.vanilla import WeakSoft
from aarlab.w2s.runner import make_context, run_experiment

FAST = HeadConfig(kind="linear", epochs=5)


def test_self_train_refits_on_its_own_labels(tiny_tweets, monkeypatch):
    ctx = make_context(tiny_tweets[0], seed=0, head=FAST)
    fits = []
    real = base.train_head
    monkeypatch.setattr(base, "train_head", lambda x, t, **k: (fits.append(t), real(x, t, **k))[1])
    ts = WeakSoft().labels(ctx)
    head = SelfTrain(SelfTrain.Params(rounds=2, hard=True)).train(ctx, ts, base.xent_loss)
    assert len(fits) == 3
    np.testing.assert_allclose(fits[0], ts.targets)
    # Rounds 1 and 2 train on hard student labels, not the weak ones.
    assert set(np.unique(fits[1])) == {0.0, 1.0}
    assert (fits[1].argmax(1) != ts.targets.argmax(1)).any()
    # The last student agrees with its own training labels at least as well as the first did.
    final_agree = (head.predict_proba(ts.x).argmax(1) == fits[2].argmax(1)).mean()
    assert final_agree >= 0.9


def test_relabel_mix(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0, head=FAST)
    ts = WeakSoft().labels(ctx)
    head = ctx.fit(ts)
    np.testing.assert_allclose(relabel(head, ts, hard=False, mix=1.0), ts.targets)
    soft = relabel(head, ts, hard=False, mix=0.0)
    np.testing.assert_allclose(soft, head.predict_proba(ts.x), atol=1e-6)
    half = relabel(head, ts, hard=True, mix=0.5)
    np.testing.assert_allclose(half.sum(1), 1, atol=1e-6)


def test_swapped_pairs_flip(tiny_snli):
    kit, _ = tiny_snli
    ctx = make_context(kit, seed=0, head=FAST)
    step = Consistency()
    ts = step.transform(ctx, WeakSoft().labels(ctx))
    n = len(ctx.x["train_unlabel"])
    assert len(ts.x) == 2 * n
    np.testing.assert_array_equal(ts.x[n:], -ts.x[:n])
    np.testing.assert_array_equal(ts.targets[n:], ts.targets[:n, ::-1])
    head = ctx.fit(ts)
    x = ctx.x["test"]
    p = step.post(ctx, head, "test", head.predict_proba(x))
    ctx.x["test"] = -x  # every test pair swapped
    p_swapped = step.post(ctx, head, "test", head.predict_proba(-x))
    np.testing.assert_allclose(p_swapped, p[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(symmetrize_pairs(p, p_swapped), p, atol=1e-6)
    # Without the constraint a head trained on one orientation is not exactly symmetric.
    plain = ctx.fit(WeakSoft().labels(ctx))
    assert not np.allclose(plain.predict_proba(-x), plain.predict_proba(x)[:, ::-1], atol=1e-4)


def test_swap_augment_keeps_rows_aligned(tiny_snli):
    ctx = make_context(tiny_snli[0], seed=0)
    ts = WeakSoft().labels(ctx)
    ts = ts.with_(weights=np.linspace(0, 1, len(ts.x)).astype(np.float32))
    out = swap_augment(ts)
    np.testing.assert_array_equal(out.weights, np.concatenate([ts.weights, ts.weights]))
    np.testing.assert_array_equal(out.weak[len(ts.x):], ts.weak[:, ::-1])


def test_at_most_one_answer_is_true():
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.6, 0.2, 0.55])
    groups = np.array([0, 0, 0, 1, 1, -1, 2])
    answers = ["4", "5", "6", "x", "x", "y", "z"]
    out = at_most_one_true(p, groups, answers)
    assert out[0] + out[1] + out[2] <= 1 + 1e-9  # distinct answers: at most one true
    assert out[0] > out[1] > out[2]  # order kept
    np.testing.assert_allclose(out[[3, 4, 5, 6]], p[[3, 4, 5, 6]])  # same answer / no group
    # Formula: odds / (1 + Σ odds).
    odds = p[:3] / (1 - p[:3])
    np.testing.assert_allclose(out[:3], odds / (1 + odds.sum()))


def test_consistency_and_self_train_end_to_end(tiny_snli):
    kit, _ = tiny_snli
    out = run_experiment(kit, {"steps": [{"method": "consistency"},
                                         {"method": "self_train", "params": {"rounds": 1}}],
                               "head": {"kind": "linear", "epochs": 5}}, seeds=[0, 1])
    assert out.diagnostics[0]["train_rows"] == 2 * len(kit.ids("train_unlabel"))
