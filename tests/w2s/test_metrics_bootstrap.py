"""The paired bootstrap behind every reported PGR interval: test-row noise and seed noise."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.w2s.metrics import bootstrap_gap, bootstrap_pgr, bootstrap_pgr_diff


def _preds(rng, truth, acc, seeds):
    """Per-seed predictions that are right on each row with probability ``acc``."""
    return np.stack([np.where(rng.random(truth.size) < acc, truth, 1 - truth)
                     for _ in range(seeds)])


def _setup(n=600, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    return rng, truth, _preds(rng, truth, 0.7, 5), _preds(rng, truth, 0.9, 5)


def test_point_estimate_is_pgr_of_seed_mean_accuracies():
    rng, truth, weak, ceil = _setup()
    t = _preds(rng, truth, 0.8, 3)
    r = bootstrap_pgr(truth, weak, ceil, t, n_boot=200)
    w, c, tr = ((p == truth).mean() for p in (weak, ceil, t))
    assert r.mean == pytest.approx((tr - w) / (c - w))
    assert r.lo < r.mean < r.hi and r.n_rows == truth.size and r.seeds == 3
    d = r.as_dict()
    assert set(d) == {"mean", "se", "ci95", "n_rows", "seeds"} and d["ci95"] == [r.lo, r.hi]


def test_interval_includes_test_row_noise_not_only_seeds():
    # One seed each: a seed-only SE would be 0; the row bootstrap is not.
    rng, truth, weak, ceil = _setup()
    r = bootstrap_pgr(truth, weak[:1], ceil[:1], _preds(rng, truth, 0.8, 1), n_boot=500)
    assert r.se > 0.02 and r.hi - r.lo > 0.1


def test_half_the_rows_widens_the_interval_by_about_root_two():
    rng, truth, weak, ceil = _setup(n=2000)
    t = _preds(rng, truth, 0.8, 5)
    full = bootstrap_pgr(truth, weak, ceil, t, n_boot=1000)
    half = bootstrap_pgr(truth, weak, ceil, t, rows_mask=np.arange(truth.size) < 1000,
                         n_boot=1000)
    assert half.n_rows == 1000
    assert 1.1 < half.se / full.se < 1.8


def test_same_seed_same_interval():
    rng, truth, weak, ceil = _setup()
    t = _preds(rng, truth, 0.8, 3)
    assert bootstrap_pgr(truth, weak, ceil, t, seed=3) == bootstrap_pgr(truth, weak, ceil, t,
                                                                         seed=3)


def test_student_equal_to_ceiling_is_exactly_one_in_every_replicate():
    _, truth, weak, ceil = _setup()
    r = bootstrap_pgr(truth, weak[:1], ceil[:1], ceil[:1], n_boot=300)
    assert r.mean == r.lo == r.hi == 1.0 and r.se == 0.0


def test_ninety_five_percent_interval_covers_the_true_pgr():
    # Population PGR is (0.8 - 0.7) / (0.9 - 0.7) = 0.5; fresh test rows each trial.
    hits = 0
    trials = 60
    for k in range(trials):
        rng, truth, weak, ceil = _setup(n=500, seed=100 + k)
        r = bootstrap_pgr(truth, weak, ceil, _preds(rng, truth, 0.8, 5), n_boot=400, seed=k)
        hits += r.lo <= 0.5 <= r.hi
    assert hits / trials >= 0.85


def test_difference_is_paired_on_rows():
    rng, truth, weak, ceil = _setup()
    a = _preds(rng, truth, 0.85, 1)
    # b is a with 30 right answers turned wrong: a is better on every resample of the rows.
    b = a.copy()
    right = np.flatnonzero(a[0] == truth)[:30]
    b[0, right] = 1 - truth[right]
    d = bootstrap_pgr_diff(truth, weak[:1], ceil[:1], a, b, n_boot=500)
    assert d.lo > 0 and d.above_zero
    same = bootstrap_pgr_diff(truth, weak[:1], ceil[:1], a, a, n_boot=200)
    assert same.mean == same.lo == same.hi == 0.0 and not same.above_zero


def test_difference_is_paired_on_seeds_when_both_sides_have_the_same_seeds():
    rng, truth, weak, ceil = _setup()
    a = _preds(rng, truth, 0.8, 3)  # three seeds that differ from each other
    same = bootstrap_pgr_diff(truth, weak, ceil, a, a.copy(), n_boot=300)
    assert same.mean == same.lo == same.hi == 0.0  # not the spread of two seed draws
    # b = a with 20 right answers turned wrong on every seed: a wins on every paired resample,
    # though the seeds alone spread each side's PGR far more than the difference.
    b = a.copy()
    for s in range(3):
        right = np.flatnonzero(a[s] == truth)[:20]
        b[s, right] = 1 - truth[right]
    d = bootstrap_pgr_diff(truth, weak, ceil, a, b, n_boot=300)
    assert d.lo > 0
    # Unequal seed counts cannot be paired: resampled independently, still a valid interval.
    u = bootstrap_pgr_diff(truth, weak, ceil, a, b[:2], n_boot=300)
    assert u.lo < u.mean < u.hi and u.seeds == 2


def test_groups_resample_whole_groups():
    # Every row duplicated: a row bootstrap thinks it has twice the data it has.
    rng, truth, weak, ceil = _setup(n=400)
    dup = lambda p: np.repeat(p, 2, axis=-1)  # noqa: E731
    t = _preds(rng, truth, 0.8, 1)
    rows = bootstrap_pgr(dup(truth), dup(weak[:1]), dup(ceil[:1]), dup(t), n_boot=800)
    grouped = bootstrap_pgr(dup(truth), dup(weak[:1]), dup(ceil[:1]), dup(t), n_boot=800,
                            groups=np.repeat(np.arange(400), 2))
    assert grouped.se > 1.2 * rows.se


def test_gap_interval():
    _, truth, weak, ceil = _setup()
    g = bootstrap_gap(truth, weak, ceil, n_boot=300)
    assert 0.1 < g.mean < 0.3 and g.above_zero
    assert not bootstrap_gap(truth, weak, weak, n_boot=300).above_zero


def test_bad_shapes_say_what_was_expected():
    _, truth, weak, ceil = _setup()
    with pytest.raises(ValueError, match="rows per seed"):
        bootstrap_pgr(truth, weak, ceil, weak[:, :10])
    with pytest.raises(ValueError, match="rows_mask"):
        bootstrap_pgr(truth, weak, ceil, weak, rows_mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_pgr(truth, weak[:1], weak[:1], ceil[:1], n_boot=10)


def test_a_vote_is_the_majority_of_distinct_seeds_and_its_point_their_mean():
    import itertools

    from aarlab.w2s.metrics import majority_vote

    p = np.array([[0, 1, 1, -1], [1, 1, 0, -1], [0, 0, 0, -1]])
    assert (majority_vote(p, 2) == [0, 1, 0, -1]).all()  # a row no seed predicted stays so
    assert (majority_vote(np.array([[0, 1], [1, 0]]), 2) == [0, 0]).all()  # a tie: lower class
    rng, truth, weak, ceil = _setup(n=800)
    five = np.stack([_preds(rng, truth, a, 1)[0] for a in (0.70, 0.75, 0.80, 0.85, 0.90)])
    r = bootstrap_pgr(truth, weak, ceil, five, n_boot=200, vote_of=3)
    # the point: the mean over the 10 votes of 3 distinct seeds (a repeated seed would be a
    # vote of fewer: (a, a, b) is seed a alone)
    accs = [(majority_vote(five[list(c)], 2) == truth).mean()
            for c in itertools.combinations(range(5), 3)]
    w, c = (weak == truth).mean(), (ceil == truth).mean()
    assert r.mean == pytest.approx((np.mean(accs) - w) / (c - w))
    assert r.seeds == 5 and r.lo < r.mean < r.hi
    with pytest.raises(ValueError, match="needs at least 3 seeds"):
        bootstrap_pgr(truth, weak, ceil, five[:2], vote_of=3)


def _vote_scorer(truth, weak, ceil):
    """A Scorer over synthetic references (the code path the lab's report uses)."""
    from aarlab.tasks.scorer import Scorer

    s = Scorer.__new__(Scorer)
    s.truth, s.masks = truth, {"final": np.ones(truth.size, bool)}
    s.__dict__["_refs"] = (weak, ceil, None)
    return s


def test_a_votes_interval_carries_seed_noise_that_one_vote_vector_hides():
    from aarlab.w2s.metrics import majority_vote

    rng, truth, weak, ceil = _setup(n=2000)
    scorer = _vote_scorer(truth, weak, ceil)
    # Five students whose mistakes differ a lot from seed to seed (a noisy method).
    noisy = np.stack([_preds(rng, truth, a, 1)[0] for a in (0.70, 0.74, 0.78, 0.82, 0.86)])
    one_vote = scorer.pgr_interval([majority_vote(noisy[:3], 2)], "final", n_boot=800)
    with_seeds = scorer.vote_interval(list(noisy), 3, "final", n_boot=800)
    assert with_seeds.seeds == 5 and with_seeds.se > 1.2 * one_vote.se
    # Identical seeds: nothing to add, the vote's interval is the one vector's.
    same = scorer.vote_interval([noisy[0]] * 5, 3, "final", n_boot=800)
    alone = scorer.pgr_interval([noisy[0]], "final", n_boot=800)
    assert same.mean == pytest.approx(alone.mean) and same.se == pytest.approx(alone.se, rel=0.2)


def test_a_paired_vote_difference_shares_each_draw_of_seeds():
    rng, truth, weak, ceil = _setup(n=1000)
    scorer = _vote_scorer(truth, weak, ceil)
    a = _preds(rng, truth, 0.8, 5)
    d = scorer.vote_diff(list(a), list(a), 3, "final", n_boot=300)
    assert d.mean == 0 and d.lo == 0 and d.hi == 0  # the same method: exactly no difference
    better = np.where(rng.random(a.shape) < 0.5, truth, a)  # each seed mended on half its errors
    d = scorer.vote_diff(list(better), list(a), 3, "final", n_boot=300)
    assert d.lo > 0 and d.seeds == 5
    with pytest.raises(ValueError, match="same seeds"):
        scorer.vote_diff(list(a), list(a[:4]), 3)
