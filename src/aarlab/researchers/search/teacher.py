"""Is the weak teacher informative at all? A label-free verdict per task, and what follows. Pure.

Every method that fits the teacher's labels assumes they carry the concept, more or less
noisily. When they carry nothing the strong features can express (an LM teacher at chance,
say), fitting them learns its biases, and the selection score's ``heldout_agree`` term rewards
exactly that. The label-free families (``strong_prior``, ``paired_direction``, ``consistency``)
read the concept off the strong features and use the teacher only to choose a sign or a
permutation; with a chance teacher that choice is a coin flip, and it is exactly what a scored
submission settles (both signs differ on every row, so they are never probes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aarlab.w2s import signals as sig

KAPPA_MAX = 0.1  # κ below this: the teacher is within ~5 points of a coin (κ ≈ 2q − 1)
SE_BAR = 2.0  # ... or within 2 SE of κ = 0 on a small kit
MARGIN_MAX = 0.05  # a mean top-probability margin under this: the teacher's labels are flat
CHANCE_AGREE = 0.5  # agreement with a coin-flip teacher, whatever the student's accuracy


@dataclass(frozen=True)
class TeacherCheck:
    task: str
    kappa: float  # ``signals.teacher_kappa``: held-out agreement of a probe, beyond chance
    se: float  # its standard error
    margin: float  # ``signals.teacher_margin``: how far from flat the teacher's probabilities are

    @property
    def bar(self) -> float:
        return max(KAPPA_MAX, SE_BAR * self.se)

    @property
    def uninformative(self) -> bool:
        return uninformative(self.kappa, self.se, self.margin)

    def text(self) -> str:
        verdict = "looks uninformative" if self.uninformative else "carries the concept"
        return (f"the teacher {verdict} on {self.task}: a linear probe of its labels on the "
                f"strong features agrees with them on held-out rows at κ = {self.kappa:.3f} "
                f"beyond chance (bar {self.bar:.3f}), and its probabilities are "
                f"{self.margin:.2f} of the way from flat to certain")


def uninformative(kappa: float, se: float, margin: float) -> bool:
    """True when the teacher's labels carry (nearly) nothing the strong features can learn.

    Rule: κ < max(KAPPA_MAX, SE_BAR · SE), or margin < MARGIN_MAX.

    Why: κ is Cohen's chance-corrected held-out agreement of a probe fit to the teacher
    (``signals.teacher_kappa``). A teacher right with probability q, independently of the
    strong view, gives κ ≈ 2q − 1 to a probe that learnt the truth, so κ < 0.1 means q ≲ 0.55
    in any direction the features can express, and under 2 SE it is not distinguishable from 0
    at all on the kit's rows. A margin near 0 (top probability ≈ 1/K everywhere) is the
    teacher itself saying it is guessing. Measured on the built kits (``aarlab`` README): the
    SmolLM2 teacher of snli-lm κ ≈ 0, the classical teachers of snli-pref, tweets and nyt
    κ ≈ 0.2 to 0.65.
    """
    return kappa < max(KAPPA_MAX, SE_BAR * se) or margin < MARGIN_MAX


def check(task: str, x: np.ndarray, weak: np.ndarray, pairwise: bool) -> TeacherCheck:
    """The verdict from a kit's train_unlabel features and the teacher's soft labels there."""
    kappa, se = sig.teacher_kappa(x, weak, pairwise)
    return TeacherCheck(task, kappa, se, sig.teacher_margin(weak))


def task_score(signals: dict[str, float], teacher_free: bool) -> float:
    """The selection score a spec gets on one task.

    With an informative teacher, ``signals.selection_score`` (smoothness + heldout_agree). With
    an uninformative one, agreement with it is acc·½ + (1 − acc)·½ = ½ whatever the student's
    accuracy (``signals.agreement``), so that term says nothing and only rewards copying the
    teacher's biases: it is replaced by its chance value ½, which keeps the scale, and the
    teacher-free smoothness ranks the specs.
    """
    if not teacher_free:
        return sig.selection_score(signals)
    if "smoothness" not in signals:
        return -float("inf")
    return float(signals["smoothness"] + CHANCE_AGREE)
