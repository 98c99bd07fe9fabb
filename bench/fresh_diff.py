"""A pick against a baseline on teacher seeds no selection used, paired row by row.

    .venv/bin/python bench/fresh_diff.py --task snli-pref --spec PICK_JSON --against BASE_JSON
                                         [--tasks tweets,reviews]

A lab's win is measured on the final half of its task's test rows with the kit's teacher seeds,
the seeds its researchers and the tuned baseline's grid both selected on. This re-runs both
specs from scratch on the task's fresh teacher seeds (kept out of every kit by the build) and,
with ``--tasks``, on other built tasks, and prints each one's final-part PGR and the paired
difference (the same resampled final-half rows and seeds for both: ``Scorer.pgr_diff``) with
its 95% interval; a win is an interval above 0. Seeds run one after another on every core.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from aarlab.config import get_settings
from aarlab.errors import AarlabError
from aarlab.lab.baselines import run_spec
from aarlab.replication.method import Method
from aarlab.replication.replicate import targets_for
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.spec import parse_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True, help="the task both specs were selected on")
    ap.add_argument("--spec", required=True, help="the pick (a method spec, JSON)")
    ap.add_argument("--against", required=True, help="the baseline (a method spec, JSON)")
    ap.add_argument("--tasks", default="", help="other built tasks, comma-separated")
    args = ap.parse_args()
    settings = get_settings()
    pick, base = parse_spec(args.spec), parse_spec(args.against)
    # Only the task and its (empty) used seeds matter here: they choose the fresh seeds.
    method = Method(ref=f"spec {pick.label}", task=args.task,
                    spec=pick.model_dump(exclude_defaults=True), seeds_used=[], claim={})
    others = [t for t in args.tasks.split(",") if t]
    t0 = time.monotonic()
    print(f"pick `{pick.label}` against `{base.label}`\n")
    print("| target | kind | seeds | pick final PGR [95%] | baseline [95%] | "
          "pick − baseline, paired [95%] | win |")
    print("|---|---|---|---|---|---|---|")
    for t in targets_for(method, settings, (), others):
        scorer = Scorer(t.key, t.kit.ids("test"))
        preds = []
        for spec in (pick, base):
            _, out = run_spec(t.kit, scorer, spec, t.seeds, threads=settings.torch_threads)
            preds.append(np.stack([out[k] for k in t.seeds]))
        a, b = (scorer.pgr_interval(list(p), "final") for p in preds)
        d = scorer.pgr_diff(list(preds[0]), list(preds[1]), "final")
        fresh = "" if t.fresh or t.kind != "fresh-seeds" else " (NOT surely fresh)"
        print(f"| {t.name} | {t.kind}{fresh} | {','.join(map(str, t.seeds))} | {_ci(a)} | "
              f"{_ci(b)} | {_ci(d, '+')} | {'yes' if d.lo > 0 else 'no'} |", flush=True)
    print(f"\n{time.monotonic() - t0:.0f} s wall")


def _ci(e, sign: str = "") -> str:
    return f"{e.mean:{sign}.3f} [{e.lo:{sign}.3f}, {e.hi:{sign}.3f}]"


if __name__ == "__main__":
    try:
        main()
    except AarlabError as e:  # a task that is not built, a spec the library refuses
        sys.exit(f"error: {e}")
