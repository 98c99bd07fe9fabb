"""The tuned classical baseline: what a researcher with no ideas of its own gets from the library.

It has exactly a researcher's means: each library method's documented parameters varied one at a
time (:func:`candidate_specs`), every candidate ranked by a label-free signal computed from the
kit alone (``aarlab.w2s.signals``), the best ``submissions`` of them sent, in that order, to the
release rule the scoring server runs (its paired Ladder, its probe rule), and the one with the
best *released* feedback score chosen, as the lab chooses its own pick. It is then reported on
the final half.
Pure functions over candidate records; running the candidates is :mod:`aarlab.lab.baselines`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aarlab.config import Settings
from aarlab.errors import SpecError
from aarlab.scoring.ladder import Ladder, PairedLadder
from aarlab.scoring.probes import threshold
from aarlab.w2s.methods import SCALAR_TYPES, describe
from aarlab.w2s.spec import MethodSpec, parse_spec

# The signal the candidates are ranked by: the search researcher's own selection score
# (kNN smoothness + held-out weak agreement, aarlab.w2s.signals), so the baseline chooses as a
# researcher would; held-out weak agreement alone ranks the library at Spearman ~0.03.
SIGNAL = "selection"


def candidate_specs() -> list[MethodSpec]:
    """Every method at its defaults, then each documented parameter moved on its own, then
    each method at its defaults as a transductive spec.

    Numbers take two values on either side of the default (halved and doubled, or halfway to
    the end of a [0, 1] range), choices and flags every other value. One at a time keeps the
    grid near 140 specs: a few minutes on the default task, like a researcher's first hour.

    Why the transductive forms: ``transductive`` is a documented flag of every spec, and label
    propagation over a graph that holds the test rows (Zhou et al. 2004) is a classical method.
    A lab that may flip it is compared with a baseline that may too (like with like): on
    snli-pref it lifts the tuned baseline's final PGR from 0.571 to 0.973 (3-seed votes; methods
    README, "Like with like").
    """
    out: list[MethodSpec] = []
    for m in describe():
        out.append(parse_spec({"method": m["name"]}))
        for p in m["params"]:
            for v in _alternatives(p):
                try:
                    out.append(parse_spec({"method": m["name"], "params": {p["name"]: v}}))
                except SpecError:  # a value just outside an open range: skip it
                    continue
    out += [parse_spec({"steps": [{"method": m["name"]}], "transductive": True})
            for m in describe()]
    seen, unique = set(), []
    for s in out:
        key = s.label
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


def _alternatives(p: dict) -> list:
    d = p["default"]
    if p["type"] not in SCALAR_TYPES:  # a mapping: not one parameter
        return []
    if p["type"] == "choice":
        return [c for c in p["choices"] if c != d]
    if p["type"] == "bool":
        return [not d]
    lo, hi = p.get("min"), p.get("max")
    if p["type"] == "int":
        vals = [max(1, d // 2), d * 2] if d else [1, 2]
    elif hi is not None and hi <= 1:
        vals = [d / 2, (d + hi) / 2] if d else [hi / 4]
    else:
        vals = [d / 2, d * 2] if d else [(hi if hi is not None else 1.0) / 10]
    if lo is not None:
        vals = [max(lo, v) for v in vals]
    if hi is not None:
        vals = [min(hi, v) for v in vals]
    vals = [round(v, 6) if isinstance(v, float) else v for v in vals]
    return sorted({v for v in vals if v != d}, key=vals.index)


def researcher_submissions(settings: Settings, lab_budget_s: float | None = None,
                           max_submissions: int | None = None) -> int:
    """Scored submissions one researcher may make: the server's budgets over the lab's wall time
    (an hour when not given), capped by the lab's own per-researcher limit."""
    hours = max(1, math.ceil((lab_budget_s or 3600) / 3600))
    n = min(settings.submissions_per_hour * hours, settings.submissions_total)
    return min(n, max_submissions) if max_submissions is not None else n


@dataclass(frozen=True)
class Candidate:
    """One run spec as the tuner sees it: its signal, its vote, and the feedback PGR the server
    would compute from that vote (what the Ladder releases from)."""

    index: int
    signal: float
    vote: np.ndarray
    pgr_feedback: float


@dataclass(frozen=True)
class Choice:
    index: int  # the chosen candidate
    submitted: list[int]  # candidates sent, in order
    released: list[float | None]  # the released score after each


# release(candidate) -> (released feedback score after it is sent, whether it raised the
# release): the server's rule, with its state (the best so far); see ``server_release``.
Release = Callable[["Candidate"], tuple[float | None, bool]]


def ladder_release(ladder: Ladder) -> Release:
    """The fixed-step Ladder on feedback PGR, as a stateful release function."""
    best: list[float | None] = [None]

    def release(c: Candidate) -> tuple[float | None, bool]:
        best[0], new = ladder.release(best[0], c.pgr_feedback)
        return best[0], new
    return release


def server_release(settings: Settings, scorer, floor: np.ndarray) -> Release:
    """The scoring server's paired Ladder, for one researcher alone on the task: a candidate is
    released when it beats the last released one row by row on the feedback half (the weak
    teacher's own predictions, ``floor``, before any release), as ``ScoringService`` rules."""
    m = scorer.masks["feedback"]
    weak, ceiling = scorer.weak["feedback"].mean, scorer.ceiling["feedback"].mean
    ladder = PairedLadder(int(m.sum()), weak, ceiling - weak, settings.ladder_safety,
                          settings.ladder_min_step_se)
    state: dict = {"ref": np.asarray(floor), "shown": None}

    def correct(pred: np.ndarray) -> np.ndarray:
        return (np.asarray(pred)[m] == scorer.truth[m]).astype(np.int8)

    def release(c: Candidate) -> tuple[float | None, bool]:
        new = ladder.compare(correct(c.vote), correct(state["ref"])).released
        if new:
            state["ref"], state["shown"] = c.vote, ladder.round(c.pgr_feedback)
        return state["shown"], new
    return release


def choose(cands: list[Candidate], submissions: int, release: Release, probe_limit: int,
           veto: Callable[[np.ndarray], bool] | None = None) -> Choice:
    """Send the ``submissions`` best candidates by signal to the server's release rule, best
    first; then choose as the lab's headline chooses its own pick (``aarlab.lab.headline``):
    released submissions first, by released score, the rest by feedback PGR, skipping any that
    ``veto`` (the final half's one-sided check) rejects.

    A candidate within ``probe_limit`` rows of one already sent is skipped, as the search
    researcher skips it (the server would flag it as a probe and release nothing).
    """
    if not cands:
        raise ValueError("no candidates to choose from")
    order = sorted(cands, key=lambda c: (-c.signal, c.index))
    sent: list[Candidate] = []
    released: list[float | None] = []
    raised: list[bool] = []
    for c in order:
        if len(sent) >= submissions:
            break
        if any(int((c.vote != s.vote).sum()) < probe_limit for s in sent):
            continue
        shown, new = release(c)
        sent.append(c)
        released.append(shown)
        raised.append(new)
    if not sent:  # a zero budget: the researcher would submit its best guess by signal alone
        return Choice(order[0].index, [], [])

    def rank(k: int) -> tuple:
        own = raised[k] and released[k] is not None
        return (own, released[k] if own else 0.0, sent[k].pgr_feedback)

    ranked = sorted(range(len(sent)), key=rank, reverse=True)
    kept = [k for k in ranked if veto is None or not veto(sent[k].vote)]
    best = (kept or ranked)[0]
    return Choice(sent[best].index, [c.index for c in sent], released)


def probe_limit(settings: Settings, n_rows: int) -> int:
    return threshold(n_rows, settings.probe_min_rows, settings.probe_min_fraction)
