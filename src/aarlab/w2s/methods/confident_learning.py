"""Confident learning (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating
Uncertainty in Dataset Labels"): find the rows whose given label is likely wrong.

With out-of-sample probabilities p̂(j | x_i) (a probe that never saw row i) and given labels ỹ_i:

    t_j   = mean of p̂(j | x_i) over rows with ỹ_i = j          (per-class threshold)
    ŷ*_i  = argmax_{j : p̂(j | x_i) ≥ t_j} p̂(j | x_i)            (undefined if no j passes)
    C[ỹ, ŷ*] counts rows: the confident joint

Rows off C's diagonal (ŷ*_i defined and ≠ ỹ_i) are label issues, pruned ("C_confusion"/
"confident joint" rule of the paper) or, with ``action=relabel``, given ŷ*. The per-class
thresholds adapt to each class's own confidence level, so a class the probe is generally less
sure of is not pruned wholesale (what a single global threshold, ``probe_filter``, does). The
probe is a leave-one-out kNN vote (k chosen per task, ``_adapt``) or k-fold logistic regression.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from aarlab.w2s.methods import register
from aarlab.w2s.methods._adapt import adaptive_k
from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet, one_hot_argmax
from aarlab.w2s.methods.probe import logistic_oof


class ConfidentParams(Params):
    probe: Literal["knn", "logistic"] = Field("knn", description="out-of-sample probe p̂(j | x)")
    action: Literal["drop", "relabel"] = Field("drop",
                                               description="prune label issues or relabel them")


def label_issues(probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(issue mask, ŷ*) from out-of-sample ``probs`` (N, K) and ``given`` labels (N,)."""
    k = probs.shape[1]
    thresholds = np.array([probs[given == j, j].mean() if (given == j).any() else 1.0
                           for j in range(k)])
    passing = probs >= thresholds[None, :]
    masked = np.where(passing, probs, -np.inf)
    confident = passing.any(1)
    y_star = masked.argmax(1)
    return confident & (y_star != given), y_star


def oof_probs(ctx: Context, ts: TrainSet, probe: str) -> np.ndarray:
    active = ts.weights > 0
    given = ts.targets.argmax(1)
    if probe == "logistic":
        return logistic_oof(ts.x, given, active, 5, 0.1, ctx.seed)
    signed = ctx.format == "pairwise"
    hard = one_hot_argmax(ts.targets)
    k = adaptive_k(ts.x, hard, signed, cache=ctx.shared)
    idx, sim = knn_graph(ts.x, k, signed, cache=ctx.shared)
    return vote(idx, sim, hard, weights=active.astype(np.float32))


@register
class ConfidentLearning(Step):
    """Confident learning: prune/relabel rows off the confident joint's diagonal (class cuts)."""

    name = "confident_learning"
    stage = "select"
    cost = "1 head fit + a kNN graph (cached) or 5 logistic fits"
    Params = ConfidentParams

    def transform(self, ctx: Context, ts: TrainSet) -> TrainSet:
        given = ts.targets.argmax(1)
        issues, y_star = label_issues(oof_probs(ctx, ts, self.p.probe), given)
        issues &= ts.weights > 0
        info = {**ts.info, "label_issues": float(issues.mean())}
        if self.p.action == "drop":
            return ts.with_(weights=np.where(issues, 0.0, ts.weights).astype(np.float32),
                            info=info)
        new = np.eye(ts.targets.shape[1], dtype=np.float32)[y_star]
        return ts.with_(targets=np.where(issues[:, None], new, ts.targets).astype(np.float32),
                        info=info)
