"""Accuracy, performance gap recovered (PGR) and standard errors.

PGR (Burns et al. 2023, "Weak-to-Strong Generalization"):
    PGR = (transfer_acc - weak_acc) / (ceiling_acc - weak_acc)
0 means the student only matched its weak teacher; 1 means it reached the ceiling
(the same student trained on ground truth).

Every PGR the lab reports carries a paired bootstrap interval (``bootstrap_pgr``): test rows are
resampled together for weak, ceiling and transfer predictions, and seeds are resampled too, so the
interval covers both test-row noise and seed noise. A "win" is a difference whose interval lies
above 0 (``bootstrap_pgr_diff``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its standard error (sample sd / sqrt(n))."""

    mean: float
    se: float
    seeds: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.se:.3f}"


def accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"predictions have shape {pred.shape}, labels {truth.shape}")
    if truth.size == 0:
        raise ValueError("cannot score an empty set")
    return float((pred == truth).mean())


def estimate(values: Sequence[float]) -> Estimate:
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError("no values to estimate from")
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return Estimate(float(v.mean()), se, int(v.size))


def pgr(transfer: float, weak: float, ceiling: float) -> float:
    gap = ceiling - weak
    if abs(gap) < 1e-9:
        raise ValueError("ceiling equals weak accuracy: PGR is undefined")
    return (transfer - weak) / gap


def pgr_estimate(transfer: Sequence[float], weak: Estimate, ceiling: Estimate) -> Estimate:
    """PGR per transfer seed against the reference means, with first-order error propagation.

    The SE combines the spread of the transfer seeds with the uncertainty of the two
    reference means (delta method on (t - w) / (c - w)).
    """
    t = np.asarray(list(transfer), dtype=float)
    per_seed = [pgr(x, weak.mean, ceiling.mean) for x in t]
    base = estimate(per_seed)
    gap = ceiling.mean - weak.mean
    t_mean = float(t.mean())
    d_weak = (t_mean - ceiling.mean) / gap**2  # d PGR / d weak
    d_ceil = -(t_mean - weak.mean) / gap**2  # d PGR / d ceiling
    se = math.sqrt(base.se**2 + (d_weak * weak.se) ** 2 + (d_ceil * ceiling.se) ** 2)
    return Estimate(base.mean, se, base.seeds)


@dataclass(frozen=True)
class PGRInterval:
    """A PGR (or a PGR difference) with its paired-bootstrap spread.

    ``mean`` is the point estimate on all rows and seeds; ``se`` the bootstrap standard deviation;
    ``lo``/``hi`` the 2.5 % and 97.5 % bootstrap percentiles.
    """

    mean: float
    se: float
    lo: float
    hi: float
    n_rows: int
    seeds: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "se": self.se, "ci95": [self.lo, self.hi],
                "n_rows": self.n_rows, "seeds": self.seeds}

    @property
    def above_zero(self) -> bool:
        """True when the whole 95 % interval lies above 0 (how a win or a gap is called)."""
        return self.lo > 0

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def bootstrap_pgr(truth, weak_preds, ceiling_preds, transfer_preds, rows_mask=None,
                  n_boot: int = 2000, seed: int = 0, groups=None,
                  one_draw: bool = False) -> PGRInterval:
    """PGR with a paired bootstrap over test rows and seeds.

    ``*_preds`` are class indices, one row per seed: shape (S, N) (a single (N,) vector is one
    seed). Each replicate draws the test rows once with replacement, shared by the weak, ceiling
    and transfer predictions (paired: the row noise common to all three cancels), and draws each
    prediction set's seeds with replacement (so seed noise is included); its PGR uses the
    seed-mean accuracies. ``groups`` (one id per row, e.g. a consistency id) resamples whole
    groups instead of rows, for rows that are not independent. ``one_draw``: the transfer is
    one of its rows drawn at random per replicate, not their mean (``vote_draws``: a vote).
    """
    return _bootstrap(truth, {"w": weak_preds, "c": ceiling_preds, "t": transfer_preds},
                      lambda a: _pgr_arr(a["t"], a["w"], a["c"]), rows_mask, n_boot, seed, groups,
                      seeds=_n_seeds(transfer_preds), one_draw=("t",) if one_draw else ())


def bootstrap_pgr_diff(truth, weak_preds, ceiling_preds, a_preds, b_preds, rows_mask=None,
                       n_boot: int = 2000, seed: int = 0, groups=None,
                       one_draw: bool = False) -> PGRInterval:
    """PGR(a) − PGR(b) on the same resampled rows (see ``bootstrap_pgr``).

    A is better than B when the interval lies above 0 (``.above_zero``). When a and b have as
    many seeds, row i of each is taken to come from the same seed (the same teacher's labels)
    and the seeds are resampled together too: a method identical to b then differs by exactly
    0, instead of by the spread of two independent seed draws (±0.15 PGR on nyt's 650 final
    rows for a guard that fell back to weak_soft).
    """
    def diff(acc):
        return _pgr_arr(acc["a"], acc["w"], acc["c"]) - _pgr_arr(acc["b"], acc["w"], acc["c"])

    return _bootstrap(truth, {"w": weak_preds, "c": ceiling_preds, "a": a_preds, "b": b_preds},
                      diff, rows_mask, n_boot, seed, groups,
                      seeds=min(_n_seeds(a_preds), _n_seeds(b_preds)),
                      paired=("a", "b") if _n_seeds(a_preds) == _n_seeds(b_preds) else (),
                      one_draw=("a", "b") if one_draw else ())


def majority_vote(preds, n_classes: int) -> np.ndarray:
    """Per-row majority class over seeds (rows of ``preds``); a tie goes to the lower class;
    a row no seed predicted (-1 everywhere: a recorded table that missed it) stays -1."""
    preds = np.atleast_2d(np.asarray(preds))
    counts = np.stack([(preds == k).sum(0) for k in range(max(n_classes, 1))])
    return np.where(counts.sum(0) > 0, counts.argmax(0), -1)


def vote_draws(preds, k: int, n_classes: int | None = None) -> np.ndarray:
    """The majority vote of every ordered draw of ``k`` of the seeds (rows of ``preds``, with
    replacement): shape (S**k, N). Picking one of them uniformly is a vote of ``k`` seeds drawn
    at random, so as the "seeds" of a bootstrap they put the seed noise of a *vote* (what a
    researcher submits) into its interval; two methods run on the same seeds, both expanded,
    share each draw (``bootstrap_pgr_diff`` pairs them)."""
    preds = np.atleast_2d(np.asarray(preds))
    n_seeds = preds.shape[0]
    n_classes = int(preds.max()) + 1 if n_classes is None else n_classes
    if k < 1 or n_seeds ** k > 4096:
        raise ValueError(f"a vote of k={k} of {n_seeds} seeds: k must be at least 1, and "
                         f"seeds**k (the draws) at most 4096")
    draws = np.stack(np.meshgrid(*[np.arange(n_seeds)] * k, indexing="ij"), -1).reshape(-1, k)
    return np.stack([majority_vote(preds[d], n_classes) for d in draws])


def bootstrap_gap(truth, weak_preds, ceiling_preds, rows_mask=None, n_boot: int = 2000,
                  seed: int = 0, groups=None) -> PGRInterval:
    """Ceiling − weak accuracy with the same paired bootstrap: the gap a student can recover."""
    return _bootstrap(truth, {"w": weak_preds, "c": ceiling_preds}, lambda a: a["c"] - a["w"],
                      rows_mask, n_boot, seed, groups, seeds=_n_seeds(ceiling_preds))


def _n_seeds(preds) -> int:
    return int(np.atleast_2d(np.asarray(preds)).shape[0])


def _pgr_arr(t: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
    gap = c - w
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(gap) > 1e-12, (t - w) / gap, np.nan)


_CHUNK = 256  # replicates per block: bounds memory at _CHUNK x n_groups counts


def _bootstrap(truth, sets: dict, stat, rows_mask, n_boot: int, seed: int, groups,
               seeds: int, paired: tuple[str, ...] = (),
               one_draw: tuple[str, ...] = ()) -> PGRInterval:
    truth = np.asarray(truth)
    if truth.ndim != 1 or truth.size == 0:
        raise ValueError(f"truth must be a non-empty vector of labels, got shape {truth.shape}")
    mask = np.ones(truth.shape, bool) if rows_mask is None else np.asarray(rows_mask, bool)
    if mask.shape != truth.shape:
        raise ValueError(f"rows_mask has shape {mask.shape}, labels {truth.shape}")
    if not mask.any():
        raise ValueError("rows_mask selects no rows")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    # Correct counts per (seed, group) and rows per group: a row is a group of one by default.
    if groups is None:
        gid = np.arange(int(mask.sum()))
    else:
        g = np.asarray(groups)
        if g.shape != truth.shape:
            raise ValueError(f"groups has shape {g.shape}, labels {truth.shape}")
        gid = np.unique(g[mask], return_inverse=True)[1].ravel()
    n_groups = int(gid.max()) + 1
    sizes = np.bincount(gid, minlength=n_groups).astype(float)
    correct = {}
    for name, p in sets.items():
        p = np.atleast_2d(np.asarray(p))
        if p.shape[1] != truth.size:
            raise ValueError(f"predictions have {p.shape[1]} rows per seed, labels {truth.size}")
        hits = (p[:, mask] == truth[mask]).astype(float)
        correct[name] = np.stack([np.bincount(gid, weights=h, minlength=n_groups) for h in hits])

    point = float(stat({k: v.sum(1).mean() / sizes.sum() for k, v in correct.items()}))
    rng = np.random.default_rng(seed)
    reps = []
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        draw = rng.integers(0, n_groups, (b, n_groups))
        counts = np.bincount((draw + n_groups * np.arange(b)[:, None]).ravel(),
                             minlength=b * n_groups).reshape(b, n_groups).astype(float)
        rows = counts @ sizes
        acc, shared = {}, None
        for name, c in correct.items():
            per_seed = counts @ c.T / rows[:, None]  # (b, S)
            # S seeds resampled for a mean over seeds; one for a set in `one_draw` (a vote)
            pick = rng.integers(0, c.shape[0], (b, 1 if name in one_draw else c.shape[0]))
            if name in paired:  # the sets in `paired` draw the same seeds
                shared = pick if shared is None else shared
                pick = shared
            acc[name] = np.take_along_axis(per_seed, pick, 1).mean(1)
        reps.append(stat(acc))
    r = np.concatenate(reps)
    r = r[np.isfinite(r)]
    if r.size == 0:
        raise ValueError("ceiling equals weak accuracy in every bootstrap replicate: "
                         "PGR is undefined")
    lo, hi = np.percentile(r, [2.5, 97.5])
    return PGRInterval(point, float(r.std(ddof=1)) if r.size > 1 else 0.0, float(lo), float(hi),
                       int(mask.sum()), seeds)
