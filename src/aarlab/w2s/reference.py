"""Reference runs that anchor PGR: the weak floor and the strong ceiling, per seed.

weak     = accuracy of the weak teacher's argmax on the test rows
ceiling  = accuracy of the strong student's head trained on gold ``train_unlabel`` labels
Both are reported on the whole test set and on its feedback and final parts.
"""

from __future__ import annotations

import numpy as np

from aarlab.w2s.heads import HeadConfig, one_hot, train_head
from aarlab.w2s.metrics import accuracy


def part_accuracies(pred: np.ndarray, truth: np.ndarray, parts: dict[str, np.ndarray]) -> dict:
    """Accuracy on the whole set and on each part (boolean masks over the rows)."""
    out = {"test": accuracy(pred, truth)}
    for name, mask in parts.items():
        out[name] = accuracy(pred[mask], truth[mask])
    return out


def reference_runs(
    *,
    weak_test_probs: list[np.ndarray],
    x_unlabel: np.ndarray,
    y_unlabel: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    parts: dict[str, np.ndarray],
    head: HeadConfig,
    n_classes: int,
) -> dict:
    """Per-seed weak and ceiling accuracies: ``{"weak": {part: [..]}, "ceiling": {...}}``."""
    result: dict[str, dict[str, list[float]]] = {"weak": {}, "ceiling": {}}
    for seed, probs in enumerate(weak_test_probs):
        weak = part_accuracies(probs.argmax(1), y_test, parts)
        model = train_head(x_unlabel, one_hot(y_unlabel, n_classes), seed=seed, cfg=head)
        ceiling = part_accuracies(model.predict_proba(x_test).argmax(1), y_test, parts)
        for which, accs in (("weak", weak), ("ceiling", ceiling)):
            for part, acc in accs.items():
                result[which].setdefault(part, []).append(acc)
    return result
