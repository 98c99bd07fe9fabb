"""Would the scoring server's paired Ladder resolve this improvement? Pure, label-free.

The server releases a new feedback score only when the new predictions beat the best so far row
by row: the mean paired difference ``d`` (0/1 correctness, new minus best) must exceed
``safety`` standard errors of it and a minimum step (``aarlab.scoring.ladder.PairedLadder``,
with the lab's published defaults in ``aarlab.config.Settings``). Both sides of that rule can be
estimated without a label:

- ``d`` is nonzero only on rows where the two prediction vectors disagree (share ``δ``), so its
  SE is at most ``sqrt(δ / n)`` and the largest gain a candidate could show is ``δ(2w − 1)``
  when it is right on a share ``w`` of those rows;
- the step is ``min_step_se · sqrt(p(1 − p) / n)`` at the weak teacher's accuracy ``p``, which a
  calibrated teacher estimates by its mean top probability.

A submission whose plausible gain is under the bar would only come back as "not released": it
spends budget and tells nothing. ``n`` is the feedback half of the test rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The server's own defaults (what a researcher can read from the published settings schema).
try:  # a pure module: fall back to the documented values if config cannot be imported
    from aarlab.config import Settings

    _SAFETY = float(Settings.model_fields["ladder_safety"].default)
    _STEP_SE = float(Settings.model_fields["ladder_min_step_se"].default)
except Exception:  # pragma: no cover - config is part of the package
    _SAFETY, _STEP_SE = 3.0, 0.5

FEEDBACK_SHARE = 0.5  # the server feeds back half of the test rows
WIN_SHARE = 0.75  # optimistic: a better candidate is right on ~3 in 4 rows where it departs


@dataclass(frozen=True)
class Resolvability:
    resolvable: bool
    disagree: float  # share of test rows where candidate and reference differ
    plausible_gain: float  # accuracy gain if the candidate wins WIN_SHARE of those rows
    bar: float  # gain the Ladder needs: max(safety * SE, step)
    se: float

    def text(self) -> str:
        verdict = "resolvable" if self.resolvable else "NOT resolvable"
        return (f"{verdict}: departs from the reference on {self.disagree:.1%} of test rows, so "
                f"a plausible gain is {self.plausible_gain:.4f} accuracy against the Ladder's "
                f"bar {self.bar:.4f} (3 SE = {3 * self.se:.4f}, step included)")


@dataclass(frozen=True)
class LadderView:
    """The researcher's model of the server's release rule on one task."""

    n_feedback: int
    weak_acc: float  # label-free estimate of the teacher's feedback accuracy
    safety: float = _SAFETY
    min_step_se: float = _STEP_SE
    win_share: float = WIN_SHARE

    @classmethod
    def for_task(cls, n_test: int, weak_probs: np.ndarray, **kw) -> LadderView:
        """From the number of test rows and the teacher's soft test labels (its mean top
        probability estimates its accuracy when it is calibrated)."""
        return cls(max(2, int(n_test * FEEDBACK_SHARE)),
                   float(np.asarray(weak_probs).max(1).mean()), **kw)

    @property
    def step(self) -> float:
        p = min(max(self.weak_acc, 1 / self.n_feedback), 1 - 1 / self.n_feedback)
        return self.min_step_se * math.sqrt(p * (1 - p) / self.n_feedback)

    def signal_gain(self, score_diff: float) -> float:
        """A label-free guess of the accuracy gain behind a selection-score difference.

        Agreement with a teacher of accuracy q is acc·q + (1−acc)(1−q), so it moves by
        (2q − 1) per point of accuracy (``aarlab.w2s.signals.agreement``); the selection score
        is read on the same scale. A heuristic: it says "how much", the disagreement says
        "at most how much"."""
        return max(0.0, score_diff) / max(2 * self.weak_acc - 1, 0.05)

    def assess(self, candidate: np.ndarray, reference: np.ndarray,
               signal_gain: float | None = None) -> Resolvability:
        """Could ``candidate`` be released over ``reference`` (the best submission so far, or
        the weak teacher's predictions before the first)? ``signal_gain``: the signals' own
        estimate of the gain (``signal_gain()``), which caps the disagreement's bound."""
        delta = float((np.asarray(candidate) != np.asarray(reference)).mean())
        gain = delta * (2 * self.win_share - 1)
        if signal_gain is not None:
            gain = min(gain, signal_gain)
        # Var(d) = δ − gain² for d in {−1, 0, 1} with mean ``gain``.
        se = math.sqrt(max(delta - gain * gain, 0.0) / self.n_feedback)
        bar = max(self.safety * se, self.step)
        return Resolvability(delta > 0 and gain >= bar, delta, gain, bar, se)

    def min_disagreement(self) -> float:
        """The smallest departure from the reference that could ever be resolved."""
        c = 2 * self.win_share - 1
        # gain >= safety·sqrt(δ/n) ⇔ δ >= safety² / (c² n) (SE bound), and gain >= step.
        return max(self.safety ** 2 / (c * c * self.n_feedback), self.step / c)
