"""The ceiling is the best of a tuned family, chosen by CV inside train_unlabel, never on test."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.w2s import ceiling
from aarlab.w2s.heads import HeadConfig


def _gold(kit, key, split):
    return kit.features(split), key.labels(split, kit.ids(split))


def test_family_is_fixed_and_logistic_regressions_come_first():
    names = [m.name for m in ceiling.family()]
    assert names[0] == "logreg(C=0.003)" and names[-1].startswith("mlp(")
    assert len(names) == len(ceiling.LOGREG_C) + len(ceiling.MLP_WEIGHT_DECAY)
    assert [m.kind for m in ceiling.family(("logreg",))] == ["logreg"] * len(ceiling.LOGREG_C)
    with pytest.raises(ValueError, match="ceiling kinds"):
        ceiling.family(("svm",))


def test_ceiling_is_at_least_the_best_cv_logistic_regression(tiny_tweets):
    """On a tiny real task, with the full family (logistic regressions and MLP heads)."""
    kit, key = tiny_tweets
    x, y = _gold(kit, key, "train_unlabel")
    x_test, y_test = _gold(kit, key, "test")
    choice = ceiling.choose(x, y, 2, head=HeadConfig(), symmetric=False, seed=0)
    lr = {m.name: choice.cv[m.name]["acc"] for m in ceiling.family(("logreg",))}
    assert choice.cv[choice.member.name]["acc"] >= max(lr.values())
    assert choice.as_dict()["member"] == choice.member.name and choice.folds == ceiling.FOLDS
    # Refit per seed on all of train_unlabel; a deterministic logistic regression gives one
    # answer per seed, an MLP may differ.
    preds = ceiling.ceiling_preds(choice, x, y, x_test, 2, [0, 1], head=HeadConfig(),
                                  symmetric=False)
    assert preds.shape == (2, len(y_test))
    # Test accuracy: at least the CV-chosen logistic regression's, up to the noise of 160 rows.
    best_lr = next(m for m in ceiling.family(("logreg",)) if m.name == max(lr, key=lr.get))
    lr_acc = (best_lr.fit(x, y, 2, 0, HeadConfig(), False)(x_test) == y_test).mean()
    assert (preds == y_test).mean() >= lr_acc - 0.05


def test_cv_never_sees_test_rows(tiny_tweets, monkeypatch):
    kit, key = tiny_tweets
    x, y = _gold(kit, key, "train_unlabel")
    seen = []
    real_fit = ceiling.Member.fit

    def spy(self, xs, ys, *a, **kw):
        seen.append(len(xs))
        return real_fit(self, xs, ys, *a, **kw)

    monkeypatch.setattr(ceiling.Member, "fit", spy)
    ceiling.choose(x, y, 2, head=HeadConfig(), symmetric=False,
                   members=ceiling.family(("logreg",)))
    assert seen and max(seen) < len(x)  # fold training sets only: a part of train_unlabel


def test_pairwise_members_are_swap_symmetric(tiny_snli):
    kit, key = tiny_snli
    x, y = _gold(kit, key, "train_unlabel")
    for m in (ceiling.Member("logreg", 0.1), ceiling.Member("mlp", 0.1)):
        predict = m.fit(x, y, 2, 0, HeadConfig(), symmetric=True)
        x_test = kit.features("test")
        agree = (predict(-x_test) == 1 - predict(x_test)).mean()
        assert agree > (0.999 if m.kind == "logreg" else 0.9), m.name


def test_consistency_groups_stay_in_one_fold(monkeypatch):
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 3)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    seen_groups = []
    real_fit = ceiling.Member.fit

    def spy(self, xs, ys, *a, **kw):
        seen_groups.append({tuple(r) for r in np.round(xs, 6)})
        return real_fit(self, xs, ys, *a, **kw)

    monkeypatch.setattr(ceiling.Member, "fit", spy)
    c = ceiling.choose(x, y, 2, head=HeadConfig(), symmetric=False, groups=groups,
                       members=[ceiling.Member("logreg", 1.0)])
    assert c.folds == ceiling.FOLDS
    rows_of = {g: {tuple(r) for r in np.round(x[groups == g], 6)} for g in range(40)}
    for train_rows in seen_groups:  # each group is wholly in or wholly out of a fold's training
        for g, rows in rows_of.items():
            assert rows <= train_rows or rows.isdisjoint(train_rows), g
