"""Evaluate method specs on a task (lab-owner view) and keep the best classical baseline.

The "best classical baseline" is the best PGR any single library method reaches with its
default parameters; the lab must beat it. It is computed once per task build and cached beside
the answer key (``baselines.json``), since it opens the labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.kit import TaskKit
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.methods import describe
from aarlab.w2s.runner import run_experiment
from aarlab.w2s.spec import MethodSpec, parse_spec


def evaluate(kit: TaskKit, scorer: Scorer, spec: MethodSpec | dict, seeds: list[int],
             on_seed: Callable[[int], None] | None = None, threads: int | None = None) -> dict:
    """Run ``spec`` for ``seeds`` and score it: transfer, PGR, weak, ceiling, seconds."""
    spec = parse_spec(spec)
    out = run_experiment(kit, spec, seeds, on_seed=on_seed, threads=threads)
    preds = [out[k] for k in seeds]
    summary = scorer.summarize(preds)
    return {
        "task": kit.name, "method": spec.label, "spec": spec.canonical(), **summary,
        "pgr_final": scorer.summarize(preds, part="final")["pgr"],
        "seconds": round(out.seconds, 3),
        "agree_weak_test": float(sum(d["agree_weak_test"] for d in out.diagnostics.values())
                                 / len(out)),
    }


def default_specs() -> list[MethodSpec]:
    """One spec per registered method, every parameter at its default."""
    return [parse_spec({"method": m["name"]}) for m in describe()]


def best_baseline(kit: TaskKit, key: AnswerKey, threads: int | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
    """The best default-parameter method on ``kit`` by test PGR, cached in the answer key."""
    path = key.dir / "baselines.json"
    if path.exists():
        return json.loads(path.read_text())["best"]
    scorer = Scorer(key, kit.ids("test"))
    results = []
    for spec in default_specs():
        if progress:
            progress(spec.label)
        results.append(evaluate(kit, scorer, spec, kit.seeds, threads=threads))
    results.sort(key=lambda r: -r["pgr"]["mean"])
    path.write_text(json.dumps({"best": results[0], "all": results}, indent=1))
    return results[0]
