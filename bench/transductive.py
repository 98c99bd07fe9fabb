"""Where a transductive spec's gain comes from (lab-owner view: it reads the answer key).

    python bench/transductive.py --task snli-pref --spec '{"steps":[{"method":"noisy_em"}]}'
        [--seeds 0,1,2] [--folds 2]

Runs the spec four ways on the kit's seeds and prints final-part PGR with its 95 % paired
bootstrap interval (rows and seeds), and each way's paired difference from the plain run:

- ``plain``: the spec as it is (train_unlabel only);
- ``graph only``: the labels step sees train_unlabel and test (a kNN source then builds its
  graph over both), but the student trains on train_unlabel's rows only;
- ``cross-fitted``: the student trains on train_unlabel and the *other* test folds and
  predicts each held fold, so no row's own teacher label reaches the student that predicts it;
- ``transductive``: ``"transductive": true`` (the library's form: every step sees both, the
  student trains on the test rows and predicts them).

The first two are ablations written for this script, not library options.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table

from aarlab.config import get_settings
from aarlab.errors import AarlabError
from aarlab.kits.kit import TaskKit
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.methods.base import Step, TrainSet
from aarlab.w2s.runner import FEATURE_SPLITS, _fit, make_context, run_experiment
from aarlab.w2s.spec import parse_spec
from aarlab.w2s.transductive import TransductiveContext, joined_features, transductive_context


class _Fixed(Step):
    """A labels step that hands on a training set made elsewhere."""

    name, stage = "fixed", "labels"

    def __init__(self, ts: TrainSet):
        super().__init__()
        self.ts = ts

    def labels(self, ctx) -> TrainSet:
        return self.ts


def graph_only(kit: TaskKit, spec, seed: int, x: dict, joined: dict) -> np.ndarray:
    steps = spec.build()
    plain = make_context(kit, seed, spec.head.config(kit.manifest.get("student_head")), x=x)
    wide = transductive_context(kit, seed, plain.head, x=joined, shared={})
    source = next((s for s in steps if s.stage == "labels"), None)
    if source is None:
        return _fit(plain, steps)[1](plain, "test").argmax(1)
    n = len(x["train_unlabel"])
    ts = source.labels(wide)
    ts = TrainSet(x=ts.x[:n], targets=ts.targets[:n], weights=ts.weights[:n],
                  weak=ts.weak[:n], group=ts.group[:n], info=ts.info)
    rest = [s for s in steps if s.stage != "labels"]
    return _fit(plain, [_Fixed(ts), *rest])[1](plain, "test").argmax(1)


@dataclass
class _Part(TransductiveContext):
    """The transductive view cut to the joined rows ``keep`` (train_unlabel, some test rows)."""

    keep: np.ndarray | None = None

    def groups(self, split: str) -> np.ndarray:
        g = TransductiveContext.groups(self, split)
        return g[self.keep] if split == "train_unlabel" else g

    def answers(self, split: str) -> list[str]:
        a = TransductiveContext.answers(self, split)
        return [a[i] for i in self.keep] if split == "train_unlabel" else a


def cross_fitted(kit: TaskKit, spec, seed: int, x: dict, joined: dict, folds: int
                 ) -> np.ndarray:
    head = spec.head.config(kit.manifest.get("student_head"))
    n, n_test = len(x["train_unlabel"]), len(x["test"])
    fold = np.random.default_rng(seed).permutation(n_test) % folds
    full = transductive_context(kit, seed, head, x=joined, shared={})
    pred = np.zeros(n_test, dtype=int)
    for k in range(folds):
        keep = np.concatenate([np.arange(n), n + np.flatnonzero(fold != k)])
        ctx = _Part(kit=kit, seed=seed, head=head,
                    x={"train_unlabel": joined["train_unlabel"][keep], "test": x["test"]},
                    weak={"train_unlabel": full.weak["train_unlabel"][keep],
                          "test": full.weak["test"]}, shared={}, keep=keep)
        held = fold == k
        pred[held] = _fit(ctx, spec.build())[1](ctx, "test").argmax(1)[held]
    return pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="snli-pref")
    ap.add_argument("--spec", required=True, help="a method spec (JSON), without transductive")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--folds", type=int, default=2)
    args = ap.parse_args()
    try:
        spec = parse_spec(args.spec)
        settings = get_settings()
        kit = TaskKit(kit_dir(settings, args.task))
        key = AnswerKey(answer_key_dir(settings, args.task), kit.format)
    except AarlabError as e:
        sys.exit(f"error: {e}")
    seeds = [int(s) for s in args.seeds.split(",")]
    scorer = Scorer(key, kit.ids("test"))
    x = {s: kit.features(s) for s in FEATURE_SPLITS}
    joined = joined_features(x)
    plain = run_experiment(kit, spec, seeds)
    ways = {
        "plain": [plain[s] for s in seeds],
        "graph only": [graph_only(kit, spec, s, x, joined) for s in seeds],
        f"cross-fitted ({args.folds} test folds)": [
            cross_fitted(kit, spec, s, x, joined, args.folds) for s in seeds],
        "transductive": list(run_experiment(
            kit, spec.model_copy(update={"transductive": True}), seeds).values()),
    }
    t = Table("way", "final-part PGR [95%]", "− plain, paired [95%]",
              title=f"bench/transductive.py: {spec.label} on {args.task}, seeds {args.seeds}")
    for name, preds in ways.items():
        p = scorer.pgr_interval(preds, "final")
        d = scorer.pgr_diff(preds, ways["plain"], "final")
        t.add_row(name, f"{p.mean:.3f} [{p.lo:.3f}, {p.hi:.3f}]",
                  "–" if name == "plain" else f"{d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]")
    Console().print(t)


if __name__ == "__main__":
    main()
