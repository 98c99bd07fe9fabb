"""Bootstrapping loss (Reed et al. 2015, "Training Deep Neural Networks on Noisy Labels with
Bootstrapping"):

    soft:  L = CE(p, β·t + (1 − β)·p)
    hard:  L = CE(p, β·t + (1 − β)·one_hot(argmax p))

with p the student's (detached) prediction: the target is partly the student's own belief, so
labels it consistently contradicts are discounted. Reed et al. use β = 0.95 (soft) and 0.8
(hard). Unlike ``logconf`` there is no warm-up and no class-balance threshold: the plain form
from the paper.
"""

from __future__ import annotations

import torch
from pydantic import Field

from aarlab.w2s.heads import LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step


class BootstrapParams(Params):
    beta: float = Field(0.8, ge=0.0, le=1.0, description="weight of the given label in the target")
    hard: bool = Field(True, description="student's argmax (hard) or its probabilities (soft)")


class BootstrapLoss:
    def __init__(self, beta: float = 0.8, hard: bool = True):
        self.beta, self.hard = beta, hard

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 step_frac: float) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=-1)
        own = logp.detach().exp()
        if self.hard:
            own = torch.nn.functional.one_hot(own.argmax(1), own.shape[1]).to(own.dtype)
        target = self.beta * targets + (1 - self.beta) * own
        return -(target * logp).sum(-1)


@register
class Bootstrap(Step):
    """Bootstrapping loss: target = β·label + (1−β)·student's own prediction (Reed et al. 2015)."""

    name = "bootstrap"
    stage = "loss"
    Params = BootstrapParams

    def loss(self, ctx: Context) -> LossFn:
        return BootstrapLoss(self.p.beta, self.p.hard)
