"""Reference runs that anchor PGR: the weak floor and the tuned ceiling, per seed, and the gap.

weak     = the weak teacher's argmax on the test rows, one teacher per seed
ceiling  = the best of the tuned ceiling family (``aarlab.w2s.ceiling``), chosen by
           cross-validation inside gold ``train_unlabel`` and refit once per seed
gap      = ceiling − weak accuracy on test, with its paired-bootstrap interval; a task whose gap
           interval does not lie above 0 has nothing for a student to recover
Accuracies are reported on the whole test set and on its feedback and final parts; the per-seed
predictions are kept too, for the paired bootstrap of every later PGR.
"""

from __future__ import annotations

import numpy as np

from aarlab.w2s import ceiling as ceiling_family
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.metrics import accuracy, bootstrap_gap


def part_accuracies(pred: np.ndarray, truth: np.ndarray, parts: dict[str, np.ndarray]) -> dict:
    """Accuracy on the whole set and on each part (boolean masks over the rows)."""
    out = {"test": accuracy(pred, truth)}
    for name, mask in parts.items():
        out[name] = accuracy(pred[mask], truth[mask])
    return out


def per_seed_accuracies(preds: dict[str, np.ndarray], y_test: np.ndarray,
                        parts: dict[str, np.ndarray]) -> dict:
    """``{which: {part: [acc per seed]}}`` for ``preds = {which: (S, N) class indices}``."""
    out: dict[str, dict[str, list[float]]] = {}
    for which, p in preds.items():
        for row in p:
            for part, acc in part_accuracies(row, y_test, parts).items():
                out.setdefault(which, {}).setdefault(part, []).append(acc)
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
    symmetric: bool = False,
    groups: np.ndarray | None = None,
    cv_seed: int = 0,
    member: ceiling_family.Member | None = None,
    ceiling_kinds: tuple[str, ...] = ("logreg", "mlp"),
) -> tuple[dict, dict[str, np.ndarray]]:
    """Per-seed weak and ceiling accuracies, the chosen ceiling member and the gap.

    Returns ``(reference, preds)``: ``reference`` is JSON-ready (``weak``/``ceiling`` ->
    part -> per-seed accuracies, ``ceiling_member``, ``gap``); ``preds`` holds the per-seed test
    predictions ``{"weak": (S, N), "ceiling": (S, N)}``. ``member`` skips the cross-validation
    and uses that family member (a re-draw keeps its original's choice).
    """
    seeds = list(range(len(weak_test_probs)))
    choice = (ceiling_family.Choice(member, {}, 0) if member is not None else
              ceiling_family.choose(x_unlabel, y_unlabel, n_classes, head=head,
                                    symmetric=symmetric, groups=groups, seed=cv_seed,
                                    members=ceiling_family.family(ceiling_kinds)))
    preds = {
        "weak": np.stack([p.argmax(1) for p in weak_test_probs]),
        "ceiling": ceiling_family.ceiling_preds(choice, x_unlabel, y_unlabel, x_test, n_classes,
                                                seeds, head=head, symmetric=symmetric),
    }
    reference: dict = per_seed_accuracies(preds, y_test, parts)
    reference["ceiling_member"] = choice.as_dict()
    reference["gap"] = gap_summary(y_test, preds, parts)
    return reference, preds


def gap_summary(y_test: np.ndarray, preds: dict[str, np.ndarray],
                parts: dict[str, np.ndarray]) -> dict:
    """Ceiling − weak on test (and per part) with paired-bootstrap intervals; ``ok`` when the
    whole-test interval lies above 0."""
    whole = bootstrap_gap(y_test, preds["weak"], preds["ceiling"])
    out = {**whole.as_dict(), "ok": whole.above_zero}
    out["parts"] = {p: bootstrap_gap(y_test, preds["weak"], preds["ceiling"], rows_mask=m)
                    .as_dict() for p, m in parts.items()}
    return out
