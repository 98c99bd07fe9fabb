"""The Ladder release rule (Blum & Hardt 2015, "The Ladder: A Reliable Leaderboard"), paired.

A researcher learns a new score only when the new submission beats the best one so far on the
feedback rows, judged row by row: with ``d`` the per-row difference of 0/1 correctness (new minus
best), the mean of ``d`` must exceed ``safety`` standard errors of that mean (``sd(d)/sqrt(n)``)
and a minimum step. Otherwise the researcher is told the previous release again. Released values
are rounded to the step, so each answer carries about one bit.

Why a safety factor. With ``safety = 1`` (the paper's parameter-free Ladder) an attacker who
flips ``m`` rows whose correctness is a coin flip passes with probability P(Z > 1) ~ 16 % for
*any* m, and keeps a gain of at least sqrt(m) rows each time: 1,000 queries climb far above the
truth. P(Z > 3) ~ 0.13 %, and a pass of all-gain flips needs more than ``safety**2`` flipped
feedback rows at once, so small flips never pass (bench/ladder_attack.py measures both sides).

Why a minimum step. It is a fraction of one standard error of a single submission's feedback
accuracy: below it, a "better" submission is within the noise of the feedback set itself, and
the step bounds how many releases a researcher can ever see (at most range / step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Verdict:
    released: bool
    diff: float  # mean paired accuracy difference (new - best) on the feedback rows
    se: float  # its standard error
    bar: float  # what ``diff`` had to exceed: max(safety * se, step)


@dataclass(frozen=True)
class PairedLadder:
    """``n`` feedback rows; ``weak_acc`` and ``gap`` (ceiling - weak accuracy) on them turn
    accuracies into PGR (divide by the gap) and fix the step."""

    n: int
    weak_acc: float
    gap: float
    safety: float = 3.0
    min_step_se: float = 0.5

    def __post_init__(self) -> None:
        if self.n < 2 or self.gap <= 0 or self.safety < 0 or self.min_step_se <= 0:
            raise ValueError("need n >= 2 feedback rows, a positive gap and step, safety >= 0")

    @property
    def step(self) -> float:
        """Smallest accuracy gain ever released: a fraction of one single-submission SE."""
        p = min(max(self.weak_acc, 1 / self.n), 1 - 1 / self.n)
        return self.min_step_se * math.sqrt(p * (1 - p) / self.n)

    @property
    def grid(self) -> float:
        """The released resolution in PGR units."""
        return self.step / self.gap

    def round(self, pgr: float) -> float:
        # The second round() strips float noise such as 0.30000000000000004 from the reply.
        return round(round(pgr / self.grid) * self.grid, 10)

    def compare(self, correct: np.ndarray, best_correct: np.ndarray) -> Verdict:
        """Is ``correct`` (0/1 per feedback row) better than ``best_correct`` by the rule?"""
        d = np.asarray(correct, np.float64) - np.asarray(best_correct, np.float64)
        if d.shape != (self.n,):
            raise ValueError(f"expected {self.n} feedback rows, got {d.shape}")
        diff = float(d.mean())
        se = float(d.std(ddof=1) / math.sqrt(self.n))
        bar = max(self.safety * se, self.step)
        # >= step, > safety*se: a tie with the step passes, an all-zero d (se 0) never does
        return Verdict(diff >= bar - 1e-12 and diff > self.safety * se, diff, se, bar)


@dataclass(frozen=True)
class Ladder:
    """The unpaired rule of earlier versions (a fixed step ``eta`` on PGR). The server no longer
    uses it: 13-row flips climbed it (issue 15); kept for callers that have only a score."""

    eta: float = 0.02
    grid: float | None = None  # None: round to the eta grid, as in the paper

    def __post_init__(self) -> None:
        if self.eta <= 0 or (self.grid is not None and self.grid <= 0):
            raise ValueError("eta and grid must be positive")

    def round(self, score: float) -> float:
        step = self.grid or self.eta
        # Second round() strips float noise such as 0.30000000000000004 from the reply.
        return round(round(score / step) * step, 10)

    def release(self, best: float | None, score: float) -> tuple[float, bool]:
        """``(released, is_new_best)`` for a fresh ``score`` given the best released so far."""
        if best is None or score > best + self.eta:
            return self.round(score), True
        return best, False
