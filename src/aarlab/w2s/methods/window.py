"""Window loss: after a warm-up, learn only from rows where the student is still uncertain.

    loss_i = CE(logits_i, target_i) · 1[max_k student_ik < 1/K + radius]     (t > warmup_frac)

Rows the student is already confident about are left alone, so it cannot be pulled back onto
weak labels that contradict what it learned from the rest; the weak labels only settle the rows
it has no opinion on. (A "confidence window" as in the W2S sandbox's baseline list; the mask is
computed on detached probabilities.)
"""

from __future__ import annotations

import torch
from pydantic import Field

from aarlab.w2s.heads import LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step


class WindowParams(Params):
    radius: float = Field(0.3, ge=0.0, le=1.0,
                          description="train on rows with max_k p_k < 1/K + radius")
    warmup_frac: float = Field(0.3, ge=0.0, le=1.0,
                               description="share of training on every row before the window")


class WindowLoss:
    """Per-example CE, masked to rows whose student confidence lies inside the window."""

    def __init__(self, radius: float = 0.3, warmup_frac: float = 0.3):
        self.radius, self.warmup_frac = radius, warmup_frac

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        conf = torch.softmax(logits.detach(), dim=-1).max(-1).values
        return (conf < 1.0 / logits.shape[1] + self.radius).to(logits.dtype)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 step_frac: float) -> torch.Tensor:
        loss = -(targets * torch.log_softmax(logits, dim=-1)).sum(-1)
        if step_frac < self.warmup_frac:
            return loss
        return loss * self.mask(logits)


@register
class Window(Step):
    """Window loss: after warm-up, train only where the student is uncertain."""

    name = "window"
    stage = "loss"
    Params = WindowParams

    def loss(self, ctx: Context) -> LossFn:
        return WindowLoss(self.p.radius, self.p.warmup_frac)
