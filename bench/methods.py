"""Seconds per experiment for every W2S method, and the runner's overhead over a bare loop.

    python bench/methods.py [--task tweets] [--seeds 5] [--methods weak_soft,logconf]

For each method: CPU seconds and wall seconds of one ``run_experiment`` over N seeds, and the
ratio of its CPU time to a bare training loop on the same features (``train_head`` on the weak
soft labels, then a forward pass on test, N seeds), all measured in this one run. For
``weak_soft`` that ratio is the runner's own overhead; for the others it is what the method adds.
CPU time is the number to read on a shared machine: wall time includes waiting for the cores.
"""

from __future__ import annotations

import argparse
import time

import torch

from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.tasks.build import kit_dir
from aarlab.w2s.heads import HeadConfig, train_head
from aarlab.w2s.methods import all_methods
from aarlab.w2s.runner import run_experiment


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def bare_loop(kit: TaskKit, seeds: list[int]) -> None:
    cfg = HeadConfig(**kit.manifest["student_head"])
    x, xt = kit.features("train_unlabel"), kit.features("test")
    for seed in seeds:
        head = train_head(x, kit.weak_probs("train_unlabel", seed), seed=seed, cfg=cfg)
        head.predict_proba(xt).argmax(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="tweets")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", default=None, help="comma-separated (default: all)")
    args = ap.parse_args()
    settings = get_settings()
    torch.set_num_threads(settings.torch_threads)
    kit = TaskKit(kit_dir(settings, args.task))
    seeds = kit.seeds[: args.seeds]
    names = args.methods.split(",") if args.methods else [m.name for m in all_methods()]
    for f in ("train_unlabel", "test"):  # a kit has no train_label (answer key only)
        kit.features(f)  # warm the page cache: "features cached" is the setting we measure
    bare_loop(kit, seeds[:1])  # and torch's one-time start-up, so it is charged to nobody
    bare_cpu, bare_wall = timed(lambda: bare_loop(kit, seeds))
    sizes = kit.manifest["sizes"]
    print(f"task {args.task}: train_unlabel {sizes['train_unlabel']} x "
          f"{kit.features('test').shape[1]}-d, test {sizes['test']}, {len(seeds)} seeds, "
          f"head {kit.manifest['student_head']}, torch threads {torch.get_num_threads()}")
    print(f"bare loop (train_head + predict): {bare_cpu:.2f} s CPU, {bare_wall:.2f} s wall")
    print(f"{'method':<20}{'CPU s':>8}{'wall s':>8}{'x bare (CPU)':>14}")
    for name in names:
        cpu, wall = timed(lambda n=name: run_experiment(kit, {"method": n}, seeds,
                                                        threads=settings.torch_threads))
        print(f"{name:<20}{cpu:>8.2f}{wall:>8.2f}{cpu / bare_cpu:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
