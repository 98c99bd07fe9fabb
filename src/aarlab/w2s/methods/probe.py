"""Probe relabel / probe filter: a simple probe on the strong features cross-checks each label.

A probe (kNN vote or logistic regression) is fitted on the current labels and asked, for each
row, out of sample (leave-one-out for kNN, k-fold for logistic), what the label should be.
Where it disagrees with the label and is at least ``min_confidence`` sure:

    probe_relabel:  target_i ← probe_i   (one-hot, or the probe's soft vote)
    probe_filter:   weight_i ← 0

The idea: the strong model's representation clusters by the true concept, so labels that
disagree with their neighbourhood are more likely weak-teacher mistakes (label-noise cleaning
in the style of "confident learning", Northcutt et al. 2021; kNN relabelling as in the W2S
sandbox baselines).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from aarlab.w2s.methods import register
from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet, one_hot_argmax


class ProbeParams(Params):
    probe: Literal["knn", "logistic"] = Field("knn", description="which probe checks the labels")
    k: int = Field(25, ge=1, le=200, description="neighbours (knn probe)")
    folds: int = Field(5, ge=2, le=10, description="cross-fitting folds (logistic probe)")
    c: float = Field(0.1, gt=0.0, le=100.0, description="inverse L2 strength (logistic probe)")
    min_confidence: float = Field(0.6, ge=0.0, le=1.0,
                                  description="act only where the probe's own max_k p_k "
                                              "reaches this")


def probe_probs(ctx: Context, ts: TrainSet, p: ProbeParams) -> np.ndarray:
    """Out-of-sample probe probabilities (N, K) for every row of ``ts``."""
    active = ts.weights > 0
    if p.probe == "knn":
        idx, sim = knn_graph(ts.x, p.k, signed=ctx.format == "pairwise", cache=ctx.shared)
        return vote(idx, sim, one_hot_argmax(ts.targets), weights=active.astype(np.float32))
    return logistic_oof(ts.x, ts.targets.argmax(1), active, p.folds, p.c, ctx.seed)


def logistic_oof(x: np.ndarray, y: np.ndarray, active: np.ndarray, folds: int, c: float,
                 seed: int) -> np.ndarray:
    """K-fold logistic regression: each row is predicted by a model that never saw it."""
    n_classes = int(y.max()) + 1 if len(y) else 1
    out = np.full((len(x), max(n_classes, 2)), 1.0 / max(n_classes, 2), np.float32)
    xs = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    if len(np.unique(y[active])) < 2:
        return out  # one class only: the probe has no opinion
    counts = np.bincount(y)
    folds = min(folds, int(counts[counts > 0].min()))  # StratifiedKFold needs folds <= class size
    if folds < 2:
        return out
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(xs, y):
        train = train[active[train]]
        if len(np.unique(y[train])) < 2:
            continue
        clf = LogisticRegression(C=c, max_iter=200).fit(xs[train], y[train])
        out[np.ix_(test, clf.classes_)] = clf.predict_proba(xs[test])
    return out


def disagreements(ts: TrainSet, probs: np.ndarray, min_confidence: float) -> np.ndarray:
    return (probs.argmax(1) != ts.targets.argmax(1)) & (probs.max(1) >= min_confidence)


class RelabelParams(ProbeParams):
    soft: bool = Field(False, description="take the probe's soft vote instead of its argmax")


@register
class ProbeRelabel(Step):
    """Relabel rows whose label a kNN/logistic probe on strong features confidently rejects."""

    name = "probe_relabel"
    stage = "select"
    cost = "1 head fit + a kNN graph (cached across seeds) or k logistic fits"
    Params = RelabelParams

    def transform(self, ctx: Context, ts: TrainSet) -> TrainSet:
        probs = probe_probs(ctx, ts, self.p)
        flip = disagreements(ts, probs, self.p.min_confidence)
        new = probs if self.p.soft else one_hot_argmax(probs)
        targets = np.where(flip[:, None], new, ts.targets).astype(np.float32)
        return ts.with_(targets=targets)


@register
class ProbeFilter(Step):
    """Drop rows whose label a kNN/logistic probe on strong features confidently rejects."""

    name = "probe_filter"
    stage = "select"
    cost = "1 head fit + a kNN graph (cached across seeds) or k logistic fits"
    Params = ProbeParams

    def transform(self, ctx: Context, ts: TrainSet) -> TrainSet:
        drop = disagreements(ts, probe_probs(ctx, ts, self.p), self.p.min_confidence)
        return ts.with_(weights=np.where(drop, 0.0, ts.weights).astype(np.float32))
