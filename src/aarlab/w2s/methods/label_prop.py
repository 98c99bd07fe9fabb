"""Label propagation over the strong features' kNN graph (Zhou et al. 2004, "Learning with
Local and Global Consistency").

With Y the weak soft labels (N, K) and P = D⁻¹W the row-normalised kNN affinity matrix
(cosine similarities of the student's frozen features),

    F ← α · P F + (1 − α) · Y          (iterated to its fixed point (1−α)(I − αP)⁻¹ Y)

so each row's label is its own weak label mixed with its neighbours' propagated labels, and a
weak-teacher mistake inside a cluster of correct labels is outvoted. Zhou et al. normalise
symmetrically (D^-1/2 W D^-1/2); the random-walk form used here has the same fixed-point
structure and keeps every row of F a distribution. On pairwise tasks the graph is signed
(``_knn``): a neighbour near −x is the swapped pair and passes its label reversed.

Then class mass normalisation (Zhu, Ghahramani & Lafferty 2003): each class column is rescaled
so the classes' total mass matches the prior estimated from the kit (``_adapt.class_prior``),
so propagation cannot drift toward the majority cluster. k is chosen per task (``_adapt``:
the k whose leave-one-out vote best predicts the weak labels), times ``k_scale``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aarlab.w2s.methods import register
from aarlab.w2s.methods._adapt import K_LADDER, adaptive_k, class_prior, scaled_k
from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet, weak_train_set


class LabelPropParams(Params):
    alpha: float = Field(0.9, ge=0.0, le=0.99,
                         description="weight of the neighbours' labels against the row's own")
    k_scale: float = Field(1.0, ge=0.25, le=4.0,
                           description="multiplier on the task-chosen neighbour count")


def propagate(idx: np.ndarray, sim: np.ndarray, y: np.ndarray, alpha: float,
              tol: float = 1e-5, max_iter: int = 200) -> np.ndarray:
    """Fixed point of F = α·P F + (1−α)·Y by iteration (a contraction: error shrinks as αᵗ)."""
    f = y.astype(np.float32)
    for _ in range(max_iter):
        new = alpha * vote(idx, sim, f) + (1 - alpha) * y
        done = float(np.abs(new - f).max()) < tol
        f = new.astype(np.float32)
        if done:
            break
    return f


def mass_normalise(f: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Rescale class columns so their mean matches ``prior``; rows renormalised."""
    scale = prior / np.maximum(f.mean(0), 1e-12)
    g = f * scale
    return (g / np.maximum(g.sum(1, keepdims=True), 1e-12)).astype(np.float32)


@register
class LabelProp(Step):
    """Label propagation of the weak labels over the strong kNN graph, k and prior from the kit."""

    name = "label_prop"
    stage = "labels"
    cost = "1 head fit + a kNN graph (cached) + ~50 sparse propagation steps"
    Params = LabelPropParams

    def labels(self, ctx: Context) -> TrainSet:
        x, weak = ctx.x["train_unlabel"], ctx.weak["train_unlabel"]
        signed = ctx.format == "pairwise"
        k0 = adaptive_k(x, weak, signed, cache=ctx.shared)
        k = scaled_k(k0, self.p.k_scale, len(x))
        idx, sim = knn_graph(x, max(k, max(K_LADDER)), signed, cache=ctx.shared)  # cached
        idx, sim = idx[:, :k], sim[:, :k]  # columns are sorted by rank
        f = propagate(idx, sim, weak, self.p.alpha)
        f = mass_normalise(f, class_prior(weak, signed))
        ts = weak_train_set(ctx, f)
        ts.info["k"] = k
        return ts
