"""Label-free selection signals: judge a method from the kit alone, without a gold label.

A researcher may not see any gold label, so it needs other evidence that one spec beats another.
Each signal below is a number where *higher is meant to be better*; how well each one really
ranks methods by final-part PGR is measured in ``bench/signals.py`` and published in
``w2s/methods/README.md`` ("Selecting without gold labels"). Read them as noisy hints, not scores.

The functions are pure (arrays in, a float out). ``crossfit_contexts`` builds the held-out views
the runner uses for the cross-fitted signals; ``aarlab.w2s.runner.run_experiment(...,
signals=True)`` computes them all and puts them into the diagnostics.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import Context, FoldView

# The teacher's most confident share of rows: a calibrated logistic teacher is mostly right there.
CONFIDENT_SHARE = 0.3

# name -> one line: what it measures (``aarlab`` prints these; the docstrings give the why).
SIGNALS = {
    "heldout_agree": "cross-fitted agreement with the weak labels of held-out train_unlabel rows",
    "heldout_balanced_agree": "the same, averaged per class of the weak labels (a collapse "
                              "to one class scores 1/K)",
    "heldout_loglik": "cross-fitted mean log-likelihood of held-out soft weak labels",
    "heldout_confident_agree": "cross-fitted agreement on the teacher's confident held-out rows",
    "confident_agree": "agreement with the teacher on its most confident test rows",
    "misfit": "share of test rows where the student departs from the teacher",
    "swap_consistency": "share of test pairs whose prediction mirrors under A/B swap (pairwise)",
    "balance": "1 - total variation between predicted class shares and the teacher's prior",
    "crossfit_stability": "agreement on test of two students trained on disjoint halves",
    "smoothness": "agreement of each test prediction with its strong-feature neighbours' vote",
}

SMOOTH_K = 10  # neighbours per test row for ``smoothness``


def agreement(pred: np.ndarray, weak: np.ndarray) -> float:
    """Share of rows where the student's class equals the weak teacher's argmax.

    On *held-out* rows this tracks accuracy when the teacher's errors are independent of the
    student's view: agree = acc·q + (1−acc)(1−q) rises with acc whenever the teacher's accuracy
    q > 0.5. Systematic teacher errors break that assumption, so it also rewards imitation.
    """
    return float((np.asarray(pred) == weak.argmax(1)).mean())


def balanced_agreement(pred: np.ndarray, weak: np.ndarray) -> float:
    """Agreement with the teacher's argmax averaged over the classes the teacher uses.

    Plain agreement lets a student that predicts the majority class everywhere keep most of it on
    an imbalanced task (vader-tweets: noisy_em collapsed to "positive" and lost only 0.013–0.018
    of held-out agreement, PGR −0.81); averaged per teacher class it scores 1/K. On a balanced
    task the two are the same. The held-out guard (``methods.guarded``) uses this form.
    """
    w = np.asarray(weak).argmax(1)
    pred = np.asarray(pred)
    return float(np.mean([(pred[w == k] == k).mean() for k in np.unique(w)]))


def soft_loglik(probs: np.ndarray, weak: np.ndarray) -> float:
    """Mean of Σ_k w_k log p_k: how likely the student finds the teacher's soft labels.

    The held-out version of the student's own training objective (cross-entropy on soft weak
    labels); a calibrated, well-generalising student scores higher. Probabilities are clipped
    at 1e-6 so one overconfident row cannot dominate.
    """
    return float((weak * np.log(np.clip(probs, 1e-6, 1.0))).sum(1).mean())


def confident_rows(weak: np.ndarray, share: float = CONFIDENT_SHARE) -> np.ndarray:
    """Boolean mask of the ``share`` of rows where the teacher's top probability is highest."""
    n = max(1, int(round(share * len(weak))))
    order = np.argsort(-weak.max(1), kind="stable")  # stable: ties break by row, same everywhere
    mask = np.zeros(len(weak), dtype=bool)
    mask[order[:n]] = True
    return mask


def confident_agreement(pred: np.ndarray, weak: np.ndarray,
                        share: float = CONFIDENT_SHARE) -> float:
    """Agreement with the teacher on its most confident rows only.

    A calibrated teacher is far more accurate on its confident rows than overall, so there
    agreement ≈ the student's accuracy on those rows; a student may (and should) depart from the
    teacher where it is unsure, and this signal does not penalise that.
    """
    mask = confident_rows(weak, share)
    return agreement(np.asarray(pred)[mask], weak[mask])


def misfit(pred: np.ndarray, weak: np.ndarray) -> float:
    """1 − agreement: how far the student departs from its teacher.

    Charikar et al. 2024 ("Quantifying the gain in weak-to-strong generalization") show that a
    student fit to weak labels within a convex class has error ≤ teacher error − misfit, so more
    misfit means more gain, *for students that fit the weak labels*. A method that ignores them
    (e.g. a clustering label source) can misfit a lot and still be worse: read it with the others.
    """
    return 1.0 - agreement(pred, weak)


def swap_consistency(pred: np.ndarray, pred_swapped: np.ndarray) -> float:
    """Share of pairs whose predicted winner changes when A and B are swapped.

    Pairwise features are emb(A) − emb(B), so swapping negates them and the true label mirrors.
    A student that does not mirror is wrong on one of the two orders, whatever the label:
    1 − swap_consistency bounds its error rate from below (halved).
    """
    return float((np.asarray(pred) != np.asarray(pred_swapped)).mean())


def balance(pred: np.ndarray, weak: np.ndarray, n_classes: int) -> float:
    """1 − total variation distance between predicted class shares and the teacher's prior.

    The teacher's mean probability estimates the class balance of the rows; a student that
    collapses onto one class (a common failure of self-training and clustering) scores low.
    """
    share = np.bincount(np.asarray(pred), minlength=n_classes) / max(1, len(pred))
    return float(1.0 - 0.5 * np.abs(share - weak.mean(0)).sum())


def stability(preds: list[np.ndarray]) -> float:
    """Mean pairwise agreement of students trained on disjoint folds, on the same test rows.

    Weak-label noise that no feature explains is memorised differently by students that saw
    different rows, while structure the features support is learnt by both: an unstable method
    is fitting noise (the variance half of the error, measurable without labels).
    """
    pairs = [(a, b) for i, a in enumerate(preds) for b in preds[i + 1:]]
    return float(np.mean([(a == b).mean() for a, b in pairs])) if pairs else 1.0


def smoothness(pred: np.ndarray, x: np.ndarray, n_classes: int, pairwise: bool,
               k: int = SMOOTH_K, cache: dict | None = None) -> float:
    """Share of test rows whose prediction equals the vote of their k nearest neighbours'
    predictions in the strong feature space (signed for pairs, as in ``_knn``).

    The cluster assumption behind label propagation (Zhou et al. 2004): the truth is smooth
    over the strong student's features, while a weak teacher's errors follow its own (lexical)
    view and cut across those clusters. A student that copies them is less smooth.
    """
    idx, sim = knn_graph(x, k, signed=pairwise, cache=cache)
    votes = vote(idx, sim, np.eye(n_classes, dtype=np.float32)[pred])
    return float((votes.argmax(1) == pred).mean())


# -- cross-fitting ---------------------------------------------------------------------------


def crossfit_folds(groups: np.ndarray, folds: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Row indices of ``folds`` disjoint, covering folds of train_unlabel.

    Rows of one consistency group (``groups`` ≥ 0) stay in one fold, so a method that uses
    groups sees whole groups on both sides. The fold draw is fixed by ``seed`` (not the
    experiment's seed): seeds then share kNN graphs and other seed-independent caches.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    groups = np.asarray(groups)
    unit = np.where(groups >= 0, groups, groups.max(initial=-1) + 1 + np.arange(len(groups)))
    units = np.unique(unit)
    rng = np.random.default_rng(seed)
    fold_of_unit = rng.permutation(len(units)) % folds
    fold = fold_of_unit[np.searchsorted(units, unit)]
    return [np.flatnonzero(fold == f) for f in range(folds)]


def crossfit_contexts(ctx: Context, folds: list[np.ndarray],
                      shared: list[dict] | None = None) -> list[FoldView]:
    """One :class:`FoldView` per fold (fold = held-out rows), for this seed's weak labels: the
    other folds' rows as train_unlabel, this fold's as test, groups and answers from ``ctx``
    (which holds the test rows too for a transductive spec). Any step runs unchanged on it, and
    its "test" predictions are on rows the student never trained on, with their weak labels to
    compare to.

    ``shared``: one cache per fold, reused across seeds (the folds do not change with the seed).
    """
    x, weak = ctx.x["train_unlabel"], ctx.weak["train_unlabel"]
    groups, answers = ctx.groups("train_unlabel"), ctx.answers("train_unlabel")
    n = len(x)
    out = []
    for i, held in enumerate(folds):
        train = np.setdiff1d(np.arange(n), held)
        out.append(FoldView(
            kit=ctx.kit, seed=ctx.seed, head=ctx.head,
            x={"train_unlabel": x[train], "test": x[held]},
            weak={"train_unlabel": weak[train], "test": weak[held]},
            shared=shared[i] if shared is not None else {},
            parent_groups=groups, parent_answers=answers,
            rows={"train_unlabel": train, "test": held},
        ))
    return out


def with_negated_test(ctx: Context) -> Context:
    """The same context with every test pair swapped (features negated): for swap consistency."""
    return replace(ctx, x={**ctx.x, "test": -ctx.x["test"]})


def summary(per_seed: list[dict]) -> dict[str, float]:
    """Mean of each signal over seeds (signals that are None for this task are left out), and
    ``selection``: the selection score of those means (see ``selection_score``)."""
    names = [k for k in SIGNALS if any(d.get(k) is not None for d in per_seed)]
    out = {k: float(np.mean([d[k] for d in per_seed if d.get(k) is not None])) for k in names}
    if all(k in out for k in SELECTION):
        out["selection"] = selection_score(out)
    return out


# The one number the search researcher ranks specs by: the sum of these signals (see
# ``selection_score``), chosen in bench/signals.py by rank correlation with feedback-part PGR.
SELECTION: tuple[str, ...] = ("smoothness", "heldout_agree")


def selection_score(signals: dict[str, float]) -> float:
    """The search researcher's ranking score: the sum of the ``SELECTION`` signals.

    smoothness rewards a student whose answers follow the strong features' own clusters, where
    weak-to-strong gains come from; heldout_agree keeps it honest to the weak labels, so a label
    source that ignores the teacher (smooth but wrong, like a clustering direction) scores low.
    -inf when a signal is missing.
    """
    if any(k not in signals for k in SELECTION):
        return -math.inf
    return float(sum(signals[k] for k in SELECTION))


# -- is the teacher informative at all? -------------------------------------------------------

KAPPA_ROWS = 2000  # rows the probe sees at most: a kit-level check, not a per-spec signal
KAPPA_C = 0.01  # strong L2: a few hundred rows in ~1000 dimensions, and no tuning on labels


def teacher_kappa(x: np.ndarray, weak: np.ndarray, pairwise: bool, seed: int = 0,
                  max_rows: int = KAPPA_ROWS, c: float = KAPPA_C) -> tuple[float, float]:
    """(κ, its SE): how much of the teacher's labels a linear probe on the strong features
    recovers on held-out rows, beyond chance. One number per kit, not per spec.

    Two folds of train_unlabel: an L2 logistic probe fit to the teacher's argmax on one fold
    predicts the other. κ = (p_o − p_e) / (1 − p_e), p_o = held-out agreement, p_e =
    Σ_k share_probe(k) · share_teacher(k), the agreement of two labelings with those class
    shares and nothing in common (Cohen 1960). If the teacher is right with probability q
    independently of the features and the probe learnt the truth, p_o = q on a balanced binary
    task, so κ ≈ 2q − 1: κ near 0 says the teacher carries nothing the strong features can
    express. On a pairwise binary task the probe is swap-odd (fit on x and −x with the label
    flipped, no intercept): the truth mirrors under an A/B swap, so only the odd part of the
    teacher can be about it, and a position bias (always "A") scores κ = 0, not agreement.
    SE ≈ sqrt(p_o(1 − p_o)/n)/(1 − p_e), the binomial error of p_o.
    """
    from sklearn.linear_model import LogisticRegression  # kept local: a kit-level check only

    y = np.asarray(weak).argmax(1)
    k = weak.shape[1]
    rows = np.random.default_rng(seed).permutation(len(y))[:max_rows]
    z, y = np.asarray(x, dtype=np.float64)[rows], y[rows]
    odd = pairwise and k == 2
    if not odd:
        z = z - z.mean(0)
    z = z / np.maximum(np.sqrt((z ** 2).mean(0)), 1e-8)
    fold = np.arange(len(y)) % 2
    pred = np.empty_like(y)
    for f in (0, 1):
        xt, yt = z[fold != f], y[fold != f]
        if odd:
            xt, yt = np.concatenate([xt, -xt]), np.concatenate([yt, 1 - yt])
        if len(np.unique(yt)) < 2:  # one class only: the probe can only repeat it
            pred[fold == f] = yt[0] if len(yt) else 0
            continue
        probe = LogisticRegression(C=c, fit_intercept=not odd, max_iter=500)
        pred[fold == f] = probe.fit(xt, yt).predict(z[fold == f])
    n = max(1, len(y))
    p_o = float((pred == y).mean())
    p_e = float((np.bincount(pred, minlength=k) / n) @ (np.bincount(y, minlength=k) / n))
    if p_e >= 1.0:  # both constant: no evidence either way
        return 0.0, 1.0
    return (p_o - p_e) / (1 - p_e), math.sqrt(p_o * (1 - p_o) / n) / (1 - p_e)


def teacher_margin(weak: np.ndarray) -> float:
    """Mean of (top probability − 1/K) / (1 − 1/K) over rows: 0 for a teacher whose
    probabilities are flat everywhere, 1 for one that is always certain. A calibrated teacher's
    mean top probability estimates its accuracy, so a margin near 0 means near chance."""
    k = weak.shape[1]
    return float(((np.asarray(weak).max(1) - 1 / k) / (1 - 1 / k)).mean())
