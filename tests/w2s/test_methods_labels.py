"""Label sources: vanilla weak labels, the strong prior and noisy-channel EM."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.w2s.methods.noisy_em import NoisyEM, em_posterior, estimate_channel
from aarlab.w2s.methods.strong_prior import StrongPrior, candidate_directions, pick_direction
from aarlab.w2s.methods.vanilla import WeakHard, WeakSoft, temper
from aarlab.w2s.runner import make_context


def test_weak_hard_is_one_hot_of_weak_argmax(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0)
    ts = WeakHard().labels(ctx)
    weak = ctx.weak["train_unlabel"]
    np.testing.assert_array_equal(ts.targets.argmax(1), weak.argmax(1))
    assert set(np.unique(ts.targets)) == {0.0, 1.0}
    assert np.all(ts.weights == 1)


def test_weak_soft_temperature_sharpens_and_keeps_the_label(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0)
    weak = ctx.weak["train_unlabel"]
    plain = WeakSoft().labels(ctx).targets
    np.testing.assert_allclose(plain, weak, atol=1e-6)
    sharp = WeakSoft(WeakSoft.Params(temperature=0.25)).labels(ctx).targets
    np.testing.assert_array_equal(sharp.argmax(1), weak.argmax(1))
    assert np.all(sharp.max(1) >= plain.max(1) - 1e-6)
    assert sharp.max(1).mean() > plain.max(1).mean() + 0.05
    np.testing.assert_allclose(temper(np.array([[1e-30, 1.0]]), 0.1), [[0.0, 1.0]], atol=1e-6)


@pytest.mark.parametrize("algorithm", ["pca", "kmeans"])
def test_strong_prior_is_swap_symmetric_on_pairs(tiny_snli, algorithm):
    kit, _ = tiny_snli
    x = kit.features("train_unlabel")
    centre, dirs = candidate_directions(x, pairwise=True, algorithm=algorithm, n=4, seed=0)
    np.testing.assert_array_equal(centre, 0)
    s = x @ dirs
    score, tau = pick_direction(s, (s[:, 0] > 0).astype(int), pairwise=True)
    assert tau == 0.0
    # Swapping every pair (x → -x, weak labels reversed) reverses every strong-prior label,
    # although the directions are found afresh on the swapped data.
    p = StrongPrior.Params(algorithm=algorithm)
    ctx = make_context(kit, seed=0)
    labels = StrongPrior(p).labels(ctx).targets
    ctx = make_context(kit, seed=0, x={k: -v for k, v in ctx.x.items()})
    ctx.weak["train_unlabel"] = ctx.weak["train_unlabel"][:, ::-1].copy()
    swapped = StrongPrior(p).labels(ctx).targets
    np.testing.assert_allclose(swapped, labels[:, ::-1], atol=1e-4)


def test_strong_prior_labels_come_from_features_and_agree_with_the_concept(tiny_snli):
    kit, key = tiny_snli
    ctx = make_context(kit, seed=0)
    ts = StrongPrior().labels(ctx)
    np.testing.assert_allclose(ts.targets.sum(1), 1, atol=1e-5)
    gold = key.labels("train_unlabel", kit.ids("train_unlabel"))
    # Better than chance on the true concept although no label was used beyond picking one of
    # eight directions and its sign.
    assert (ts.targets.argmax(1) == gold).mean() > 0.6
    # Changing the weak labels changes at most the chosen direction, never the score family.
    one_dir = StrongPrior(StrongPrior.Params(n_directions=1)).labels(ctx).targets
    ctx.weak["train_unlabel"] = ctx.weak["train_unlabel"][:, ::-1].copy()
    flipped = StrongPrior(StrongPrior.Params(n_directions=1)).labels(ctx).targets
    np.testing.assert_allclose(flipped, one_dir[:, ::-1], atol=1e-5)


def test_strong_prior_binary_matches_weak_class_balance(tiny_tweets):
    ctx = make_context(tiny_tweets[0], seed=0)
    for algorithm in ("pca", "kmeans"):
        ts = StrongPrior(StrongPrior.Params(algorithm=algorithm)).labels(ctx)
        share = ts.targets.argmax(1).mean()
        if algorithm == "pca":
            assert abs(share - ctx.weak["train_unlabel"].argmax(1).mean()) < 0.02
        assert 0.05 < share < 0.95


def test_em_posterior_is_a_distribution_and_follows_the_channel():
    rng = np.random.default_rng(0)
    prior = rng.dirichlet([1, 1], size=200)
    weak = rng.dirichlet([0.3, 0.3], size=200)
    for channel in (np.eye(2) * 0.8 + 0.1, np.full((2, 2), 0.5), np.array([[0.6, 0.4],
                                                                            [0.45, 0.55]])):
        q = em_posterior(prior, weak, channel)
        assert np.all(q >= 0)
        np.testing.assert_allclose(q.sum(1), 1, atol=1e-12)
    # Useless channel: the weak label carries no information, the posterior is the prior.
    np.testing.assert_allclose(em_posterior(prior, weak, np.full((2, 2), 0.5)), prior, atol=1e-12)
    # Noisier channel → closer to the prior; clean channel on hard labels → the weak label.
    clean = em_posterior(prior, weak, np.eye(2) * 0.98 + 0.01)
    noisy = em_posterior(prior, weak, np.eye(2) * 0.2 + 0.4)
    assert np.abs(noisy - prior).mean() < np.abs(clean - prior).mean()
    hard = np.eye(2)[weak.argmax(1)]
    np.testing.assert_allclose(em_posterior(prior, hard, np.eye(2)), hard, atol=1e-12)


def test_estimate_channel_counts_and_pseudo_counts():
    q = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    weak = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(estimate_channel(q, weak, 0.0), [[0.5, 0.5], [0.0, 1.0]])
    c = estimate_channel(q, weak, 2.0)
    np.testing.assert_allclose(c, [[3 / 4, 1 / 4], [0.0, 1.0]])


@pytest.mark.parametrize("prior", ["knn", "logistic"])
def test_noisy_em_on_a_real_slice(tiny_tweets, prior):
    kit, key = tiny_tweets
    ctx = make_context(kit, seed=0)
    ts = NoisyEM(NoisyEM.Params(prior=prior, iterations=5)).labels(ctx)
    np.testing.assert_allclose(ts.targets.sum(1), 1, atol=1e-5)
    channel = np.array(ts.info["channel"])
    np.testing.assert_allclose(channel.sum(1), 1, atol=1e-3)
    assert np.all(np.diag(channel) > 0.5)  # classes keep their names
    gold = key.labels("train_unlabel", kit.ids("train_unlabel"))
    weak_acc = (ctx.weak["train_unlabel"].argmax(1) == gold).mean()
    em_acc = (ts.targets.argmax(1) == gold).mean()
    assert em_acc >= weak_acc - 0.03  # the posterior is no worse than the weak labels
    assert (ts.targets.argmax(1) != ctx.weak["train_unlabel"].argmax(1)).any()
