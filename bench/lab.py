"""Several labs with different lab seeds, as one bench, for a fixed wall-clock budget each.

    .venv/bin/python bench/lab.py [--task snli-pref] [--researchers 3] [--budget 30m] [--runs 3]
                                  [--suite tweets,movies] [--isolate]
                                  [--first-seed 2 --runs 1 --pool-with HOME HOME]

For each run and pooled over the runs, prints the pick's final-part PGR (the submission each
researcher picked by its released feedback score, the lab's best of those; ``aarlab.lab.headline``)
and the tuned classical baseline's (library parameters tuned with a label-free signal and a
researcher's submission budget, chosen on feedback, a 3-seed vote like the pick), each with its
95% interval, and their paired difference with its interval; a win is an interval above 0.
Pooled intervals bootstrap over runs and test rows together: the runs' picks are resampled like
seeds while the final-half rows are resampled once for all of them (``Scorer.pgr_diff``). The
pooled picks are also compared with the baseline tuned on the grid's plain (not transductive)
specs, as it was before the grid varied that flag: a reference line, never the win.
With ``--isolate`` every run has its own home (a copy of the task's and the suite's kits and
answer keys with their baseline caches, and a store of its own), so a lab does not start from an
earlier run's forum posts, snapshots and Ladder: independent runs, not one lab continued.
``--pool-with`` adds earlier isolated runs (their homes under ``bench-runs/``) to the pooled row,
so that a bench cut short can be completed by its remaining runs rather than started again; the
earlier runs' picks are read from their own stores, and they must be on the same task and rows.
Per run it also prints the experiments and the lab's overhead: the share of CPU time (the lab
process + every researcher process, as each researcher reports its own process CPU time with
its experiments) not spent inside ``run_experiment``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from aarlab.commands.run import parse_duration
from aarlab.commands.ui import plain
from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.lab.baselines import tuned_baseline
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.lab.report import write_report
from aarlab.lab.tables import LabEvent, LabMember
from aarlab.lab.tuned import researcher_submissions
from aarlab.scoring.probes import unpack
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.build import BuildOptions, build_task, is_built
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.registry import get_task
from aarlab.tasks.scorer import Scorer


def own_cpu_seconds() -> float:
    # Researchers run under bubblewrap's own init, so RUSAGE_CHILDREN does not see them; they
    # report their CPU with their telemetry instead (see researcher_cpu below).
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def researcher_cpu(events: list[dict]) -> tuple[float, float]:
    """(CPU inside experiments, CPU of the researcher processes) from experiment events.

    Self-reported by sandboxes: only finite non-negative numbers count (a string, a list or
    1e400 in one event crashed the bench after its lab had run), and the result is only as
    honest as the researchers."""
    inside = sum(_seconds(e.get("cpu_s")) for e in events)
    per_process: dict[str, float] = {}
    for e in events:
        p = str(e.get("process", "?"))[:64]
        per_process[p] = max(per_process.get(p, 0.0), _seconds(e.get("process_cpu_s")))
    return inside, sum(per_process.values())


def _seconds(v: object) -> float:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    return float(v) if ok else 0.0


def isolated(settings, tasks: list[str], seed: int):
    """Settings and a store for one run in a home of its own: the tasks' kits and answer keys
    (baseline caches included) copied from ``settings``'s home, nothing else of it."""
    home = settings.home / "bench-runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
    own = settings.model_copy(update={"home": home, "answer_key_root": None, "db_url": None,
                                      "snapshots_root": None})
    for t in tasks:
        shutil.copytree(kit_dir(settings, t), kit_dir(own, t))
        shutil.copytree(answer_key_dir(settings, t), answer_key_dir(own, t))
    return own, Store(own.database_url)


def earlier_run(home: Path, task: str) -> dict:
    """A finished isolated run of an earlier invocation, read back from its home: its report's
    summary and its pick's predictions (from its store, not from the report)."""
    reports = sorted((home / "reports").glob("lab*-report.json"))
    if len(reports) != 1 or not (home / "aarlab.db").is_file():
        raise SystemExit(f"--pool-with {home}: expected one lab report and aarlab.db there "
                         "(the home of one isolated run)")
    summary = json.loads(reports[0].read_text())
    if summary.get("task") != task:
        raise SystemExit(f"--pool-with {home}: that run was on {summary.get('task')!r}, "
                         f"not {task!r}")
    store = Store(f"sqlite:///{home / 'aarlab.db'}")
    store.create_all()  # an older version's store gains the columns added since (all nullable)
    with store.session() as s:
        best = s.get(Submission, summary["best_submission_id"]) \
            if summary.get("best_submission_id") else None
        pick = unpack(best.predictions, best.n_rows) if best is not None else None
    seed = home.name.rsplit("-seed", 1)[-1]
    return {"seed": f"{seed}, earlier", "summary": summary, "pick": pick}


def one_run(settings, store, args, seed: int) -> dict:
    """One lab: run it, write its report, and return the summary with its CPU accounting."""
    suite = [t for t in (args.suite or "").split(",") if t and t != args.task]
    lab = Lab(settings, store, LabOptions(task=args.task, suite=suite,
                                          researchers=args.researchers, seed=seed,
                                          budget_s=parse_duration(args.budget)))
    lab_id = lab.create()
    cpu0, t0 = own_cpu_seconds(), time.monotonic()
    lab.run()
    lab_cpu, wall = own_cpu_seconds() - cpu0, time.monotonic() - t0
    summary = write_report(store, settings, lab_id, settings.home / "reports",
                           threads=settings.torch_threads)
    with store.session() as s:
        ids = select(LabMember.researcher_id).where(LabMember.lab_id == lab_id)
        events = [e.payload for e in s.scalars(select(LabEvent).where(
            LabEvent.researcher_id.in_(ids), LabEvent.kind == "experiment"))]
        best = s.get(Submission, summary["best_submission_id"]) \
            if summary.get("best_submission_id") else None
        pick = unpack(best.predictions, best.n_rows) if best is not None else None
    exp_s, researchers_cpu = researcher_cpu(events)
    return {"seed": seed, "summary": summary, "pick": pick, "wall_s": wall,
            "lab_cpu": lab_cpu, "researchers_cpu": researchers_cpu, "exp_s": exp_s}


def pooled(settings, runs: list[dict], task: str, budget_s: float) -> dict | None:
    """The runs' picks against the tuned baseline, bootstrapped over runs and test rows."""
    picks = [r["pick"] for r in runs if r["pick"] is not None]
    if not picks:
        return None
    kit = TaskKit(kit_dir(settings, task))
    key = AnswerKey(answer_key_dir(settings, task), kit.format)
    scorer = Scorer(key, kit.ids("test"))
    budget = researcher_submissions(settings, budget_s)
    _, vote = tuned_baseline(kit, key, settings, budget, threads=settings.torch_threads)
    # The baseline as it was before the grid varied ``transductive``: does the lab find more
    # than that one switch? (a reference only; the win is judged against the full grid)
    row, old = tuned_baseline(kit, key, settings, budget, threads=settings.torch_threads,
                              inductive=True)
    return {"runs": len(picks), "pick": scorer.pgr_interval(picks, "final"),
            "tuned": scorer.pgr_interval([vote], "final"),
            "diff": scorer.pgr_diff(picks, [vote] * len(picks), "final"),
            "inductive_method": row["method"], "inductive": scorer.pgr_interval([old], "final"),
            "inductive_diff": scorer.pgr_diff(picks, [old] * len(picks), "final")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="snli-pref")
    ap.add_argument("--researchers", type=int, default=3)
    ap.add_argument("--budget", default="30m", help="per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="lab seed of the first run (continue a bench after its run N: N)")
    ap.add_argument("--suite", default="", help="other tasks every researcher also gets")
    ap.add_argument("--isolate", action="store_true",
                    help="each run in a home of its own (no forum, snapshots or Ladder shared)")
    ap.add_argument("--pool-with", nargs="*", default=[], type=Path, metavar="HOME",
                    help="earlier isolated runs' homes (bench-runs/...) to pool with these")
    args = ap.parse_args()
    settings = get_settings()
    tasks = [args.task] + [t for t in args.suite.split(",") if t and t != args.task]
    for t in tasks:
        if not is_built(settings, t):
            build_task(get_task(t), settings, BuildOptions())
    store = Store(settings.database_url)
    runs = [earlier_run(home, args.task) for home in args.pool_with]
    # Lab seed i: the researchers' seeds differ per run, and successive seeds hand out
    # successive blocks of directions (lab.directions).
    for i in range(args.first_seed, args.first_seed + args.runs):
        own, own_store = isolated(settings, tasks, i) if args.isolate else (settings, store)
        runs.append(one_run(own, own_store, args, seed=i))
        print_run(runs[-1], args)
    pool = pooled(settings, runs, args.task, parse_duration(args.budget))
    t = Table("", "pick final-part PGR [95%]", "tuned classical [95%]",
              "pick − tuned [95%]", "win", title=f"bench/lab.py: {len(runs)} labs on {args.task}"
              f", {args.researchers} researchers, {args.budget} each")
    for n, r in enumerate(runs, 1):
        s = r["summary"]
        d = s.get("diff_vs_tuned_baseline")
        t.add_row(f"run {n}: lab {s['lab_id']} (seed {r['seed']})",  # isolated: each a lab 1
                  _ci(s["best_final_pgr"], s.get("best_final_pgr_ci95")),
                  _ci(s.get("tuned_baseline_final_pgr"), s.get("tuned_baseline_final_pgr_ci95")),
                  _ci(d["mean"], d["ci95"]) if d else "–", "yes" if s.get("win") else "no")
    if pool:
        t.add_row(f"pooled ({pool['runs']} runs x final rows)",
                  _ci(pool["pick"].mean, [pool["pick"].lo, pool["pick"].hi]),
                  _ci(pool["tuned"].mean, [pool["tuned"].lo, pool["tuned"].hi]),
                  _ci(pool["diff"].mean, [pool["diff"].lo, pool["diff"].hi]),
                  "yes" if pool["diff"].lo > 0 else "no")
        t.add_row(f"pooled vs the inductive grid's pick `{plain(pool['inductive_method'])}`",
                  "",
                  _ci(pool["inductive"].mean, [pool["inductive"].lo, pool["inductive"].hi]),
                  _ci(pool["inductive_diff"].mean,
                      [pool["inductive_diff"].lo, pool["inductive_diff"].hi]),
                  "(reference)")
    Console().print(t)


def print_run(r: dict, args) -> None:
    summary = r["summary"]
    cpu = r["lab_cpu"] + r["researchers_cpu"]
    t = Table("measure", "value", title=f"lab {summary['lab_id']} on {args.task} (seed "
              f"{r['seed']}), {args.researchers} researchers, {r['wall_s'] / 60:.1f} min wall")
    diff = summary.get("diff_vs_tuned_baseline")
    t.add_row("lab best final-part PGR [95%]",
              _ci(summary["best_final_pgr"], summary.get("best_final_pgr_ci95")))
    t.add_row(f"tuned classical final-part PGR ({plain(summary.get('tuned_baseline_method'))}) "
              "[95%]",
              _ci(summary.get("tuned_baseline_final_pgr"),
                  summary.get("tuned_baseline_final_pgr_ci95")))
    t.add_row("lab − tuned classical [95%]", _ci(diff["mean"], diff["ci95"]) if diff else "–")
    t.add_row("win (interval above 0)", "yes" if summary.get("win") else "no")
    t.add_row(f"best default classical final-part PGR ({plain(summary['best_baseline_method'])}) "
              "[95%]", _ci(summary["best_baseline_pgr"], summary.get("best_baseline_pgr_ci95")))
    t.add_row("pick's method", plain(summary.get("best_method")))
    if summary.get("suite"):
        su = summary["suite"]
        e = su.get("final_mean")
        t.add_row(f"suite pick `{plain(su['method'])}`: mean final PGR [95%]",
                  _ci(e["mean"], e["ci95"]) if e else "–")
    t.add_row("best released feedback PGR", f"{summary['best_released_pgr']}")
    t.add_row("experiments", str(summary["experiments"]))
    t.add_row("submissions / findings / probe flags",
              f"{summary['submissions']} / {summary['findings']} / {summary['probe_flags']}")
    t.add_row("CPU seconds: lab process / researcher processes",
              f"{r['lab_cpu']:.0f} / {r['researchers_cpu']:.0f}")
    t.add_row("CPU seconds inside experiments", f"{r['exp_s']:.0f}")
    t.add_row("overhead (share of CPU not in experiments)",
              f"{1 - r['exp_s'] / cpu:.2f}" if cpu else "–")
    t.add_row("report", summary["report_path"])
    Console().print(t)


def _ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


if __name__ == "__main__":
    main()
