"""Unsupervised elicitation on the student's own features: one direction, the weak labels pick
only its sign.

On a pairwise task a row's features are x = emb(A) − emb(B), so swapping A and B gives −x:
every row and its swap form a contrast pair (x⁺, x⁻) = (x, −x). (On other tasks the pair is
(x − μ, μ − x) around the feature mean.) Features are scaled per dimension (root mean square,
which keeps the score odd). A probe is a direction θ with score s(x) = θ·x and
p(x) = σ(τ · s(x) / sd(s)), τ = 3:

* ``pca``: θ is the top principal direction of the (symmetrised) pair differences, the simplest
  relative of CCS: the direction along which pairs differ most.
* ``ccs``: contrast-consistent search (Burns et al. 2022, "Discovering Latent Knowledge in
  Language Models Without Supervision"): minimise
  L(θ) = mean[(p(x⁺) − (1 − p(x⁻)))² + min(p(x⁺), p(x⁻))²]
  over θ. With x⁻ = −x and no bias the consistency term is zero by construction, so what is left
  is the confidence term, which (the score being standardised) prefers a direction along which
  the rows split into two groups away from 0 over one along which they pile up at 0. Fitted by
  Adam from 8 starts (top 4 PCA directions, 4 random); the lowest loss wins, label-free.

Then label = p(class 1) = σ(sharpness · (s − c) / sd(s)), with c = 0 on pairwise tasks
(symmetry: swapping A and B flips the label exactly) and, elsewhere, the quantile of s that
reproduces the class prior estimated from the kit. The weak labels are used for one bit only:
the sign of θ, chosen by agreement with the teacher's argmax.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from aarlab.errors import SpecError
from aarlab.w2s.methods import register
from aarlab.w2s.methods._adapt import class_prior
from aarlab.w2s.methods.base import Context, Params, Step, TrainSet, fingerprint, weak_train_set

TAU = 3.0
STARTS = 8


class PairedParams(Params):
    algorithm: Literal["ccs", "pca"] = Field("ccs", description="how the direction is found")
    sharpness: float = Field(2.0, ge=0.1, le=20.0,
                             description="slope from standardised score to label probability")


def contrast_features(x: np.ndarray, pairwise: bool) -> np.ndarray:
    """x (pairwise) or x − μ (else), scaled per dimension by the root mean square."""
    z = x.astype(np.float64) if pairwise else x - x.mean(0)
    return (z / np.maximum(np.sqrt((z ** 2).mean(0)), 1e-8)).astype(np.float32)


def ccs_loss(z: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """CCS loss of each column of ``theta`` (D, R) on contrast pairs (z, −z); shape (R,)."""
    s = z @ theta
    s = s / s.std(0, keepdim=True).clamp_min(1e-8)
    p_pos, p_neg = torch.sigmoid(TAU * s), torch.sigmoid(-TAU * s)
    consistency = (p_pos - (1 - p_neg)) ** 2  # zero here; kept so the formula is the paper's
    confidence = torch.minimum(p_pos, p_neg) ** 2
    return (consistency + confidence).mean(0)


def find_direction(z: np.ndarray, algorithm: str, seed: int, steps: int = 200) -> np.ndarray:
    """A unit direction (D,) in the scaled feature space; no labels used."""
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    if algorithm == "pca":
        return vt[0]
    gen = torch.Generator().manual_seed(seed)
    d = z.shape[1]
    starts = [torch.as_tensor(vt[:STARTS // 2].T.copy())]
    starts.append(torch.randn(d, STARTS - STARTS // 2, generator=gen, dtype=torch.float64))
    theta = torch.cat(starts, 1).float().requires_grad_(True)
    zt = torch.as_tensor(z)
    opt = torch.optim.Adam([theta], lr=0.05)
    for _ in range(steps):
        loss = ccs_loss(zt, theta).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        best = int(ccs_loss(zt, theta).argmin())
        v = theta[:, best].numpy().astype(np.float64)
    return v / np.linalg.norm(v)


def direction_labels(score: np.ndarray, weak: np.ndarray, pairwise: bool, prior: np.ndarray,
                     sharpness: float) -> np.ndarray:
    """Soft labels (N, 2) from a score; the weak argmax only picks the sign."""
    cut = 0.0 if pairwise else float(np.quantile(score, prior[0]))
    pred1 = score > cut
    if (pred1 == (weak.argmax(1) == 1)).mean() < 0.5:
        score, cut = -score, -cut
    sd = max(float(score.std()), 1e-8)
    p1 = 1.0 / (1.0 + np.exp(-sharpness * (score - cut) / sd))
    return np.stack([1 - p1, p1], 1).astype(np.float32)


@register
class PairedDirection(Step):
    """CCS / top paired-difference direction of the strong features; weak labels pick its sign."""

    name = "paired_direction"
    stage = "labels"
    cost = "1 head fit + one SVD (+ 200 Adam steps for ccs), cached across seeds"
    Params = PairedParams

    def labels(self, ctx: Context) -> TrainSet:
        if ctx.n_classes != 2:
            raise SpecError(f"method: paired_direction needs a two-class task, this one has "
                            f"{ctx.n_classes} classes", hint="use label_prop or noisy_em")
        x, weak = ctx.x["train_unlabel"], ctx.weak["train_unlabel"]
        pairwise = ctx.format == "pairwise"
        key = ("paired_direction", fingerprint(x), self.p.algorithm, pairwise)
        if key not in ctx.shared:  # label-free, so one direction serves every seed
            z = contrast_features(x, pairwise)
            ctx.shared[key] = z @ find_direction(z, self.p.algorithm, seed=0)
        score = ctx.shared[key]
        labels = direction_labels(score, weak, pairwise, class_prior(weak, pairwise),
                                  self.p.sharpness)
        return weak_train_set(ctx, labels)
