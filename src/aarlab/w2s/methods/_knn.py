"""Cosine k-nearest-neighbour graph on strong features, and neighbour votes over it.

For pairwise tasks a row's features are emb(first) - emb(second), so -x is the same pair with
A/B swapped. The graph is then *signed*: a neighbour close to -x counts as a neighbour whose
label is flipped, which doubles the usable neighbours and makes votes swap-symmetric.
"""

from __future__ import annotations

import numpy as np

from aarlab.w2s.methods.base import fingerprint

_CHUNK = 1024


def knn_graph(x: np.ndarray, k: int, signed: bool, cache: dict | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out neighbours: (idx (N, k), sim (N, k)), a row is never its own neighbour.

    With ``signed``, neighbours are ranked by |cos| and ``sim`` keeps the sign.
    """
    key = ("knn", fingerprint(x), k, signed)
    if cache is not None and key in cache:
        return cache[key]
    k = min(k, len(x) - 1)
    if k < 1:
        raise ValueError("a kNN graph needs at least two rows")
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    xn = xn.astype(np.float32)
    idx = np.empty((len(x), k), np.int64)
    sim = np.empty((len(x), k), np.float32)
    for lo in range(0, len(x), _CHUNK):
        s = xn[lo:lo + _CHUNK] @ xn.T
        rank = np.abs(s) if signed else s.copy()
        rows = np.arange(len(s))
        rank[rows, lo + rows] = -np.inf
        part = np.argpartition(-rank, k - 1, axis=1)[:, :k]
        # Sort the k by rank, ties by index: the graph is the same on every machine.
        order = np.lexsort((part, -np.take_along_axis(rank, part, 1)), axis=1)
        part = np.take_along_axis(part, order, 1)
        idx[lo:lo + len(s)] = part
        sim[lo:lo + len(s)] = np.take_along_axis(s, part, 1)
    if cache is not None:
        cache[key] = (idx, sim)
    return idx, sim


def vote(idx: np.ndarray, sim: np.ndarray, targets: np.ndarray,
         weights: np.ndarray | None = None) -> np.ndarray:
    """Similarity-weighted average of the neighbours' targets; (N, K) rows sum to 1.

    A negatively similar neighbour (signed graph, pairwise) votes with its target reversed,
    since -x is the swapped pair. ``weights`` (N,) scales each neighbour's vote (0 = silent).
    """
    t = targets[idx]  # (N, k, K)
    neg = sim < 0
    if neg.any():
        t = np.where(neg[..., None], t[..., ::-1], t)
    w = np.abs(sim).astype(np.float64)
    if weights is not None:
        w = w * weights[idx]
    w = np.clip(w, 0, None)
    total = w.sum(1, keepdims=True)
    out = (w[..., None] * t).sum(1) / np.maximum(total, 1e-12)
    # A row whose neighbours are all silent gets the uniform distribution.
    out[total[:, 0] <= 0] = 1.0 / targets.shape[1]
    return out.astype(np.float32)
