"""Turn predictions into accuracy and PGR against a task's answer key.

Used by the CLI's baselines (lab-owner view), by the scoring server and by reports. It is the
only code path from predictions to a number; researchers never run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aarlab.tasks.answer_key import PARTS, AnswerKey
from aarlab.w2s.metrics import Estimate, accuracy, estimate, pgr, pgr_estimate


@dataclass(frozen=True)
class Score:
    """Accuracy and PGR of one prediction vector on the test set and on each part."""

    accuracy: dict[str, float]  # "test", "feedback", "final"
    pgr: dict[str, float]


class Scorer:
    def __init__(self, key: AnswerKey, test_ids: Sequence[str]):
        self.key = key
        self.test_ids = list(test_ids)
        self.truth = key.labels("test", self.test_ids)
        self.masks = {p: np.isin(self.test_ids, key.parts[p]) for p in PARTS}
        self.weak = {p: key.reference_estimate("weak", p) for p in ("test", *PARTS)}
        self.ceiling = {p: key.reference_estimate("ceiling", p) for p in ("test", *PARTS)}

    def score(self, pred: np.ndarray) -> Score:
        """``pred``: class indices aligned with ``test_ids``."""
        pred = np.asarray(pred)
        acc = {"test": accuracy(pred, self.truth)}
        for p, m in self.masks.items():
            acc[p] = accuracy(pred[m], self.truth[m])
        return Score(acc, {p: pgr(a, self.weak[p].mean, self.ceiling[p].mean)
                           for p, a in acc.items()})

    def summarize(self, preds_per_seed: Sequence[np.ndarray], part: str = "test") -> dict:
        """Transfer accuracy and PGR over seeds, with SEs, plus the references."""
        scores = [self.score(p) for p in preds_per_seed]
        transfer = [s.accuracy[part] for s in scores]
        return {
            "transfer": estimate(transfer).as_dict(),
            "pgr": pgr_estimate(transfer, self.weak[part], self.ceiling[part]).as_dict(),
            "weak": self.weak[part].as_dict(),
            "ceiling": self.ceiling[part].as_dict(),
        }


__all__ = ["Estimate", "Score", "Scorer"]
