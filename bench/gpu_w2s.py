"""The original study's setting on one device: LM teacher, LoRA student, LoRA ceiling.

    python bench/gpu_w2s.py [--source snli-pref] [--name snli-lm] \
        [--weak-model smollm2-135m] [--strong-model qwen2.5-0.5b] [--sizes 200,400,300] \
        [--seeds 1] [--rebuild] [--json out.json]

Builds (or reuses) the LM task, then runs on it, on whatever device torch finds (cuda with
bf16 when there is one, else the CPU; the same script, unchanged):

    vanilla      weak_soft with the LoRA student (the strong LM fine-tuned on the soft labels)
    strong       logconf (auxiliary confidence loss) with the LoRA student
    head         weak_soft with the frozen-feature head (the lab's cheap default student)
    ceiling      the strong LM fine-tuned on gold (from the build, cross-validated family)

and prints each one's test accuracy, PGR with its 95 % paired-bootstrap interval (rows and
seeds, ``aarlab.w2s.metrics.bootstrap_pgr``) on the final half, wall seconds and peak GPU
memory. Lab-owner code: it reads the answer key to score. On a CPU keep the sizes tiny
(200,400,300: minutes per LoRA fit of a 0.5B model); on a GPU use the task's own sizes
(``--sizes 2000,7000,14000``) and more seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.build import BuildOptions, answer_key_dir, build_task, is_built, kit_dir
from aarlab.tasks.lm_tasks import define, parse_sizes
from aarlab.tasks.registry import get_task
from aarlab.w2s.lm_fit import LMFit
from aarlab.w2s.metrics import accuracy, bootstrap_pgr
from aarlab.w2s.runner import run_experiment

RUNS = {
    "vanilla": {"method": "weak_soft", "student": {"kind": "lora"}},
    "strong": {"method": "logconf", "student": {"kind": "lora"}},
    "head": {"method": "weak_soft"},
}


def peak_gb() -> float | None:
    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _stale(settings, args, sizes) -> bool:
    """Whether the built task differs from the one asked for (models, sizes, teacher seeds):
    a kit built earlier at CPU sizes must not be reused for a GPU-sized run."""
    m = TaskKit(kit_dir(settings, args.name)).manifest
    want = {"train_label": sizes.train_label, "train_unlabel": sizes.train_unlabel,
            "test": sizes.test}
    def name(model: str) -> str:  # a local folder is recorded by its last part
        return Path(model).resolve().name if Path(model).is_dir() else model

    return (m.get("student_lm", {}).get("name") != name(args.strong_model)
            or m.get("weak_teacher", {}).get("model", {}).get("name") != name(args.weak_model)
            or any(m.get("sizes", {}).get(k) != v for k, v in want.items())
            or m.get("weak_seeds", 0) < args.seeds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="snli-pref")
    ap.add_argument("--name", default="snli-lm")
    ap.add_argument("--weak-model", default="smollm2-135m")
    ap.add_argument("--strong-model", default="qwen2.5-0.5b")
    ap.add_argument("--sizes", default="200,400,300")
    ap.add_argument("--seeds", type=int, default=1, help="student seeds per run")
    ap.add_argument("--runs", default=",".join(RUNS),
                    help="comma-separated, from " + ",".join(RUNS))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    settings = get_settings()
    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    print(f"device: {device}; torch threads {torch.get_num_threads()}")

    out: dict = {"device": device, "task": args.name, "sizes": args.sizes}
    sizes = parse_sizes(args.sizes)
    # One weak-teacher seed per student seed: the kit holds only the teacher seeds it was
    # built with, and fewer would silently shrink the run.
    spec = define(args.name, get_task(args.source), args.weak_model, args.strong_model,
                  sizes, weak_seeds=max(2, args.seeds))
    reset_peak()
    t0 = time.perf_counter()
    if args.rebuild or not is_built(settings, args.name) or _stale(settings, args, sizes):
        build_task(spec, settings, BuildOptions(force=True, lm_fit=LMFit()))
    out["build_s"], out["build_peak_gb"] = time.perf_counter() - t0, peak_gb()
    kit = TaskKit(kit_dir(settings, args.name))
    key = AnswerKey(answer_key_dir(settings, args.name), kit.format)
    ids = kit.ids("test")
    truth = key.labels("test", ids)
    final = np.isin(ids, key.parts["final"])
    groups = key.test_groups(ids)
    weak, ceiling = key.reference_preds("weak", ids), key.reference_preds("ceiling", ids)
    costs = key.reference.get("ceiling_member", {}).get("costs", {})
    print(f"build: {out['build_s']:.0f} s (teacher {costs.get('teacher_s', 0):.0f} s, ceiling "
          f"{costs.get('ceiling_s', 0):.0f} s)")
    rows = [("weak (LM teacher)", weak, None, None), ("ceiling (LoRA, gold)", ceiling, None, None)]
    seeds = kit.seeds[: args.seeds]
    for name in args.runs.split(","):
        reset_peak()
        t0 = time.perf_counter()
        res = run_experiment(kit, RUNS[name], seeds=seeds, threads=None)
        rows.append((f"{name}: {json.dumps(RUNS[name])}", np.stack([res[s] for s in seeds]),
                     time.perf_counter() - t0, peak_gb()))
    out["runs"] = []
    print(f"{'run':60s} {'acc':>6s} {'PGR final [95% CI]':>24s} {'s':>7s} {'GPU GB':>7s}")
    for label, preds, secs, gb in rows:
        acc = float(np.mean([accuracy(p, truth) for p in preds]))
        iv = bootstrap_pgr(truth, weak, ceiling, preds, rows_mask=final, groups=groups)
        d = iv.as_dict()
        ci = d.get("ci95", [float("nan")] * 2)
        secs_txt = "" if secs is None else f"{secs:.0f}"
        gb_txt = "" if gb is None else f"{gb:.2f}"
        print(f"{label[:60]:60s} {acc:6.3f} {d['mean']:+7.2f} [{ci[0]:+.2f},{ci[1]:+.2f}] "
              f"{secs_txt:>7s} {gb_txt:>7s}")
        out["runs"].append({"run": label, "acc": acc, "pgr_final": d, "seconds": secs,
                            "peak_gpu_gb": gb})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
