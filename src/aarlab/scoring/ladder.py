"""The Ladder release rule (Blum & Hardt 2015, "The Ladder: A Reliable Leaderboard").

A researcher learns a new score only when it beats their best released score by more than a step
eta, and then only rounded to a grid; otherwise they are told their previous best again. Each
answer therefore reveals about one bit (better by eta, or not), which is what defeats adaptive
attacks such as boosting on the holdout. Scores here are PGR, so higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ladder:
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
