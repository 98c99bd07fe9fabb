"""Vanilla weak-to-strong: the student is trained on the weak teacher's labels as they are.

Burns et al. 2023, "Weak-to-Strong Generalization", section 4.1 (the naive baseline).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet, one_hot_argmax, weak_train_set


@register
class WeakHard(Step):
    """Vanilla W2S on hard labels: target = one_hot(argmax weak)."""

    name = "weak_hard"
    stage = "labels"

    def labels(self, ctx: Context) -> TrainSet:
        return weak_train_set(ctx, one_hot_argmax(ctx.weak["train_unlabel"]))


class SoftParams(Params):
    temperature: float = Field(1.0, ge=0.1, le=10.0,
                               description="target ∝ weak^(1/T): T<1 sharpens, T>1 softens")


@register
class WeakSoft(Step):
    """Vanilla W2S on soft labels: target = weak^(1/T) / sum (T = 1: the weak probabilities).

    Burns et al. 2023 train on the weak model's soft labels; the temperature is our addition.
    """

    name = "weak_soft"
    stage = "labels"
    Params = SoftParams

    def labels(self, ctx: Context) -> TrainSet:
        return weak_train_set(ctx, temper(ctx.weak["train_unlabel"], self.p.temperature))


def temper(p: np.ndarray, temperature: float) -> np.ndarray:
    """Renormalised p^(1/T), computed in log space so T -> 0.1 cannot underflow to 0/0."""
    logp = np.log(np.clip(p, 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
