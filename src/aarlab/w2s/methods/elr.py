"""Early-learning regularisation (Liu et al. 2020, "Early-Learning Regularization Prevents
Memorization of Noisy Labels"):

    t_i ← β · t_i + (1 − β) · p_i                 (running average of row i's own predictions)
    L_i = loss(p_i, label_i) + λ · log(1 − ⟨t_i, p_i⟩)

Early in training a network fits the clean majority pattern; only later does it memorise the
noisy labels. The regulariser keeps each row's prediction close to its own early predictions
(minimising log(1 − ⟨t, p⟩) pulls p toward t), so the memorisation phase is damped. The base
loss is whatever the spec's loss step gives (cross-entropy by default), so ELR composes with
``gce``, ``forward`` and the rest. A train step, because the running target is per row and the
loss contract does not see row indices: it hands ``heads.train_head`` a per-row penalty.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from aarlab.w2s.heads import Head, HeadConfig, LossFn, Penalty, train_head
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet

# Liu et al.'s β for CIFAR-10; fixed, so the tuned grid spends its specs on λ.
BETA = 0.7


class ELRParams(Params):
    lam: float = Field(3.0, ge=0.0, le=20.0, description="λ, weight of the regulariser")


def elr_penalty(n_rows: int, n_classes: int, lam: float, beta: float) -> Penalty:
    """λ · log(1 − ⟨t_i, p_i⟩) for the batch's rows, updating their running targets t_i."""
    ema = torch.zeros(n_rows, n_classes)

    def penalty(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits, -1).clamp(1e-4, 1 - 1e-4)
        ema[idx] = beta * ema[idx] + (1 - beta) * (p / p.sum(1, keepdim=True)).detach()
        return lam * torch.log((1 - (ema[idx] * p).sum(-1)).clamp_min(1e-6))

    return penalty


def train_elr(x: np.ndarray, targets: np.ndarray, weights: np.ndarray | None, *, seed: int,
              cfg: HeadConfig, loss_fn: LossFn, lam: float, beta: float) -> Head:
    """``heads.train_head`` (same init, batches and optimiser) plus the ELR term."""
    return train_head(x, targets, seed=seed, cfg=cfg, weights=weights, loss_fn=loss_fn,
                      penalty=elr_penalty(len(x), targets.shape[1], lam, beta))


@register
class ELR(Step):
    """Early-learning regularisation: + λ·log(1 − ⟨running own prediction, p⟩) (Liu et al. 2020)."""

    name = "elr"
    stage = "train"
    Params = ELRParams

    def train(self, ctx: Context, ts: TrainSet, loss_fn: LossFn) -> Head:
        keep = ts.weights > 0
        if not keep.any():
            raise ValueError("every training row was dropped; loosen the filter")
        w = ts.weights[keep]
        return train_elr(ts.x[keep], ts.targets[keep], None if np.all(w == 1) else w,
                         seed=ctx.seed, cfg=ctx.head, loss_fn=loss_fn,
                         lam=self.p.lam, beta=BETA)
