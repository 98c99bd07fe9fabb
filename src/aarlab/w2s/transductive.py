"""Transductive students: the test rows join the rows the student learns from.

A spec with ``"transductive": true`` runs every step on a context whose ``train_unlabel`` is the
kit's train_unlabel rows followed by its test rows (features, the weak teacher's soft labels,
consistency groups and answers), while ``test`` stays the test rows. Nothing else changes: a
labels step labels the test rows too (``noisy_em`` and ``label_prop`` then infer them on a kNN
graph that contains them: Zhou et al. 2004's label propagation is transductive in just this
way), and the student is trained on them and then predicts them.

Why it is honest W2S: the test inputs and the teacher's outputs on them are in every kit (a
researcher must predict those rows), no gold label of any split is read, and the feedback and
final parts are treated alike. Why it is a choice and not a default: where a spec hands the
teacher's own labels to the student, training on the test rows teaches the student to copy the
teacher exactly where it is scored (README, "Transductive students"), so whether it helps is a
question for the signals and the feedback score, like any method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aarlab.kits.kit import TaskKit
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.methods.base import Context

JOINED = "train_unlabel"  # the split that carries the test rows as well


def joined_features(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``x`` with the test rows appended to train_unlabel (test itself unchanged)."""
    return {**x, JOINED: np.concatenate([x[JOINED], x["test"]])}


@dataclass
class TransductiveContext(Context):
    """A context whose train_unlabel rows are the kit's train_unlabel rows, then its test rows."""

    def groups(self, split: str) -> np.ndarray:
        if split != JOINED:
            return self._kit_view().groups(split)
        kit = self._kit_view()
        own, test = kit.groups(JOINED), kit.groups("test")
        # Test groups are renumbered after train_unlabel's, so no two splits share a group.
        offset = int(own.max()) + 1 if len(own) else 0
        return np.concatenate([own, np.where(test >= 0, test + offset, -1)])

    def answers(self, split: str) -> list[str]:
        kit = self._kit_view()
        return kit.answers(split) + (kit.answers("test") if split == JOINED else [])

    def _kit_view(self) -> Context:
        # The kit's own rows, with their group/answer caches kept apart from this view's.
        return Context(kit=self.kit, seed=self.seed, head=self.head, x={}, weak={},
                       shared=self.shared.setdefault(("transductive kit rows",), {}))


def transductive_context(kit: TaskKit, seed: int, head: HeadConfig, *,
                         x: dict[str, np.ndarray], shared: dict) -> TransductiveContext:
    """The per-seed transductive view; ``x`` must already be ``joined_features`` of the kit's."""
    weak = {s: kit.weak_probs(s, seed) for s in (JOINED, "test")}
    return TransductiveContext(kit=kit, seed=seed, head=head, x=x,
                               weak={**weak, JOINED: np.concatenate([weak[JOINED],
                                                                     weak["test"]])},
                               shared=shared)
