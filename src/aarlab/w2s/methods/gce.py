"""Generalised cross-entropy (Zhang & Sabuncu 2018, "Generalized Cross Entropy Loss for
Training Deep Neural Networks with Noisy Labels"):

    L_q(p, t) = Σ_k t_k · (1 − p_k^q) / q,      0 < q ≤ 1

q → 0 is cross-entropy (−log p); q = 1 is the mean absolute error, which is robust to symmetric
label noise but slow to fit. In between, a row the student confidently contradicts contributes a
bounded gradient (∂L/∂z scales with p_k^q rather than 1), so a few wrong weak labels cannot pull
the student away from what the rest of the data say.
"""

from __future__ import annotations

import torch
from pydantic import Field

from aarlab.w2s.heads import LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step


class GCEParams(Params):
    q: float = Field(0.7, gt=0.0, le=1.0,
                     description="robustness: → 0 is cross-entropy, 1 is mean absolute error")


class GCELoss:
    """Per-example Σ_k t_k (1 − p_k^q) / q."""

    def __init__(self, q: float = 0.7):
        self.q = q

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 step_frac: float) -> torch.Tensor:
        pq = torch.exp(self.q * torch.log_softmax(logits, dim=-1))  # p^q, stable
        return (targets * (1 - pq)).sum(-1) / self.q


@register
class GCE(Step):
    """Generalised cross-entropy (1 − p^q)/q: bounded pull from labels the student contradicts."""

    name = "gce"
    stage = "loss"
    Params = GCEParams

    def loss(self, ctx: Context) -> LossFn:
        return GCELoss(self.p.q)
