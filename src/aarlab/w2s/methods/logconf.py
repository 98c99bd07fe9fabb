"""Auxiliary confidence loss ("logconf"), Burns et al. 2023, section 4.3.2 and appendix A.4.

    target = (1 - α(t)) · weak + α(t) · harden(student)
    loss   = CE(student_logits, target)

α(t) = aux_coef · min(1, t / warmup_frac) ramps up over the first part of training, so the
student first learns from the weak labels and only then is allowed to trust itself. ``harden``
turns the (detached) student probabilities into one-hot labels; for two classes the threshold is
the batch quantile that gives the same class balance as the weak labels in the batch, so the
student cannot collapse onto one class. Source: openai/weak-to-strong, ``loss.py``,
``logconf_loss_fn`` (which uses coef = step_frac during warm-up; we ramp to 1 at warmup_frac).
"""

from __future__ import annotations

import torch
from pydantic import Field

from aarlab.w2s.heads import LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step


class LogconfParams(Params):
    aux_coef: float = Field(0.75, ge=0.0, le=1.0,
                            description="α after warm-up: weight of the student's own "
                                        "hardened prediction in the target")
    warmup_frac: float = Field(0.2, ge=0.0, le=1.0,
                               description="share of training over which α ramps from 0")


class LogconfLoss:
    """Per-example CE against (1-α)·weak + α·hardened student (Burns et al. 2023)."""

    def __init__(self, aux_coef: float = 0.75, warmup_frac: float = 0.2):
        self.aux_coef, self.warmup_frac = aux_coef, warmup_frac

    def coef(self, step_frac: float) -> float:
        ramp = 1.0 if self.warmup_frac <= 0 else min(1.0, step_frac / self.warmup_frac)
        return self.aux_coef * ramp

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 step_frac: float) -> torch.Tensor:
        coef = self.coef(step_frac)
        logp = torch.log_softmax(logits, dim=-1)
        if coef > 0:
            targets = (1 - coef) * targets + coef * harden(logp.detach().exp(), targets)
        return -(targets * logp).sum(-1)


def harden(preds: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """One-hot student labels; for K=2, thresholded to match the weak labels' class balance."""
    if preds.shape[1] != 2:
        return torch.nn.functional.one_hot(preds.argmax(1), preds.shape[1]).to(preds.dtype)
    share_1 = weak[:, 1].mean().clamp(0.0, 1.0)
    # The top share_1 of rows by p(class 1) become class 1, as in openai/weak-to-strong.
    threshold = torch.quantile(preds[:, 0], share_1)
    is_0 = (preds[:, 0] >= threshold).to(preds.dtype)
    return torch.stack([is_0, 1 - is_0], dim=1)


@register
class Logconf(Step):
    """Auxiliary confidence loss: target = (1-α)·weak + α·hardened student (Burns et al. 2023)."""

    name = "logconf"
    stage = "loss"
    Params = LogconfParams

    def loss(self, ctx: Context) -> LossFn:
        return LogconfLoss(self.p.aux_coef, self.p.warmup_frac)
