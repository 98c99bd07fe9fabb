"""Forward loss correction with an estimated noise transition matrix (Patrini et al. 2017,
"Making Deep Neural Networks Robust to Label Noise: a Loss Correction Approach").

The weak label w is modelled as the true label y passed through a channel T[y, w] = P(w | y).
The student's clean prediction p(y | x) is pushed through the channel before the loss:

    L = CE(t, pᵀ T) = −Σ_w t_w · log Σ_y p_y T[y, w]

so the student fits the *noisy* labels only through T, and its own p(y | x) is the clean
classifier. T is estimated without any gold label by Patrini's anchor estimator: fit p̂(w | x)
out of sample (a leave-one-out kNN vote of the weak labels on the strong features, k chosen per
task, ``_adapt``), take for each class i the row x̄ⁱ at the ``quantile`` of p̂(w = i | x)
(Patrini et al. use the 97th percentile rather than the arg-max, against outliers), and set
T[i, :] = p̂(w | x̄ⁱ). Quantiles below 0.8 are not offered: anchors far from the class's
core give near-equal rows and a singular T (on snli-pref the median row gives T ≈ [[.5, .5],
[.5, .5]]). On a pairwise task the swap symmetry makes T symmetric, and a symmetric channel
does not move the argmax of the fitted p(w | x): expect forward correction to matter only where
the teacher's errors are asymmetric between classes.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from aarlab.w2s.heads import LossFn
from aarlab.w2s.methods import register
from aarlab.w2s.methods._adapt import adaptive_k
from aarlab.w2s.methods._knn import knn_graph, vote
from aarlab.w2s.methods.base import Context, Params, Step


class ForwardParams(Params):
    quantile: float = Field(0.97, ge=0.8, le=1.0,
                            description="anchor row per class: this quantile of p̂(w = i | x)")


def anchor_transition(noisy_probs: np.ndarray, quantile: float) -> np.ndarray:
    """T[i, :] = p̂(w | x̄ⁱ), x̄ⁱ the row at ``quantile`` of p̂(w = i | x); rows sum to 1."""
    k = noisy_probs.shape[1]
    t = np.zeros((k, k))
    for i in range(k):
        col = noisy_probs[:, i]
        cut = np.quantile(col, quantile, method="lower")
        anchor = int(np.argmin(np.where(col >= cut, col - cut, np.inf)))  # the row at the cut
        t[i] = noisy_probs[anchor]
    return t / np.maximum(t.sum(1, keepdims=True), 1e-12)


class ForwardLoss:
    """Per-example −Σ_w t_w log (pᵀT)_w."""

    def __init__(self, transition: np.ndarray):
        self.t = torch.as_tensor(np.asarray(transition), dtype=torch.float32)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 step_frac: float) -> torch.Tensor:
        noisy = torch.softmax(logits, dim=-1) @ self.t
        return -(targets * torch.log(noisy.clamp_min(1e-7))).sum(-1)


def estimate_transition(ctx: Context, quantile: float) -> np.ndarray:
    x, weak = ctx.x["train_unlabel"], ctx.weak["train_unlabel"]
    signed = ctx.format == "pairwise"
    k = adaptive_k(x, weak, signed, cache=ctx.shared)
    idx, sim = knn_graph(x, k, signed, cache=ctx.shared)
    return anchor_transition(vote(idx, sim, weak), quantile)


@register
class Forward(Step):
    """Forward loss correction: CE(weak, student · T), T from anchor rows (Patrini et al. 2017)."""

    name = "forward"
    stage = "loss"
    cost = "1 head fit + a kNN graph (cached)"
    Params = ForwardParams

    def loss(self, ctx: Context) -> LossFn:
        return ForwardLoss(estimate_transition(ctx, self.p.quantile))
