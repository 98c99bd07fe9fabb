"""Turn predictions into accuracy and PGR against a task's answer key.

Used by the CLI's baselines (lab-owner view), by the scoring server and by reports. It is the
only code path from predictions to a number; researchers never run it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from aarlab.tasks.answer_key import PARTS, AnswerKey
from aarlab.w2s.metrics import (
    Estimate,
    PGRInterval,
    accuracy,
    bootstrap_gap,
    bootstrap_pgr,
    bootstrap_pgr_diff,
    estimate,
    pgr,
)


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

    @cached_property
    def fingerprint(self) -> str:
        """Which build of the task this scores on: sha256 of the ordered test ids, their gold
        labels, the feedback rows and the weak and ceiling reference accuracies.

        Two builds agree on it only when a prediction vector gets the same scores on both, so
        submissions of one build are never compared with (or scored as) those of another, even
        when both have as many test rows (another build seed, other data, another teacher).
        """
        ref = {w: {p: self.key.reference[w][p] for p in ("test", *PARTS)}
               for w in ("weak", "ceiling")}
        body = {"ids": self.test_ids, "truth": self.truth.tolist(),
                "feedback": np.flatnonzero(self.masks["feedback"]).tolist(), "reference": ref}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def score(self, pred: np.ndarray) -> Score:
        """``pred``: class indices aligned with ``test_ids``."""
        pred = np.asarray(pred)
        acc = {"test": accuracy(pred, self.truth)}
        for p, m in self.masks.items():
            acc[p] = accuracy(pred[m], self.truth[m])
        return Score(acc, {p: pgr(a, self.weak[p].mean, self.ceiling[p].mean)
                           for p, a in acc.items()})

    def _mask(self, part: str) -> np.ndarray | None:
        if part == "test":
            return None
        if part not in self.masks:
            raise ValueError(f"part must be 'test' or one of {PARTS}, got {part!r}")
        return self.masks[part]

    @cached_property
    def _refs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per-seed weak and ceiling predictions and row groups; read on first bootstrap, so
        ``score`` (the scoring server's per-submission path) stays cheap."""
        return (self.key.reference_preds("weak", self.test_ids),
                self.key.reference_preds("ceiling", self.test_ids),
                self.key.test_groups(self.test_ids))

    def pgr_interval(self, preds_per_seed: Sequence[np.ndarray], part: str = "test",
                     n_boot: int = 2000, seed: int = 0) -> PGRInterval:
        """PGR of per-seed predictions with a paired bootstrap over ``part``'s rows and seeds."""
        weak, ceiling, groups = self._refs
        return bootstrap_pgr(self.truth, weak, ceiling, _stack(preds_per_seed),
                             rows_mask=self._mask(part), n_boot=n_boot, seed=seed,
                             groups=groups)

    def summarize(self, preds_per_seed: Sequence[np.ndarray], part: str = "test") -> dict:
        """Transfer accuracy over seeds, PGR with its paired-bootstrap ``ci95``, the references.

        ``pgr`` keeps ``mean``/``se``/``seeds``; its ``se`` and ``ci95`` include test-row noise
        (the rows of ``part`` resampled, paired across weak, ceiling and transfer) and seed noise.
        """
        scores = [self.score(p) for p in preds_per_seed]
        transfer = [s.accuracy[part] for s in scores]
        return {
            "transfer": estimate(transfer).as_dict(),
            "pgr": self.pgr_interval(preds_per_seed, part).as_dict(),
            "weak": self.weak[part].as_dict(),
            "ceiling": self.ceiling[part].as_dict(),
        }

    def vote_interval(self, preds_per_seed: Sequence[np.ndarray], k: int, part: str = "final",
                      n_boot: int = 2000, seed: int = 0) -> PGRInterval:
        """PGR of a vote of ``k`` distinct seeds, in expectation over the seeds of
        ``preds_per_seed``, with the rows of ``part`` and the seeds resampled together
        (``metrics._VoteSet``): a submitted vote's PGR with its seed noise, which one vote
        vector alone cannot show."""
        weak, ceiling, groups = self._refs
        return bootstrap_pgr(self.truth, weak, ceiling, _stack(preds_per_seed),
                             rows_mask=self._mask(part), n_boot=n_boot, seed=seed,
                             groups=groups, vote_of=k)

    def vote_diff(self, a_preds_per_seed: Sequence[np.ndarray],
                  b_preds_per_seed: Sequence[np.ndarray], k: int, part: str = "final",
                  n_boot: int = 2000, seed: int = 0) -> PGRInterval:
        """PGR(vote of a) − PGR(vote of b), both voting over the same resampled seeds (a and b
        run on the same teacher seeds, in the same order) on the same resampled rows."""
        a, b = _stack(a_preds_per_seed), _stack(b_preds_per_seed)
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"a has {a.shape[0]} seeds, b {b.shape[0]}: a paired vote needs "
                             "both run on the same seeds")
        weak, ceiling, groups = self._refs
        return bootstrap_pgr_diff(self.truth, weak, ceiling, a, b, rows_mask=self._mask(part),
                                  n_boot=n_boot, seed=seed, groups=groups, vote_of=k)

    def gap_interval(self, part: str = "final", n_boot: int = 2000, seed: int = 0
                     ) -> PGRInterval:
        """Ceiling − weak accuracy on ``part`` with its paired-bootstrap interval: where it
        reaches 0, a PGR there is a ratio of noise (its interval spans anything)."""
        weak, ceiling, groups = self._refs
        return bootstrap_gap(self.truth, weak, ceiling, rows_mask=self._mask(part),
                             n_boot=n_boot, seed=seed, groups=groups)

    def pgr_diff(self, a_preds_per_seed: Sequence[np.ndarray],
                 b_preds_per_seed: Sequence[np.ndarray], part: str = "final",
                 n_boot: int = 2000, seed: int = 0) -> PGRInterval:
        """PGR(a) − PGR(b) on the same resampled rows of ``part``; a wins when ``.lo > 0``."""
        weak, ceiling, groups = self._refs
        return bootstrap_pgr_diff(self.truth, weak, ceiling, _stack(a_preds_per_seed),
                                  _stack(b_preds_per_seed), rows_mask=self._mask(part),
                                  n_boot=n_boot, seed=seed, groups=groups)


def _stack(preds_per_seed: Sequence[np.ndarray]) -> np.ndarray:
    return np.atleast_2d(np.stack([np.asarray(p) for p in preds_per_seed]))


__all__ = ["Estimate", "PGRInterval", "Score", "Scorer"]
