"""The end-of-run replication inside a time budget: announced, shown, parallel, interruptible.

Jobs are (method, target) pairs. Before anything runs, the plan and its estimate are announced
(each job's estimate: the lab's own measured seconds for that spec, else the median experiment,
scaled by the target's rows and seeds). Jobs run in worker processes, one per core this process
may use, most telling first (fresh seeds, then other tasks, then re-drawn splits); a job is
started only if its estimate still fits in the budget (a fresh-seed job whenever time is left:
its estimate is only as honest as the researchers' telemetry), and one still running at the
deadline is stopped. Every finished job is handed to ``on_update`` at once, so the caller can
write partial results: a run killed here (SIGINT/SIGTERM) keeps everything finished before the
kill.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aarlab.config import Settings
from aarlab.cores import usable_cores
from aarlab.replication.method import Method
from aarlab.replication.replicate import Target, assemble, is_weak_soft, replicate_one

KIND_ORDER = {"fresh-seeds": 0, "all-seeds": 1, "other-task": 2, "redrawn": 3}
NEVER_SKIPPED = ("fresh-seeds", "all-seeds")  # on an estimate; the deadline still stops them
DEFAULT_JOB_S = 60.0  # a job's estimate when the lab measured nothing
GRACE_S = 5.0  # past the budget, a running job gets this long before it is stopped


@dataclass
class Job:
    method_index: int
    target: Target
    estimate_s: float


def _rows(kit) -> int:
    try:
        return len(kit.ids("train_unlabel")) or 1
    except Exception:  # noqa: BLE001 - an estimate only
        return 1


def estimate_jobs(methods: list[tuple[Method, list[Target]]], measured: dict[str, float],
                  home_rows: int) -> list[Job]:
    """Jobs in the order they should run, each with its estimated seconds.

    ``measured``: {spec text: seconds of one lab experiment (a vote of 3 seeds)} on the lab's
    task of ``home_rows`` unlabelled rows. The first job on a target also runs weak_soft there
    to compare with (``vs_weak_soft``, plain and transductive), about two more runs; later
    methods on that target reuse them (``replicate.soft_cache_path``), and so does every method
    after weak_soft itself."""
    fallback = statistics.median(measured.values()) if measured else DEFAULT_JOB_S
    soft = measured.get("weak_soft", fallback)
    jobs: list[Job] = []
    forms_run: dict[tuple, int] = {}  # target -> forms of weak_soft run there so far
    for i, (method, targets) in enumerate(methods):
        base = measured.get(method.claim.get("method") or "", fallback)
        for t in targets:
            scale = _rows(t.kit) / max(home_rows, 1) * max(len(t.seeds), 1) / 3
            target = (t.name, t.kind, tuple(t.seeds))
            # weak_soft in both its forms (replicate.against_weak_soft); weak_soft itself
            # replicated runs one of them
            have = forms_run.get(target, 0)
            if method.spec is not None and is_weak_soft(method.spec):
                extra, forms_run[target] = 0.0, max(have, 1)
            else:
                extra, forms_run[target] = (2 - have) * soft, 2
            if t.compare_spec is not None:  # the baseline it is compared with, as costly
                extra += base
            jobs.append(Job(i, t, (base + extra) * scale))
    jobs.sort(key=lambda j: (KIND_ORDER.get(j.target.kind, 9), j.method_index))
    return jobs


def _job(method: Method, target: Target, threads: int, settings: Settings) -> dict:
    return replicate_one(method, target, threads, settings)


def run_jobs(methods: list[tuple[Method, list[Target]]], jobs: list[Job], settings: Settings,
             budget_s: float | None, on_update: Callable[[list[dict], dict], None],
             console: Console | None = None, workers: int | None = None) -> tuple[list[dict],
                                                                                   dict]:
    """Run ``jobs`` within ``budget_s`` (None: no limit); returns (replications, run info).

    ``on_update(replications so far, info)`` is called after every finished job and once before
    the first. A KeyboardInterrupt (SIGINT, or SIGTERM turned into one by the caller) stops the
    workers, calls ``on_update`` with ``info["interrupted"] = True`` and is raised again."""
    cores = usable_cores()
    workers = max(1, min(workers or cores, len(jobs) or 1))
    threads = max(1, cores // workers)
    est_total = sum(j.estimate_s for j in jobs)
    info = {"jobs": len(jobs), "workers": workers, "threads_per_job": threads,
            "estimate_s": round(est_total / workers, 1), "budget_s": budget_s,
            "done": 0, "skipped": [], "stopped": [], "interrupted": False, "elapsed_s": 0.0}
    rows: list[list[dict]] = [[] for _ in methods]

    def reps() -> list[dict]:
        return [assemble(m, ts, rows[i]) for i, (m, ts) in enumerate(methods)]

    def skip(j: Job, why: str, into: str) -> None:
        info[into].append({"method": methods[j.method_index][0].ref, "target": j.target.name,
                           "kind": j.target.kind, "why": why})

    if console is not None:
        console.print(f"replication: {len(jobs)} jobs ({len(methods)} methods x their targets) "
                      f"on {workers} worker(s) x {threads} thread(s), estimated "
                      f"{info['estimate_s'] / 60:.1f} min"
                      + (f", budget {budget_s / 60:.1f} min" if budget_s is not None else "")
                      + "; partial results are written as jobs finish")
    t0 = time.monotonic()
    queue = list(jobs)
    running: dict[cf.Future, Job] = {}
    progress = Progress(TextColumn("replicating"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"),
                        console=console, disable=console is None, transient=False)
    ex: cf.ProcessPoolExecutor | None = None
    # From the first report on: a stop while the report or the workers are being set up is
    # an interruption too, and the report must say so.
    try:
        on_update(reps(), info)
        ex = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        with progress:
            bar = progress.add_task("", total=len(jobs))
            while queue or running:
                elapsed = time.monotonic() - t0
                while queue and len(running) < workers:
                    j = queue.pop(0)
                    # A method's check on fresh seeds (and the headline's seed noise) is never
                    # skipped on an estimate: the estimate rests on researchers' claimed
                    # seconds, and a claim of 1e9 s (one's own spec, or a rival's) skipped it.
                    # It still stops at the deadline.
                    if (budget_s is not None and elapsed + j.estimate_s > budget_s
                            and not (j.target.kind in NEVER_SKIPPED and elapsed < budget_s)):
                        skip(j, f"estimated {j.estimate_s:.0f} s does not fit the "
                                f"{budget_s - elapsed:.0f} s left", "skipped")
                        progress.advance(bar)
                        continue
                    m = methods[j.method_index][0]
                    running[ex.submit(_job, m, j.target, threads, settings)] = j
                    progress.update(bar, description=f"{j.target.name} ({j.target.kind})")
                if not running:
                    break
                done, _ = cf.wait(running, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    j = running.pop(f)
                    try:
                        rows[j.method_index].append(f.result())
                        info["done"] += 1
                    except Exception as e:  # noqa: BLE001 - one failed target, not the run
                        skip(j, f"failed: {e}", "stopped")
                    progress.advance(bar)
                    info["elapsed_s"] = round(time.monotonic() - t0, 1)
                    on_update(reps(), info)
                if budget_s is not None and time.monotonic() - t0 > budget_s + GRACE_S:
                    for j in running.values():
                        skip(j, "still running when the budget ran out", "stopped")
                        progress.advance(bar)
                    for j in queue:
                        skip(j, "the budget ran out", "skipped")
                    running.clear()
                    queue.clear()
                    _kill(ex)
    except BaseException:
        info["interrupted"] = True
        info["elapsed_s"] = round(time.monotonic() - t0, 1)
        if ex is not None:
            _kill(ex)
        on_update(reps(), info)
        raise
    finally:
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
    info["elapsed_s"] = round(time.monotonic() - t0, 1)
    out = reps()
    on_update(out, info)
    return out, info


def _kill(ex: cf.ProcessPoolExecutor) -> None:
    """Stop the workers now (a job cannot be cancelled once it runs)."""
    for p in list((getattr(ex, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, AttributeError):
            p.kill()
    ex.shutdown(wait=False, cancel_futures=True)
