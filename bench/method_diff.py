"""Paired final-part PGR difference between two method specs (lab-owner bench).

    python bench/method_diff.py --task snli-pref --a SPEC_JSON --b SPEC_JSON [--seeds 5]

Runs both specs on the same seeds and scores them with the answer key (``Scorer``: the lab
owner's view). Prints PGR(a) − PGR(b) on the final half with its paired bootstrap interval,
for the 3-seed majority votes (what a submission is) and for all seeds' predictions. A is
better only when the interval lies above 0.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.lab.baselines import VOTE_SEEDS, majority_vote
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.runner import run_experiment
from aarlab.w2s.spec import parse_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="snli-pref")
    ap.add_argument("--a", required=True, help="spec JSON (the candidate)")
    ap.add_argument("--b", required=True, help="spec JSON (the reference)")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    settings = get_settings()
    kit = TaskKit(kit_dir(settings, args.task))
    scorer = Scorer(AnswerKey(answer_key_dir(settings, args.task), kit.format), kit.ids("test"))
    seeds = kit.seeds[: args.seeds]
    preds = {}
    for name, text in (("a", args.a), ("b", args.b)):
        res = run_experiment(kit, parse_spec(text), seeds, threads=settings.torch_threads)
        preds[name] = np.stack([res[s] for s in seeds])
    votes = {k: majority_vote(p[:VOTE_SEEDS], kit.n_classes) for k, p in preds.items()}
    out = {"task": args.task, "a": parse_spec(args.a).label, "b": parse_spec(args.b).label,
           "seeds": seeds,
           "vote_diff_final": scorer.pgr_diff([votes["a"]], [votes["b"]], "final").as_dict(),
           "seeds_diff_final": scorer.pgr_diff(list(preds["a"]), list(preds["b"]),
                                               "final").as_dict()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
