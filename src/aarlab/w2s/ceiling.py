"""The ceiling: the best of a small, fixed, tuned family of students trained on gold labels.

PGR divides by (ceiling − weak), so a weak ceiling inflates every PGR. The ceiling is therefore
not one default head but the best of a fixed family on the same frozen features and the same
gold ``train_unlabel`` rows:

    logistic regression (sklearn, standardised features) over a C grid
    the MLP head of ``aarlab.w2s.heads`` over a weight-decay grid

The member is chosen by k-fold cross-validation *inside* ``train_unlabel`` (never on test), then
refit on all of ``train_unlabel`` once per seed. Pairwise tasks are symmetric by construction
(A/B order is random and a swap negates the features), so every member trains on each pair and
its swap, as a careful student would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold

from aarlab.w2s.heads import HeadConfig, one_hot, train_head

LOGREG_C = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
MLP_WEIGHT_DECAY = (1e-4, 1e-1, 1.0)
FOLDS = 5

Predict = Callable[[np.ndarray], np.ndarray]  # features -> class indices


@dataclass(frozen=True)
class Member:
    """One student: ``kind`` is ``logreg`` (``value`` = C) or ``mlp`` (``value`` = weight decay)."""

    kind: str
    value: float

    @property
    def name(self) -> str:
        return f"logreg(C={self.value:g})" if self.kind == "logreg" else f"mlp(wd={self.value:g})"

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
            head: HeadConfig, symmetric: bool) -> Predict:
        if symmetric:
            x, y = np.concatenate([x, -x]), np.concatenate([y, n_classes - 1 - y])
        if self.kind == "logreg":
            mean, std = x.mean(0), x.std(0) + 1e-6
            clf = LogisticRegression(C=self.value, max_iter=2000, fit_intercept=not symmetric)
            clf.fit((x - mean) / std, y)
            return lambda z: clf.predict((z - mean) / std)
        model = train_head(x, one_hot(y, n_classes), seed=seed,
                           cfg=replace(head, kind="mlp", weight_decay=self.value))
        return lambda z: model.predict_proba(z).argmax(1)


def family(kinds: tuple[str, ...] = ("logreg", "mlp")) -> list[Member]:
    """The fixed family, or its ``kinds`` only (tiny test tasks skip the slower MLP fits)."""
    unknown = set(kinds) - {"logreg", "mlp"}
    if unknown or not kinds:
        raise ValueError(f"ceiling kinds must be among ('logreg', 'mlp'), got {kinds!r}")
    return ([Member("logreg", c) for c in LOGREG_C if "logreg" in kinds]
            + [Member("mlp", wd) for wd in MLP_WEIGHT_DECAY if "mlp" in kinds])


@dataclass(frozen=True)
class Choice:
    member: Member
    cv: dict[str, dict]  # member name -> {"acc": mean fold accuracy, "se": over folds}
    folds: int

    def as_dict(self) -> dict:
        chosen = self.cv.get(self.member.name, {})
        return {"member": self.member.name, "kind": self.member.kind,
                "value": self.member.value, "cv_acc": chosen.get("acc"),
                "folds": self.folds, "members": self.cv}


def choose(x: np.ndarray, y: np.ndarray, n_classes: int, *, head: HeadConfig, symmetric: bool,
           groups: np.ndarray | None = None, seed: int = 0, folds: int = FOLDS,
           members: list[Member] | None = None) -> Choice:
    """Pick the family member with the best mean k-fold accuracy on gold (x, y).

    ``groups`` keeps rows of one consistency group in one fold. Ties go to the earlier member
    (the simpler one: logistic regressions come first, small C first).
    """
    members = members or family()
    if groups is not None and len(np.unique(groups)) >= folds:
        splits = list(GroupKFold(folds).split(x, y, groups))
    else:
        min_class = int(np.bincount(y, minlength=n_classes).min())
        k = max(2, min(folds, min_class))
        splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y))
    cv: dict[str, dict] = {}
    for m in members:
        accs = []
        for f, (tr, va) in enumerate(splits):
            predict = m.fit(x[tr], y[tr], n_classes, seed + f, head, symmetric)
            accs.append(float((predict(x[va]) == y[va]).mean()))
        a = np.asarray(accs)
        cv[m.name] = {"acc": float(a.mean()),
                      "se": float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0}
    best = max(members, key=lambda m: (cv[m.name]["acc"], -members.index(m)))
    return Choice(best, cv, len(splits))


def ceiling_preds(choice: Choice, x: np.ndarray, y: np.ndarray, x_test: np.ndarray,
                  n_classes: int, seeds: list[int], *, head: HeadConfig,
                  symmetric: bool) -> np.ndarray:
    """The chosen member refit on all of (x, y) once per seed: class indices (S, N_test)."""
    return np.stack([choice.member.fit(x, y, n_classes, s, head, symmetric)(x_test)
                     for s in seeds])
