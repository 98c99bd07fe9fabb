"""Accuracy, performance gap recovered (PGR) and standard errors.

PGR (Burns et al. 2023, "Weak-to-Strong Generalization"):
    PGR = (transfer_acc - weak_acc) / (ceiling_acc - weak_acc)
0 means the student only matched its weak teacher; 1 means it reached the ceiling
(the same student trained on ground truth).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its standard error (sample sd / sqrt(n))."""

    mean: float
    se: float
    seeds: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.se:.3f}"


def accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"predictions have shape {pred.shape}, labels {truth.shape}")
    if truth.size == 0:
        raise ValueError("cannot score an empty set")
    return float((pred == truth).mean())


def estimate(values: Sequence[float]) -> Estimate:
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError("no values to estimate from")
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return Estimate(float(v.mean()), se, int(v.size))


def pgr(transfer: float, weak: float, ceiling: float) -> float:
    gap = ceiling - weak
    if abs(gap) < 1e-9:
        raise ValueError("ceiling equals weak accuracy: PGR is undefined")
    return (transfer - weak) / gap


def pgr_estimate(transfer: Sequence[float], weak: Estimate, ceiling: Estimate) -> Estimate:
    """PGR per transfer seed against the reference means, with first-order error propagation.

    The SE combines the spread of the transfer seeds with the uncertainty of the two
    reference means (delta method on (t - w) / (c - w)).
    """
    t = np.asarray(list(transfer), dtype=float)
    per_seed = [pgr(x, weak.mean, ceiling.mean) for x in t]
    base = estimate(per_seed)
    gap = ceiling.mean - weak.mean
    t_mean = float(t.mean())
    d_weak = (t_mean - ceiling.mean) / gap**2  # d PGR / d weak
    d_ceil = -(t_mean - weak.mean) / gap**2  # d PGR / d ceiling
    se = math.sqrt(base.se**2 + (d_weak * weak.se) ** 2 + (d_ceil * ceiling.se) ** 2)
    return Estimate(base.mean, se, base.seeds)
