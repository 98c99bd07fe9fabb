"""Noisy-channel EM: the weak label is a noisy observation of a latent true label.

Generative model: y_i ~ π(· | x_i) (a prior from the strong features), w_i ~ C[y_i, ·] (the
weak teacher as a noisy channel). With the weak probabilities ω_i as soft observations,

    E-step:  q_i(y) ∝ π_i(y) · Σ_w C[y, w] ω_i(w)
    M-step:  C[y, w] ∝ λ·1[y = w] + Σ_i q_i(y) ω_i(w)      (rows of C sum to 1)
             π_i    = a leave-one-out fit to q on the strong features (kNN vote or k-fold
                      logistic), mixed with ε of the uniform distribution

starting from q = ω. The student is trained on the final posterior q. When the channel is
noisy (rows of C near-uniform) q follows the strong prior; when it is clean, q follows the weak
label. λ (``channel_prior``) is a Dirichlet pseudo-count on the diagonal that keeps the classes
from swapping names. Dawid & Skene 1979; as a W2S method, e.g. "noisy-channel" label models in
weak supervision (Ratner et al. 2016).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from aarlab.w2s.methods import register
from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet, weak_train_set
from aarlab.w2s.methods.probe import logistic_oof


class EMParams(Params):
    prior: Literal["knn", "logistic"] = Field("knn", description="model of π(y | strong features)")
    k: int = Field(25, ge=1, le=200, description="neighbours (knn prior)")
    iterations: int = Field(10, ge=1, le=50, description="EM iterations")
    channel_prior: float = Field(50.0, ge=0.0, le=10000.0,
                                 description="Dirichlet pseudo-count on C's diagonal")
    epsilon: float = Field(0.05, ge=0.0, le=0.5,
                           description="share of uniform mixed into the prior")


def em_posterior(prior: np.ndarray, weak: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """E-step: q(y) ∝ π(y) · Σ_w C[y, w] ω(w); rows are probability distributions."""
    lik = weak @ channel.T  # (N, K): Σ_w ω(w) C[y, w]
    q = prior * lik
    return q / np.maximum(q.sum(1, keepdims=True), 1e-30)


def estimate_channel(q: np.ndarray, weak: np.ndarray, pseudo: float) -> np.ndarray:
    """M-step for C: expected counts of (latent y, observed w), plus λ on the diagonal."""
    counts = q.T @ weak + pseudo * np.eye(q.shape[1])
    return counts / np.maximum(counts.sum(1, keepdims=True), 1e-30)


@register
class NoisyEM(Step):
    """Noisy-channel EM: posterior of the true label from a strong prior and a learned channel."""

    name = "noisy_em"
    stage = "labels"
    cost = "1 head fit + a kNN graph (cached) or iterations x 5 logistic fits"
    Params = EMParams

    def labels(self, ctx: Context) -> TrainSet:
        x, weak = ctx.x["train_unlabel"], ctx.weak["train_unlabel"].astype(np.float64)
        k_classes = weak.shape[1]
        graph = None
        if self.p.prior == "knn":
            graph = knn_graph(x, self.p.k, signed=ctx.format == "pairwise", cache=ctx.shared)
        q = weak.copy()
        for _ in range(self.p.iterations):
            if graph is not None:
                prior = vote(*graph, q).astype(np.float64)
            else:
                prior = logistic_oof(x, q.argmax(1), np.ones(len(q), bool), 5, 0.1, ctx.seed)
            prior = (1 - self.p.epsilon) * prior + self.p.epsilon / k_classes
            channel = estimate_channel(q, weak, self.p.channel_prior)
            q = em_posterior(prior, weak, channel)
        ts = weak_train_set(ctx, q)
        ts.info["channel"] = channel.round(4).tolist()
        return ts
