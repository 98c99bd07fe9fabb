"""Use the weak teacher's own confidence: drop or down-weight the labels it is unsure of.

Confidence of a row = max_k weak_k (the teacher's probability of its own label). Filtering weak
labels by confidence is the classic self-training heuristic (e.g. Lee 2013, pseudo-labels;
Burns et al. 2023 discuss confidence as a proxy for label quality).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet


class FilterParams(Params):
    threshold: float = Field(0.7, ge=0.0, le=1.0,
                             description="drop rows whose weak confidence max_k p_k is below this")
    min_keep: float = Field(0.1, ge=0.0, le=1.0,
                            description="never keep fewer than this share of rows (most "
                                        "confident first)")
    balance: bool = Field(True, description="threshold each weak class separately by its "
                                            "confidence rank, so the filter keeps the class mix")


@register
class ConfidenceFilter(Step):
    """Drop weak labels whose confidence is below a threshold (weight 0 = not trained on)."""

    name = "confidence_filter"
    stage = "select"
    Params = FilterParams

    def transform(self, ctx: Context, ts: TrainSet) -> TrainSet:
        keep = confident_rows(ts.weak, self.p.threshold, self.p.min_keep, self.p.balance)
        return ts.with_(weights=np.where(keep, ts.weights, 0.0).astype(np.float32))


def confident_rows(weak: np.ndarray, threshold: float, min_keep: float,
                   balance: bool) -> np.ndarray:
    """Boolean mask of rows to keep.

    With ``balance`` the class mix of the kept rows follows the weak labels' mix: each class
    keeps the same share of its rows, namely the share the plain threshold keeps overall.
    """
    conf, label = weak.max(1), weak.argmax(1)
    share = max(float((conf >= threshold).mean()), min_keep)
    if share >= 1.0:
        return np.ones(len(weak), bool)
    keep = np.zeros(len(weak), bool)
    groups = [np.flatnonzero(label == k) for k in range(weak.shape[1])] if balance \
        else [np.arange(len(weak))]
    for idx in groups:
        n_keep = int(np.ceil(share * len(idx)))
        # Stable sort: ties broken by row order, so the mask is deterministic.
        keep[idx[np.argsort(-conf[idx], kind="stable")[:n_keep]]] = True
    return keep


class WeightParams(Params):
    power: float = Field(1.0, ge=0.0, le=8.0,
                         description="weight = margin^power; 0 = unweighted")
    floor: float = Field(0.05, ge=0.0, le=1.0,
                         description="smallest weight, so no row is dropped entirely")


@register
class ConfidenceWeight(Step):
    """Reweight rows by weak confidence: w = max(floor, margin^power), margin = (c - 1/K)/(1 - 1/K).

    c = max_k weak_k; margin is 0 for a coin flip and 1 for a certain teacher. The loss is
    the weight-normalised mean, so only relative weights matter.
    """

    name = "confidence_weight"
    stage = "select"
    Params = WeightParams

    def transform(self, ctx: Context, ts: TrainSet) -> TrainSet:
        k = ts.weak.shape[1]
        margin = np.clip((ts.weak.max(1) - 1.0 / k) / (1.0 - 1.0 / k), 0.0, 1.0)
        w = np.maximum(self.p.floor, margin ** self.p.power)
        return ts.with_(weights=(ts.weights * w).astype(np.float32))
