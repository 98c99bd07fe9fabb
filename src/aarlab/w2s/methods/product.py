"""Product loss: the target is the normalised product of student and weak beliefs.

    target ∝ student^β(t) · weak^α,   loss = CE(student_logits, target)   (target detached)

β(t) = β · min(1, t / warmup_frac). With β = 0 this is training on weak^α; with β > 0 the
student keeps the labels it already believes in, like a product of experts. Source:
openai/weak-to-strong, ``loss.py``, ``product_loss_fn``.
"""

from __future__ import annotations

import torch
from pydantic import Field

from aarlab.w2s.heads import LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step


class ProductParams(Params):
    alpha: float = Field(1.0, ge=0.0, le=4.0, description="exponent on the weak label")
    beta: float = Field(1.0, ge=0.0, le=4.0, description="exponent on the student's prediction")
    warmup_frac: float = Field(0.1, ge=0.0, le=1.0,
                               description="share of training over which β ramps from 0")


class ProductLoss:
    """Per-example CE against normalise(student^β · weak^α)."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, warmup_frac: float = 0.1):
        self.alpha, self.beta, self.warmup_frac = alpha, beta, warmup_frac

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 step_frac: float) -> torch.Tensor:
        ramp = 1.0 if self.warmup_frac <= 0 else min(1.0, step_frac / self.warmup_frac)
        logp = torch.log_softmax(logits, dim=-1)
        # Log space with a floor on the weak probabilities: hard 0/1 labels stay finite.
        log_t = self.beta * ramp * logp.detach() + self.alpha * targets.clamp_min(1e-6).log()
        target = torch.softmax(log_t, dim=-1)
        return -(target * logp).sum(-1)


@register
class Product(Step):
    """Product loss: target ∝ student^β · weak^α (openai/weak-to-strong)."""

    name = "product"
    stage = "loss"
    Params = ProductParams

    def loss(self, ctx: Context) -> LossFn:
        return ProductLoss(self.p.alpha, self.p.beta, self.p.warmup_frac)
