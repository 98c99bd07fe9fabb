"""Select steps: confidence filter and weights, probe relabel and probe filter."""

from __future__ import annotations

import numpy as np

from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import one_hot_argmax
from aarlab.w2s.methods.confidence import ConfidenceFilter, ConfidenceWeight, confident_rows
from aarlab.w2s.methods.probe import ProbeFilter, ProbeRelabel, logistic_oof
from aarlab.w2s.methods.vanilla import WeakSoft
from aarlab.w2s.runner import make_context, run_experiment


def test_confidence_filter_drops_exactly_the_unconfident_rows(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0)
    ts = WeakSoft().labels(ctx)
    conf = ts.weak.max(1)
    p = ConfidenceFilter.Params(threshold=float(np.median(conf)), balance=False)
    out = ConfidenceFilter(p).transform(ctx, ts)
    kept = out.weights > 0
    assert kept.sum() < len(kept)
    assert np.all(conf[kept] >= p.threshold)
    assert np.all(conf[~kept] < p.threshold)
    np.testing.assert_array_equal(out.targets, ts.targets)  # filter, not relabel


def test_confidence_filter_balance_and_min_keep():
    rng = np.random.default_rng(1)
    p1 = np.concatenate([rng.uniform(0.5, 1.0, 300), rng.uniform(0.0, 0.45, 700)])
    weak = np.stack([1 - p1, p1], 1)
    keep = confident_rows(weak, 0.8, 0.0, balance=True)
    label = weak.argmax(1)
    # The kept rows have the same class mix as all rows.
    assert abs(label[keep].mean() - label.mean()) < 0.01
    plain = confident_rows(weak, 0.8, 0.0, balance=False)
    assert abs(keep.mean() - plain.mean()) < 0.01
    # Nothing passes 0.999, but min_keep keeps the most confident 20%.
    floor = confident_rows(weak, 0.999, 0.2, balance=False)
    assert floor.sum() == 200
    assert weak.max(1)[floor].min() >= weak.max(1)[~floor].max()


def test_confidence_weight_is_monotone_in_confidence(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0)
    ts = WeakSoft().labels(ctx)
    w = ConfidenceWeight(ConfidenceWeight.Params(power=2.0, floor=0.05)).transform(ctx, ts).weights
    order = np.argsort(ts.weak.max(1))
    assert np.all(np.diff(w[order]) >= -1e-7)
    assert w.min() >= 0.05 and w.max() <= 1.0
    assert w.std() > 0.05


def test_knn_vote_is_leave_one_out_and_swap_symmetric():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    idx, sim = knn_graph(x, 5, signed=True)
    assert not np.any(idx == np.arange(60)[:, None])
    t = rng.dirichlet([1, 1], size=60).astype(np.float32)
    # Swapping every pair (x → -x, targets reversed) reverses every vote.
    idx2, sim2 = knn_graph(-x, 5, signed=True)
    np.testing.assert_allclose(vote(idx2, sim2, t[:, ::-1].copy()), vote(idx, sim, t)[:, ::-1],
                               atol=1e-6)


def _planted(ctx, frac=0.2, seed=0):
    """Weak hard labels with a random ``frac`` of them flipped: the planted mistakes."""
    ts = WeakSoft().labels(ctx)
    labels = ts.weak.argmax(1)
    flip = np.random.default_rng(seed).random(len(labels)) < frac
    noisy = np.where(flip, 1 - labels, labels)
    return ts.with_(targets=np.eye(2, dtype=np.float32)[noisy]), flip


def test_probe_relabel_reverts_planted_label_flips(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0)
    for probe in ("knn", "logistic"):
        ts, flip = _planted(ctx)
        out = ProbeRelabel(ProbeRelabel.Params(probe=probe, min_confidence=0.6)).transform(ctx, ts)
        changed = out.targets.argmax(1) != ts.targets.argmax(1)
        # Planted mistakes are relabelled far more often than untouched labels.
        assert changed[flip].mean() > 2 * changed[~flip].mean(), probe
        assert np.all(out.weights == ts.weights)


def test_probe_filter_drops_planted_label_flips(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0)
    ts, flip = _planted(ctx)
    out = ProbeFilter(ProbeFilter.Params(min_confidence=0.6)).transform(ctx, ts)
    dropped = out.weights == 0
    assert dropped[flip].mean() > 2 * dropped[~flip].mean()
    np.testing.assert_array_equal(out.targets, ts.targets)


def test_logistic_probe_is_out_of_fold():
    # Labels are pure noise: an in-sample probe would fit them; out-of-fold it cannot.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 50))
    y = rng.integers(0, 2, 300)
    p = logistic_oof(x, y, np.ones(300, bool), folds=5, c=100.0, seed=0)
    assert abs((p.argmax(1) == y).mean() - 0.5) < 0.1
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)


def test_probe_and_confidence_run_end_to_end(tiny_tweets):
    kit, _ = tiny_tweets
    out = run_experiment(kit, {"steps": [{"method": "confidence_filter",
                                          "params": {"threshold": 0.8}},
                                         {"method": "probe_relabel"}],
                               "head": {"epochs": 5}}, seeds=[0])
    assert out.diagnostics[0]["kept"] < 1.0
    assert one_hot_argmax(np.eye(2)[out[0]]).shape == (len(out[0]), 2)
