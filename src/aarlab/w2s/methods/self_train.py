"""Self-training / born-again students: the student relabels its training set and is retrained.

    round 0:  f_0 = fit(targets)
    round r:  targets_r = mix · targets + (1 - mix) · student_{r-1}(x)   (hardened if ``hard``)
              f_r = fit(targets_r)   (fresh initialisation, same rows and weights)

Born-again networks (Furlanello et al. 2018) and noisy-student self-training (Xie et al. 2020):
a student that generalises better than its labels can denoise them by relabelling.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aarlab.w2s.heads import Head, LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet, one_hot_argmax


class SelfTrainParams(Params):
    rounds: int = Field(2, ge=1, le=5, description="relabel-and-retrain rounds after the first fit")
    hard: bool = Field(True, description="relabel with the student's argmax (else its soft "
                                         "probabilities)")
    mix: float = Field(0.0, ge=0.0, le=1.0,
                       description="weight kept on the original targets when relabelling")


@register
class SelfTrain(Step):
    """Self-training: the student relabels the training rows and a fresh student is refitted."""

    name = "self_train"
    stage = "train"
    cost = "1 + rounds head fits"
    Params = SelfTrainParams

    def train(self, ctx: Context, ts: TrainSet, loss_fn: LossFn) -> Head:
        head = ctx.fit(ts, loss_fn)
        for r in range(1, self.p.rounds + 1):
            ts = ts.with_(targets=relabel(head, ts, self.p.hard, self.p.mix))
            head = ctx.fit(ts, loss_fn, seed_offset=1000 * r)
        return head


def relabel(head: Head, ts: TrainSet, hard: bool, mix: float) -> np.ndarray:
    student = head.predict_proba(ts.x)
    if hard:
        student = one_hot_argmax(student)
    return (mix * ts.targets + (1 - mix) * student).astype(np.float32)
