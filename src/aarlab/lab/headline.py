"""Which submission the lab reports as its headline: a rule an adaptive climber cannot win.

Each researcher's pick is their highest *released* submission (the Ladder's, on the feedback
half) whose gain over the weak teacher on the *final* half is consistent with its gain on the
feedback half: a pick whose feedback gain exceeds its final gain by more than ``z`` standard
errors of that difference is vetoed (an audit finding) and the next release is tried. The lab's
headline is the best pick by released score. The final half enters only as this one-sided
veto, never as a score to maximise, so the reported final-part PGR of an honest pick keeps its
meaning (an honest pick is vetoed with probability about P(Z > z) = 2.3 %), while a climber,
whose released gain lives on the feedback rows alone, is vetoed.

Gains are accuracy over the weak teacher's own predictions, paired row by row so the noise of
the rows both share cancels: SE of a part's gain = sd(correct - weak correct) / sqrt(rows). They
are compared in accuracy, not PGR: each part's PGR divides by that part's own measured gap, and
on a small task the two gaps differ by a factor of 3 or more, which would veto honest picks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z = 2.0


@dataclass(frozen=True)
class Check:
    feedback_gain: float  # accuracy - the weak teacher's accuracy, on the feedback rows
    final_gain: float  # the same on the final rows
    se: float  # of feedback_gain - final_gain
    vetoed: bool

    def as_dict(self) -> dict:
        return {"feedback_gain": self.feedback_gain, "final_gain": self.final_gain,
                "se": self.se, "shortfall_se": (self.feedback_gain - self.final_gain) /
                self.se if self.se else None}


@dataclass(frozen=True)
class Parts:
    """What the check needs of a task: truth, the weak teacher's predictions, part masks."""

    truth: np.ndarray
    weak: np.ndarray
    masks: dict[str, np.ndarray]
    scorer: object | None = None  # this build's Scorer (None: builds told apart by size only)

    def check(self, pred: np.ndarray, z: float = Z) -> Check:
        gain, var = {}, {}
        for part in ("feedback", "final"):
            m = self.masks[part]
            d = (pred[m] == self.truth[m]).astype(float) - (self.weak[m] == self.truth[m])
            gain[part] = float(d.mean())
            var[part] = float(d.var(ddof=1)) / m.sum() if m.sum() > 1 else 0.0
        se = math.sqrt(var["feedback"] + var["final"])
        short = gain["feedback"] - gain["final"]
        return Check(gain["feedback"], gain["final"], se, short > z * se and short > 0)


def pick(candidates: list, check) -> tuple[object | None, list[tuple[object, Check]]]:
    """The first candidate (in the order given: best released first) that ``check`` does not
    veto, and the vetoed ones before it with their checks."""
    vetoed = []
    for c in candidates:
        result = check(c)
        if not result.vetoed:
            return c, vetoed
        vetoed.append((c, result))
    return None, vetoed


def task_parts(kit, key) -> Parts:
    """``Parts`` of a built task (``kit``: TaskKit, ``key``: AnswerKey; lab-owner code only)."""
    from aarlab.tasks.scorer import Scorer

    ids = kit.ids("test")
    masks = {p: np.isin(ids, key.parts[p]) for p in ("feedback", "final")}
    return Parts(key.labels("test", ids), kit.weak_probs("test", 0).argmax(1), masks,
                 Scorer(key, ids))


def rank(sub) -> tuple:
    """Best first: released by the Ladder (or an exact copy of a release), by released score;
    then the rest by their feedback score (never shown, but feedback is where choices belong).
    Last, the earlier submission: an exact copy of a release gets its score, so with later
    copies winning ties any sandbox could copy the lab's best predictions under a spec of its
    own choosing and have that spec reported and replicated as the lab's pick. A copy of an
    unreleased submission gets nothing: its stored score is what that one's author was told
    (with no release of their own, the lab's best), never a score either of them earned."""
    own = own_released(sub)
    return (own is not None, own if own is not None else 0.0, sub.pgr_feedback, -(sub.id or 0))


def own_released(sub) -> float | None:
    """The released PGR ``sub`` earned: its own release, or that of the release it copies
    exactly; None for anything else (a probe, or an answer repeating someone else's score)."""
    own = sub.new_best or (bool(getattr(sub, "repeats_release", False))
                           and sub.probe_of is not None and not sub.is_probe)
    return sub.released_pgr if own else None


def choose(subs: list, parts: Parts | None, z: float = Z) -> tuple[object | None, list[dict]]:
    """A researcher's pick among their submissions (probes excluded), and the vetoed ones as
    audit rows. Without ``parts`` (no answer key) nothing can be checked or vetoed."""
    from aarlab.scoring.builds import same_build
    from aarlab.scoring.probes import unpack

    candidates = sorted((x for x in subs if not x.is_probe), key=rank, reverse=True)
    if parts is None:
        return (candidates[0] if candidates else None), []

    def check(x) -> Check:
        if not (same_build(x, parts.scorer) if parts.scorer is not None
                else x.n_rows == len(parts.truth)):  # rebuilt since: scored on other rows
            return Check(0.0, 0.0, 0.0, False)
        return parts.check(unpack(x.predictions, x.n_rows), z)

    chosen, vetoed = pick(candidates, check)
    return chosen, [{"submission_id": x.id, "researcher_id": x.researcher_id,
                     "released_pgr": x.released_pgr, "final_pgr": x.pgr_final,
                     **c.as_dict(), "evidence": f"submission {x.id}: accuracy over the weak "
                     f"teacher {c.feedback_gain:+.3f} on feedback, {c.final_gain:+.3f} on final "
                     f"(more than {z:g} SE apart)"} for x, c in vetoed]
