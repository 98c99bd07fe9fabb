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

import itertools
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
                  vote_of: int | None = None) -> PGRInterval:
    """PGR with a paired bootstrap over test rows and seeds.

    ``*_preds`` are class indices, one row per seed: shape (S, N) (a single (N,) vector is one
    seed). Each replicate draws the test rows once with replacement, shared by the weak, ceiling
    and transfer predictions (paired: the row noise common to all three cancels), and draws each
    prediction set's seeds with replacement (so seed noise is included); its PGR uses the
    seed-mean accuracies. ``groups`` (one id per row, e.g. a consistency id) resamples whole
    groups instead of rows, for rows that are not independent. ``vote_of=k``: the transfer is
    a majority vote of ``k`` of its seeds, not one seed (see ``_VoteSet``).
    """
    return _bootstrap(truth, {"w": weak_preds, "c": ceiling_preds, "t": transfer_preds},
                      lambda a: _pgr_arr(a["t"], a["w"], a["c"]), rows_mask, n_boot, seed, groups,
                      seeds=_n_seeds(transfer_preds), votes={"t": vote_of} if vote_of else {})


def bootstrap_pgr_diff(truth, weak_preds, ceiling_preds, a_preds, b_preds, rows_mask=None,
                       n_boot: int = 2000, seed: int = 0, groups=None,
                       vote_of: int | None = None) -> PGRInterval:
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
                      votes={"a": vote_of, "b": vote_of} if vote_of else {})


def majority_vote(preds, n_classes: int) -> np.ndarray:
    """Per-row majority class over seeds (rows of ``preds``); a tie goes to the lower class;
    a row no seed predicted (-1 everywhere: a recorded table that missed it) stays -1."""
    preds = np.atleast_2d(np.asarray(preds))
    counts = np.stack([(preds == k).sum(0) for k in range(max(n_classes, 1))])
    return np.where(counts.sum(0) > 0, counts.argmax(0), -1)


class _VoteSet:
    """A method's votes of ``k`` distinct seeds, for a bootstrap. Each replicate resamples its S
    seeds with replacement (shared with a paired method: the same teachers) and averages the
    accuracy of the votes of every ``k`` positions of the resample that hold ``k`` distinct
    seeds; a replicate with fewer than ``k`` distinct seeds is dropped. On the original seeds
    that is the mean over every vote of ``k`` distinct seeds, so the interval is for the PGR a
    vote of ``k`` seeds has in expectation over seeds, with the row noise and the seed noise in
    it; a submitted vote is one such vote. Positions that repeat a seed are left out rather than
    voted: (a, a, b) would be seed a alone, a vote of fewer seeds, biased against whichever
    method gains more from voting."""

    def __init__(self, seeds: int, k: int):
        if k < 1 or seeds < k:
            raise ValueError(f"a vote of {k} seeds needs at least {k} seeds, got {seeds}")
        if math.comb(seeds, k) > 2048:
            raise ValueError(f"votes of {k} of {seeds} seeds: too many; use fewer seeds")
        self.seeds, self.k = seeds, k
        self.votes = list(itertools.combinations(range(seeds), k))  # each of k distinct seeds
        self.positions = np.array(self.votes)
        self._place = np.full(seeds ** k, -1, dtype=np.int64)
        self._place[self._code(self.positions)] = np.arange(len(self.votes))

    def _code(self, sorted_seeds: np.ndarray) -> np.ndarray:
        return sorted_seeds @ (self.seeds ** np.arange(self.k - 1, -1, -1))

    def mean_accuracy(self, per_vote: np.ndarray, resample: np.ndarray) -> np.ndarray:
        """(b,) mean accuracy over the distinct-seed votes of each resample (b, S); NaN for a
        resample with fewer than ``k`` distinct seeds."""
        drawn = np.sort(resample[:, self.positions], axis=2)  # (b, C(S, k), k)
        ok = (np.diff(drawn, axis=2) > 0).all(2)
        where = np.where(ok, self._place[self._code(drawn)], 0)
        acc = np.take_along_axis(per_vote, where, 1)
        with np.errstate(invalid="ignore"):
            return np.where(ok, acc, 0.0).sum(1) / ok.sum(1)


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
               votes: dict[str, int] | None = None) -> PGRInterval:
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
    correct, vote_sets = {}, {}
    for name, p in sets.items():
        p = np.atleast_2d(np.asarray(p))
        if p.shape[1] != truth.size:
            raise ValueError(f"predictions have {p.shape[1]} rows per seed, labels {truth.size}")
        if votes and votes.get(name):
            vote_sets[name] = v = _VoteSet(p.shape[0], votes[name])
            n_classes = int(max(p.max(), truth.max())) + 1
            hits = np.stack([majority_vote(p[list(m)][:, mask], n_classes) == truth[mask]
                             for m in v.votes]).astype(float)
        else:
            hits = (p[:, mask] == truth[mask]).astype(float)
        correct[name] = np.stack([np.bincount(gid, weights=h, minlength=n_groups) for h in hits])

    # A vote set's rows are its votes: the point is their mean, as the mean over seeds otherwise.
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
            per_seed = counts @ c.T / rows[:, None]  # (b, S), or (b, its votes) for a vote set
            n_seeds = vote_sets[name].seeds if name in vote_sets else c.shape[0]
            pick = rng.integers(0, n_seeds, (b, n_seeds))  # the seeds, resampled
            if name in paired:  # the sets in `paired` draw the same seeds
                shared = pick if shared is None else shared
                pick = shared
            if name in vote_sets:
                acc[name] = vote_sets[name].mean_accuracy(per_seed, pick)
            else:
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
