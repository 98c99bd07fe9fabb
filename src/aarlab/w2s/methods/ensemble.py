"""Ensemble of students: ``members`` heads on the same training set, probabilities averaged.

    p(y | x) = (1 / M) · Σ_m p_m(y | x)

Members differ by initialisation and batch order (``vary=seed``: seed offsets 0, 1000, …) or,
with ``vary=head``, alternate between the kit's head and the other kind (MLP / linear): heads of
different inductive bias make less correlated mistakes (Dietterich 2000, "Ensemble Methods in
Machine Learning").
Cost: exactly ``members`` student fits per seed; a 5-seed experiment costs 5 × members fits.
The member count is explicit so a report compares equal-size ensembles: an M-member ensemble
against a baseline should be read against the baseline's own M-member ensemble, not its one fit.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np
from pydantic import Field

from aarlab.w2s.heads import Head, LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet


class EnsembleParams(Params):
    members: int = Field(4, ge=2, le=8, description="student fits averaged (the cost, per seed)")
    vary: Literal["seed", "head"] = Field("seed", description="what differs between members")


class EnsembleHead:
    """Averages its members' probabilities; looks like a ``Head`` to post steps."""

    def __init__(self, heads: list[Head]):
        self.heads = heads

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.mean([h.predict_proba(x) for h in self.heads], axis=0)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(x), 1e-12, 1.0))


@register
class Ensemble(Step):
    """Average of `members` students (seeds or alternating MLP/linear heads); members x the cost."""

    name = "ensemble"
    stage = "train"
    cost = "members head fits"
    Params = EnsembleParams

    def train(self, ctx: Context, ts: TrainSet, loss_fn: LossFn) -> EnsembleHead:
        heads = []
        for m in range(self.p.members):
            view = ctx
            if self.p.vary == "head" and m % 2 == 1:  # the other kind of head
                other = "linear" if ctx.head.kind == "mlp" else "mlp"
                view = replace(ctx, head=replace(ctx.head, kind=other))
            heads.append(view.fit(ts, loss_fn, seed_offset=1000 * m))
        return EnsembleHead(heads)
