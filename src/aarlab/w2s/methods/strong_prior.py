"""Strong prior / unsupervised elicitation: labels from the strong model's features alone.

The strong representation is searched for a direction that separates the classes without any
labels, then the student is trained on the labels that direction gives:

* ``pca``: top principal directions of the features. For pairwise tasks the data are
  symmetrised first ({x} ∪ {-x}, since -x is the swapped pair), so every direction is
  swap-consistent: score(-x) = -score(x) and the label flips.
* ``kmeans``: two clusters (on the symmetrised data for pairwise tasks); the score is the
  projection on the line between the two centres, measured from the boundary halfway.

score → label: p(class 1) = sigmoid(sharpness · (s - τ) / sd(s)), with τ = 0 for pairwise
tasks (symmetry) and, for binary tasks, the quantile that reproduces the weak labels' class
balance. The weak labels are used for one thing only: to pick which of the ``n_directions``
candidate directions, and which sign, agrees best with them (log2(2n) bits of supervision).
Binary rows sharing a ``consistency_id`` are then made consistent (at most one true answer).

In the spirit of CCS (Burns et al. 2022) and ICM (Wen et al. 2025): the latent concept is often
among the leading directions of a good representation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.cluster import KMeans

from aarlab.w2s.methods import register
from aarlab.w2s.methods.base import (
    Context,
    Params,
    Step,
    TrainSet,
    fingerprint,
    weak_train_set,
)
from aarlab.w2s.methods.consistency import at_most_one_true


class StrongPriorParams(Params):
    algorithm: Literal["pca", "kmeans"] = Field("pca", description="how to find the direction")
    n_directions: int = Field(8, ge=1, le=64,
                              description="leading PCA directions the weak labels choose from "
                                          "(1 = fully unsupervised up to the sign)")
    sharpness: float = Field(2.0, ge=0.1, le=20.0,
                             description="slope of the sigmoid from standardised score to "
                                         "probability")


def candidate_directions(x: np.ndarray, pairwise: bool, algorithm: str, n: int, seed: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(centre (D,), directions (D, n)): score(x) = (x - centre) @ directions, no labels used.

    For pairwise tasks the centre is 0 and the data symmetrised, so every score is odd:
    score(-x) = -score(x), i.e. swapping A/B flips the label.
    """
    if pairwise:
        data, centre = np.concatenate([x, -x]), np.zeros(x.shape[1], x.dtype)
    else:
        data, centre = x, x.mean(0)
    if algorithm == "pca":
        _, _, vt = np.linalg.svd(data - centre, full_matrices=False)
        return centre, vt[:n].T
    km = KMeans(n_clusters=2, n_init=4, random_state=seed).fit(data)
    c0, c1 = km.cluster_centers_
    # The 2-means boundary is the hyperplane halfway between the centres.
    mid = centre if pairwise else (c0 + c1) / 2
    return mid, (c1 - c0)[:, None]


def pick_direction(scores: np.ndarray, weak_label: np.ndarray, pairwise: bool
                   ) -> tuple[np.ndarray, float]:
    """The candidate score (oriented) that agrees best with the weak labels, and its cut τ."""
    share_1 = float(weak_label.mean())
    best, best_agree, best_tau = scores[:, 0], -1.0, 0.0
    for j in range(scores.shape[1]):
        for sign in (1.0, -1.0):
            s = sign * scores[:, j]
            tau = 0.0 if pairwise else float(np.quantile(s, 1 - share_1))
            agree = float(((s > tau) == (weak_label == 1)).mean())
            if agree > best_agree:
                best, best_agree, best_tau = s, agree, tau
    return best, best_tau


@register
class StrongPrior(Step):
    """Labels from the strong features alone (PCA or 2-means); weak labels only pick the sign."""

    name = "strong_prior"
    stage = "labels"
    cost = "1 head fit + one SVD or k-means (cached across seeds)"
    Params = StrongPriorParams

    def labels(self, ctx: Context) -> TrainSet:
        x = ctx.x["train_unlabel"]
        pairwise = ctx.format == "pairwise"
        key = ("strong_prior", fingerprint(x), self.p.algorithm, self.p.n_directions, pairwise)
        if key not in ctx.shared:  # seed-independent (k-means uses a fixed seed for that reason)
            centre, dirs = candidate_directions(x, pairwise, self.p.algorithm,
                                                self.p.n_directions, seed=0)
            ctx.shared[key] = (x - centre) @ dirs
        weak_label = ctx.weak["train_unlabel"].argmax(1)
        s, tau = pick_direction(ctx.shared[key], weak_label, pairwise)
        z = (s - tau) / max(float(s.std()), 1e-12)
        p1 = 1.0 / (1.0 + np.exp(-self.p.sharpness * z))
        groups = ctx.groups("train_unlabel")
        if not pairwise and (groups >= 0).any():
            p1 = at_most_one_true(p1, groups, ctx.answers("train_unlabel"))
        return weak_train_set(ctx, np.stack([1 - p1, p1], 1))
