"""Choose a method across development tasks on their feedback halves; test where it travels.

    python bench/suite_select.py [--dev snli-pref,tweets,reviews,nyt] [--rule mean|maximin]
                                 [--out suite_select.json]

What a suite lab's pick rule does (``aarlab.lab.suite``), run as a bench over a fixed list of
candidates written down before measuring (``CANDIDATES``: the families that helped on both
snli-pref and tweets in the methods README's per-task table, and the held-out guard composed
with each of them). Every candidate runs on every kit seed of every development task. The pick
uses the *feedback* halves only (``pick``); only then are final halves read:

- *leave one task out*: each development task held out in turn, the pick made on the others'
  feedback halves and scored on the held-out task's final half against ``weak_soft`` (a paired
  bootstrap of the difference): does the *selection procedure* generalise to a task it never
  looked at;
- *the suite's pick*: chosen on every development task's feedback half, its final-part PGR per
  task beside ``weak_soft`` and the task's best default (the methods README's feedback-chosen
  baseline), with paired differences. ``bench/replicate.py --spec`` then replicates it on fresh
  teacher seeds and on tasks never used here; the script prints that command.

Lab-owner view: PGRs come from the answer key; the rule reads feedback halves only. Rows are
cached in ``--out`` (keyed by task and canonical spec), so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.lab.baselines import (
    BaselineCache,
    majority_vote,
    pick_on_feedback,
    run_spec,
    vote_seeds_for,
)
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.spec import parse_spec

GUARD = {"method": "guarded"}
# Written down before any of these compositions was measured on any task.
CANDIDATES: list[dict] = [
    {"method": "weak_soft"},
    {"method": "logconf"},
    {"method": "elr"},
    {"method": "product"},
    {"method": "probe_filter"},
    {"method": "confidence_filter"},
    GUARD,
    {"steps": [GUARD, {"method": "logconf"}]},
    {"steps": [GUARD, {"method": "elr"}]},
    {"steps": [GUARD, {"method": "product"}]},
    {"steps": [GUARD, {"method": "gce"}]},
    {"steps": [GUARD, {"method": "confidence_filter"}, {"method": "logconf"}]},
    {"steps": [{"method": "confidence_filter"}, {"method": "logconf"}]},
    {"steps": [{"method": "noisy_em"}, {"method": "gce"}]},
]


def vote(row: dict, part: str) -> dict:
    return (row.get("vote") or row)[f"pgr_{part}"]


class TaskRuns:
    """One development task: its kit, scorer, cached rows and the predictions behind them."""

    def __init__(self, task: str, cache: dict):
        settings = get_settings()
        self.kit = TaskKit(kit_dir(settings, task))
        self.key = AnswerKey(answer_key_dir(settings, task), self.kit.format)
        self.scorer = Scorer(self.key, self.kit.ids("test"))
        self.task, self.cache = task, cache.setdefault(task, {})
        self.threads = settings.torch_threads

    def row(self, spec: dict) -> dict:
        s = parse_spec(spec)
        name = json.dumps(s.canonical(), sort_keys=True)
        if name not in self.cache:
            t0 = time.monotonic()
            row, res = run_spec(self.kit, self.scorer, s, self.kit.seeds, threads=self.threads)
            row["preds"] = np.stack([res[k] for k in self.kit.seeds]).astype(int).tolist()
            row["wall_s"] = round(time.monotonic() - t0, 1)
            self.cache[name] = row
        return self.cache[name]

    def vote_preds(self, row: dict) -> np.ndarray:
        seeds = vote_seeds_for(self.kit.seeds) or self.kit.seeds
        return majority_vote(np.asarray(row["preds"])[: len(seeds)], self.kit.n_classes)

    def best_default(self) -> dict | None:
        rows = BaselineCache(self.kit, self.key).record.get("defaults")
        return pick_on_feedback(rows) if rows else None

    def diff(self, a: dict, b: dict) -> dict:
        """Paired final-half PGR difference of two rows' votes (bootstrap over test rows)."""
        return self.scorer.pgr_diff([self.vote_preds(a)], [self.vote_preds(b)], "final").as_dict()


def feedback_gain(rows: list[dict], floor: list[dict]) -> list[float]:
    return [vote(r, "feedback")["mean"] - vote(f, "feedback")["mean"]
            for r, f in zip(rows, floor, strict=True)]


def pick(table: list, floor: list[dict], on: list[int], rule: str) -> int:
    """Index of the chosen candidate using the feedback halves of tasks ``on`` only.

    ``mean``: the suite lab's rule (best mean feedback PGR among candidates at least as good
    as ``weak_soft`` on every feedback half). ``maximin``: the best worst-task feedback gain
    over ``weak_soft`` (never-below-the-teacher made the objective rather than a filter).
    """
    def gains(i: int) -> list[float]:
        rows = table[i][1]
        return feedback_gain([rows[j] for j in on], [floor[j] for j in on])
    idx = range(len(table))
    if rule == "maximin":
        return max(idx, key=lambda i: (min(gains(i)), np.mean(gains(i))))
    ok = [i for i in idx if min(gains(i)) >= 0] or list(idx)
    return max(ok, key=lambda i: np.mean(gains(i)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev", default="snli-pref,tweets,reviews,nyt")
    ap.add_argument("--rule", choices=("mean", "maximin"), default="mean")
    ap.add_argument("--out", default="suite_select.json")
    args = ap.parse_args()
    out = Path(args.out)
    cache = json.loads(out.read_text()) if out.exists() else {}
    tasks = [TaskRuns(t, cache) for t in args.dev.split(",")]
    table = []
    for spec in CANDIDATES:
        rows = []
        for t in tasks:
            rows.append(t.row(spec))
            out.write_text(json.dumps(cache))
        table.append((spec, rows))
    floor = table[0][1]  # weak_soft
    _candidates(tasks, table, floor)
    if len(tasks) > 2:
        _leave_one_out(tasks, table, floor)
    i = pick(table, floor, list(range(len(tasks))), args.rule)
    _report(tasks, table, floor, *table[i], args.rule)


def _leave_one_out(tasks: list[TaskRuns], table: list, floor: list[dict]) -> None:
    """Each task held out in turn: pick on the others' feedback halves, score it there."""
    print("\nLeave one task out: chosen on the other tasks' feedback halves, scored on the "
          "held-out task's final half (3-seed votes).\n")
    print("| held-out task | rule | pick | its final PGR there [95%] | weak_soft there | "
          "pick − weak_soft [95%] |")
    print("|---|---|---|---|---|---|")
    for h, t in enumerate(tasks):
        on = [j for j in range(len(tasks)) if j != h]
        for rule in ("mean", "maximin"):
            spec, rows = table[pick(table, floor, on, rule)]
            print(f"| {t.task} | {rule} | {parse_spec(spec).label} | "
                  f"{_ci(vote(rows[h], 'final'))} | {_ci(vote(floor[h], 'final'))} | "
                  f"{_ci(t.diff(rows[h], floor[h]))} |")


def _candidates(tasks: list[TaskRuns], table: list, floor: list) -> None:
    names = [t.task for t in tasks]
    print("| candidate | " + " | ".join(f"{n} feedback (vote)" for n in names)
          + " | mean feedback | worst gain over weak_soft | s / 5-seed run |")
    print("|---|" + "---|" * (len(names) + 3))
    for spec, rows in sorted(table, key=lambda sr: -np.mean([vote(r, "feedback")["mean"]
                                                              for r in sr[1]])):
        fb = [vote(r, "feedback")["mean"] for r in rows]
        print(f"| {parse_spec(spec).label} | " + " | ".join(f"{x:+.3f}" for x in fb)
              + f" | {np.mean(fb):+.3f} | {min(feedback_gain(rows, floor)):+.3f} | "
              + " / ".join(str(r.get("wall_s", "–")) for r in rows) + " |")


def _report(tasks: list[TaskRuns], table: list, floor: list, pick_spec: dict,
            pick_rows: list, rule: str) -> None:
    names = [t.task for t in tasks]
    label = parse_spec(pick_spec).label
    print(f"\npick on every task's feedback half ({rule}): **{label}**\n")
    print("| task | pick final PGR (vote) [95%] | weak_soft | pick − weak_soft | "
          "best default (feedback-chosen) | pick − best default |")
    print("|---|---|---|---|---|---|")
    for t, r, f in zip(tasks, pick_rows, floor, strict=True):
        best = t.best_default()
        bd = t.row(best["spec"]) if best else None
        print(f"| {t.task} | {_ci(vote(r, 'final'))} | {_ci(vote(f, 'final'))} | "
              f"{_ci(t.diff(r, f))} | "
              + (f"{best['method']} {_ci(vote(bd, 'final'))} | {_ci(t.diff(r, bd))} |"
                 if bd else "– | – |"))
    claim = pick_rows[0]["pgr_final"]["mean"]
    print(f"\nnext: python bench/replicate.py --redraw-seeds '' --task {names[0]} "
          f"--spec '{json.dumps(pick_spec)}' --claim {claim:.3f} --tasks <tasks not in --dev>")


def _ci(e: dict) -> str:
    lo, hi = e["ci95"]
    return f"{e['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


if __name__ == "__main__":
    main()
