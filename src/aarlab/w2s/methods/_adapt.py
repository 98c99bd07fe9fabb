"""Task-adapted settings, estimated from the kit without a gold label: neighbour counts and
class priors. A fixed k or a fixed prior fits one task's size and class mix only.

* ``adaptive_k``: the neighbour count whose leave-one-out kNN vote best predicts the weak labels
  (mean log-likelihood of the held-out soft weak label), over a geometric ladder of k. The weak
  labels are noisy, but the k that predicts them best out of sample is the right smoothing for
  p(weak | x), and so (for noise not tied to the strong features) for p(y | x): the usual
  bias-variance choice of k by cross-validation (e.g. Hastie et al., ESL §7.10).
* ``class_prior``: the teacher's mean probability per class on train_unlabel; uniform for
  pairwise tasks, whose classes are symmetric under an A/B swap.
"""

from __future__ import annotations

import numpy as np

from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import fingerprint

K_LADDER = (5, 10, 20, 40, 80)


def adaptive_k(x: np.ndarray, weak: np.ndarray, signed: bool, cache: dict | None = None,
               ladder: tuple[int, ...] = K_LADDER) -> int:
    """The k in ``ladder`` (capped at N-1) whose LOO kNN vote has the best weak log-likelihood."""
    ks = sorted({min(k, len(x) - 1) for k in ladder if k >= 1})
    key = ("adaptive_k", fingerprint(x), fingerprint(weak), signed, tuple(ks))
    if cache is not None and key in cache:
        return cache[key]
    idx, sim = knn_graph(x, ks[-1], signed, cache=cache)  # columns sorted: [:, :k] is the kNN
    best, best_ll = ks[0], -np.inf
    for k in ks:
        p = vote(idx[:, :k], sim[:, :k], weak)
        ll = float((weak * np.log(np.clip(p, 1e-4, 1.0))).sum(1).mean())
        if ll > best_ll:
            best, best_ll = k, ll
    if cache is not None:
        cache[key] = best
    return best


def scaled_k(k: int, scale: float, n_rows: int) -> int:
    return int(min(max(1, round(k * scale)), n_rows - 1))


def class_prior(weak: np.ndarray, pairwise: bool) -> np.ndarray:
    """Class shares to aim for: the teacher's mean probabilities (uniform on pairwise tasks)."""
    k = weak.shape[1]
    if pairwise:
        return np.full(k, 1.0 / k)
    prior = weak.mean(0).astype(np.float64)
    return prior / prior.sum()
