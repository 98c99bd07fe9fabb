"""Logical consistency the labels must obey, used at training and at prediction time.

* Pairwise rows: features are emb(first) - emb(second), so -x is the same pair with A/B
  swapped, and a consistent judge must flip: p(A | x) = p(B | -x). We train on both orientations
  (target reversed for -x) and predict with the symmetrised
  p_sym(x) = (p(x) + reverse(p(-x))) / 2, which flips exactly under a swap.
* Binary rows sharing a ``consistency_id`` propose answers to one question; candidates with
  different answers cannot all be true. Treating each distinct answer's p(true) as independent
  evidence and conditioning on "at most one answer is true" gives
  p'(a) = odds(a) / (1 + Σ_b odds(b)), odds(a) = p(a) / (1 - p(a)).
  Rows with the same answer share its (mean log-) odds.

Consistency constraints of this kind are the core of unsupervised elicitation (Burns et al.
2022, "Discovering Latent Knowledge", CCS; Wen et al. 2025, "Unsupervised Elicitation of
Language Models", ICM).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aarlab.w2s.heads import Head
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet


def at_most_one_true(p_true: np.ndarray, groups: np.ndarray, answers: list[str]) -> np.ndarray:
    """Renormalise P(true) within each consistency group under "at most one answer is true".

    ``groups`` is -1 for rows without a group (left unchanged).
    """
    p = np.clip(p_true.astype(np.float64), 1e-6, 1 - 1e-6)
    logodds = np.log(p) - np.log1p(-p)
    out = p_true.astype(np.float64).copy()
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, bounds):
        if len(rows) == 0 or groups[rows[0]] < 0:
            continue
        keys = [answers[i] for i in rows]
        distinct = sorted(set(keys))
        if len(distinct) < 2:
            continue
        pos = np.array([distinct.index(a) for a in keys])
        answer_lo = np.array([logodds[rows[pos == j]].mean() for j in range(len(distinct))])
        odds = np.exp(answer_lo - max(0.0, answer_lo.max()))  # scaled by e^-m for stability
        none = np.exp(-max(0.0, answer_lo.max()))
        out[rows] = (odds / (none + odds.sum()))[pos]
    return out


def symmetrize_pairs(p: np.ndarray, p_swapped: np.ndarray) -> np.ndarray:
    """(p(x) + reverse(p(-x))) / 2: swapping A/B maps the result to its reverse exactly."""
    return (p + p_swapped[:, ::-1]) / 2


class ConsistencyParams(Params):
    augment: bool = Field(True, description="train on both A/B orders (pairwise) / on "
                                            "group-renormalised targets (binary groups)")
    predict: bool = Field(True, description="enforce the constraint on test predictions")


@register
class Consistency(Step):
    """Enforce logical consistency: swapped A/B pairs flip; one true answer per question."""

    name = "consistency"
    stage = "post"
    cost = "1 head fit (2x rows for pairwise tasks)"
    Params = ConsistencyParams

    def transform(self, ctx: Context, ts: TrainSet) -> TrainSet:
        if not self.p.augment:
            return ts
        if ctx.format == "pairwise":
            return swap_augment(ts)
        if (ts.group >= 0).any():
            if len(ts.x) != len(ctx.x["train_unlabel"]):
                return ts  # rows no longer line up with the kit's groups (augmented elsewhere)
            p1 = at_most_one_true(ts.targets[:, 1], ts.group, ctx.answers("train_unlabel"))
            return ts.with_(targets=np.stack([1 - p1, p1], 1).astype(np.float32))
        return ts

    def post(self, ctx: Context, head: Head, split: str, probs: np.ndarray) -> np.ndarray:
        if not self.p.predict:
            return probs
        if ctx.format == "pairwise":
            return symmetrize_pairs(probs, head.predict_proba(-ctx.x[split]))
        groups = ctx.groups(split)
        if (groups >= 0).any():
            p1 = at_most_one_true(probs[:, 1], groups, ctx.answers(split))
            return np.stack([1 - p1, p1], 1)
        return probs


def swap_augment(ts: TrainSet) -> TrainSet:
    """Append every pair swapped: features negated, targets and weak labels reversed."""
    return TrainSet(
        x=np.concatenate([ts.x, -ts.x]),
        targets=np.concatenate([ts.targets, ts.targets[:, ::-1]]),
        weights=np.concatenate([ts.weights, ts.weights]),
        weak=np.concatenate([ts.weak, ts.weak[:, ::-1]]),
        group=np.concatenate([ts.group, ts.group]),
        info=ts.info,
    )
