"""A suite lab's headline: the method best across tasks, not on one task's quirks.

The pick is the method (its submitted ``method`` string) whose mean *feedback*-half PGR over the
suite's tasks is highest, among methods submitted on every task (if none covers all of them,
those covering the most) and not below copying the teacher on any of them when any such method
exists: the floor on a task is the feedback PGR of ``weak_soft`` there (the plain W2S student
every search researcher submits first), or 0 (the teacher) where it was not submitted. A method
that beats the teacher on average but loses to it on one task is what does not travel
(``bench/suite_select.py``: with the ``weak_soft`` floor the rule's pick beat ``weak_soft`` on
every held-out task; with only PGR >= 0 a suite lab picked a method 0.06 below ``weak_soft`` on
reviews' final half). On each task its submission is the best by the
Ladder's rank (``headline.rank``). It is reported on the *final* halves, which played no part
in choosing.

The suite mean's interval combines the per-task paired bootstraps: the tasks' test rows are
independent draws, so the mean of T per-task PGRs has SE = sqrt(sum of the tasks' SE^2) / T, and
its 95% interval is mean +- 1.96 SE. The same holds for the difference from the tuned baseline.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

from aarlab.lab import headline

Z95 = 1.96
BASELINE = "weak_soft"  # the method string of plain W2S on the teacher's soft labels


def best_per_task(subs: Sequence) -> dict[str, dict[str, object]]:
    """{method: {task: its best submission there}} over non-probe submissions with a method."""
    out: dict[str, dict[str, object]] = defaultdict(dict)
    for x in subs:
        if x.is_probe or not x.method:
            continue
        mine = out[x.method]
        if x.task not in mine or headline.rank(x) > headline.rank(mine[x.task]):
            mine[x.task] = x
    return dict(out)


def pick_method(subs: Sequence, tasks: Sequence[str]) -> tuple[str | None, dict]:
    """(method, {task: submission}) with the best suite mean of feedback-half PGR."""
    table = best_per_task(subs)
    if not table:
        return None, {}
    cover = max(sum(t in by for t in tasks) for by in table.values())

    def feedback_mean(by: dict) -> float:
        return sum(by[t].pgr_feedback for t in tasks if t in by) / cover

    candidates = [(m, by) for m, by in table.items() if sum(t in by for t in tasks) == cover]
    floor = {t: max(0.0, x.pgr_feedback) if x.pgr_feedback is not None else 0.0
             for t, x in table.get(BASELINE, {}).items()}
    candidates = [(m, by) for m, by in candidates
                  if all(x.pgr_feedback >= floor.get(t, 0.0) for t, x in by.items())] \
        or candidates
    method, by = max(candidates, key=lambda mb: (feedback_mean(mb[1]), mb[0]))
    return method, {t: by[t] for t in tasks if t in by}


def combine(rows: Sequence[dict | None]) -> dict | None:
    """Mean of per-task ``{mean, se}`` with the combined SE and a normal 95% interval; None
    unless every task has one."""
    if not rows or any(r is None or r.get("mean") is None for r in rows):
        return None
    n = len(rows)
    mean = sum(r["mean"] for r in rows) / n
    se = math.sqrt(sum((r.get("se") or 0.0) ** 2 for r in rows)) / n
    return {"mean": mean, "se": se, "ci95": [mean - Z95 * se, mean + Z95 * se], "tasks": n}


def suite_summary(subs: Sequence, tasks: Sequence[str],
                  measure: Callable[[str, object | None], dict]) -> dict:
    """The suite headline. ``measure(task, submission or None) -> dict`` gives a task's row
    (lab-owner code with the answer key): ``pick`` {mean, se, ci95} of the submission's final
    PGR, ``tuned`` the tuned baseline's, ``diff`` their paired difference, each or None."""
    method, by_task = pick_method(subs, tasks)
    per_task = {}
    for t in tasks:
        x = by_task.get(t)
        row = measure(t, x)
        per_task[t] = {"submission_id": x.id if x else None,
                       "feedback_pgr": x.pgr_feedback if x else None,
                       "released_pgr": headline.own_released(x) if x else None, **row}
    feedback = [per_task[t]["feedback_pgr"] for t in tasks]
    return {
        "tasks": list(tasks), "method": method,
        "covered": [t for t in tasks if t in by_task],
        "rule": "the method with the best mean feedback-half PGR over the suite's tasks "
                "(among those submitted on every task, and not below weak_soft, nor the weak "
                "teacher, on any task's feedback half when one such exists), reported on the "
                "final halves",
        "feedback_mean": (sum(feedback) / len(feedback)) if None not in feedback else None,
        "per_task": per_task,
        "final_mean": combine([per_task[t].get("pick") for t in tasks]),
        "tuned_mean": combine([per_task[t].get("tuned") for t in tasks]),
        "diff_mean": combine([per_task[t].get("diff") for t in tasks]),
    }


def suite_win(summary: dict) -> bool:
    d = summary.get("diff_mean")
    return bool(d and d["ci95"][0] > 0)
