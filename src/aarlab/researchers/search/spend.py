"""When a submission the Ladder cannot resolve is still worth its budget. Pure, label-free.

On a small task (a 151-row feedback half) almost no gain is resolvable (``resolve.py``), so a
researcher that submits only resolvable gains stops submitting while its budget would let it
try its top candidates, as the tuned baseline does. A scored submission still says something
there: the server's paired verdict against the best so far, and the lab's choice among a
researcher's submissions is made on the feedback half, which the researcher cannot see. So
when the label-free ranking cannot separate two candidates that disagree on many rows, the
scored one is the only way to tell them apart. The rule submits such a tie when

- its selection score is within ``tie_band`` of the best known score (the ranking's own noise),
- it departs from every earlier submission on at least ``DISTINCT_SHARE`` of the test rows (a
  near-copy says nothing new, and the server flags near-copies as probes), and
- the paced allowance is not used up (``allowance``): ties never take more than half of the
  server's hourly budget, released over the lab's first hour, so resolvable gains found later
  still have room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:  # the server's published default, as resolve.py reads the Ladder's
    from aarlab.config import Settings

    PER_HOUR = int(Settings.model_fields["submissions_per_hour"].default)
except Exception:  # pragma: no cover - config is part of the package
    PER_HOUR = 60

DISTINCT_SHARE = 0.10  # of test rows: "disagree on many rows"
DISTINCT_ROWS = 20  # and never fewer rows than this (the server's probe rule is 10 or 1 %)
TIE_Z = 2.0  # a score within 2 SE of the best difference is a tie
SHARE_OF_BUDGET = 0.5  # ties use at most half of the hourly submissions
OPEN_SHARE = 0.25  # of that half, available from the start (the first label-free candidates)
HOUR = 3600.0


def tie_band(signals: dict[str, float], n_test: int, n_heldout: int,
             teacher_free: bool = False) -> float:
    """TIE_Z standard errors of the difference of two specs' selection scores.

    smoothness is a share of ``n_test`` rows and heldout_agree of ``n_heldout`` rows, so each
    has a binomial SE sqrt(p(1 − p)/n); a difference of two independent scores has √2 times
    the SE of one. Treating the specs as independent makes the band wide, which is the safe
    side: a wider band only means more candidates count as ties. Without a teacher the score is
    smoothness alone (``teacher.task_score``)."""
    var = 0.0
    s = signals.get("smoothness")
    if s is not None:
        var += s * (1 - s) / max(1, n_test)
    a = signals.get("heldout_agree")
    if a is not None and not teacher_free:
        var += a * (1 - a) / max(1, n_heldout)
    return TIE_Z * math.sqrt(2 * var)


def distinct(pred: np.ndarray, submitted: list[np.ndarray], share: float = DISTINCT_SHARE,
             rows: int = DISTINCT_ROWS) -> bool:
    """Does ``pred`` depart from every earlier submission on many rows?"""
    limit = max(rows, math.ceil(share * len(pred)))
    return all(int((np.asarray(pred) != old).sum()) >= limit for old in submitted)


def allowance(elapsed_s: float, lab_s: float, per_hour: int = PER_HOUR) -> int:
    """Tie submissions allowed in the current hour: SHARE_OF_BUDGET of the hourly budget, an
    OPEN_SHARE of it from the start and the rest pro rata over the lab's first hour (or over
    the whole lab when it is shorter), so the first candidates go in and later ones still can."""
    horizon = max(1.0, min(lab_s, HOUR))
    share = min(1.0, max(OPEN_SHARE, elapsed_s / horizon))
    return math.floor(SHARE_OF_BUDGET * per_hour * share)


@dataclass(frozen=True)
class Spend:
    ok: bool
    why: str


def decide(score: float, best: float, band: float, pred: np.ndarray,
           submitted: list[np.ndarray], used_this_hour: int, allowed: int) -> Spend:
    """Submit a tie the Ladder cannot resolve? (The regression guard and the submission budget
    are checked before, by the caller.)"""
    if score < best - band:
        return Spend(False, f"not a tie with the best known score {best:.4f} (band "
                            f"{band:.4f}: the ranking can tell them apart)")
    if not distinct(pred, submitted):
        return Spend(False, f"a tie, but within {DISTINCT_SHARE:.0%} of the rows of an earlier "
                            "submission (it would say nothing new)")
    if used_this_hour >= allowed:
        return Spend(False, f"a tie, but the paced allowance for ties is used ({used_this_hour}"
                            f" of {allowed} this hour)")
    return Spend(True, f"a tie with the best known score {best:.4f} (within {band:.4f}) that "
                       f"departs from every earlier submission on at least "
                       f"{DISTINCT_SHARE:.0%} of rows: only a scored submission can tell "
                       f"them apart ({used_this_hour + 1} of {allowed} ties this hour)")
