"""The final report of a lab: progress curve, leaderboard with replicated PGR beside released
PGR, the audit, the cost and the best methods' specs, in one Markdown file (plus JSON and a
plain HTML copy). Reuses the lab's own report for the headline and the progress plot.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from sqlalchemy import select

from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.kits.kit import TaskKit
from aarlab.lab.baselines import VOTE_SEEDS
from aarlab.lab.report import _atomic, write_report
from aarlab.lab.status import lab_costs, lab_submissions, member_rows
from aarlab.lab.tables import LabRun
from aarlab.replication.audit import audit_lab, md_cell, render_audit
from aarlab.replication.method import ReplicationError, load_method
from aarlab.replication.replicate import replicate, seed_noise_target, targets_for
from aarlab.scoring.builds import same_build
from aarlab.scoring.probes import unpack
from aarlab.store.db import Store
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer
from aarlab.text import printable


def leaderboard(store: Store, lab_id: int, top: int = 10,
                scorer: Scorer | None = None) -> list[dict]:
    """The lab's best non-probe submissions by released PGR, one per distinct method; with a
    ``scorer`` each final PGR gets its paired-bootstrap ``pgr_final_ci95``.

    Only a release (``new_best``) has a released PGR of its own: any other submission stores
    what its author was told, often another researcher's release, so it shows none here and
    ranks after every release (by its feedback score), as on the server's leaderboard."""
    with store.session() as s:
        lab = s.get(LabRun, lab_id)
        names = {m["researcher_id"]: m["researcher"] for m in member_rows(s, lab)}
        subs = [x for x in lab_submissions(s, lab) if not x.is_probe]
    subs.sort(key=lambda x: (not x.new_best or x.released_pgr is None,
                             -(x.released_pgr or 0.0) if x.new_best else 0.0,
                             -x.pgr_feedback, x.id))
    out, seen = [], set()
    for x in subs:
        key = x.snapshot_id or x.method or f"#{x.id}"
        if key in seen:
            continue
        seen.add(key)
        ci = None
        if scorer is not None and same_build(x, scorer):
            iv = scorer.pgr_interval([unpack(x.predictions, x.n_rows)], "final")
            ci = [iv.lo, iv.hi]
        out.append({"submission_id": x.id, "researcher": names.get(x.researcher_id),
                    "method": x.method, "snapshot_id": x.snapshot_id, "seeds": x.seeds,
                    "released_pgr": x.released_pgr if x.new_best else None,
                    "pgr_final": x.pgr_final,
                    "pgr_final_ci95": ci})
        if len(out) >= top:
            break
    return out


def replicate_top(store: Store, settings: Settings, board: list[dict], n: int = 3,
                  redraw_seeds: tuple[int, ...] = (101,), other_tasks: list[str] | None = None,
                  threads: int | None = None) -> list[dict]:
    """Replicate the first ``n`` leaderboard entries; one that cannot be says why."""
    methods, not_replicable = top_methods(store, settings, board, n, redraw_seeds, other_tasks)
    return [replicate(m, targets, threads, settings) for m, targets in methods] + not_replicable


def top_methods(store: Store, settings: Settings, board: list[dict], n: int,
                redraw_seeds: tuple[int, ...], other_tasks: list[str] | None,
                developed_on: tuple[str, ...] = ()) -> tuple[list[tuple], list[dict]]:
    """The first ``n`` leaderboard entries as (method, replication targets), and a record
    saying why for each that cannot be replicated. ``developed_on``: the lab's own tasks (a
    suite's), never an "other task" target."""
    methods, not_replicable = [], []
    for row in board[:n]:
        try:
            method = load_method(store, settings, row["submission_id"])
        except Exception as e:  # noqa: BLE001 - one hostile snapshot must not stop the report
            not_replicable.append({"ref": str(row["submission_id"]), "claim": {}, "results": [],
                                   "falls_short": False, "not_replicable": printable(
                                       f"its snapshot could not be read: {e}", 300)})
            continue
        if not method.replicable:
            not_replicable.append({"ref": method.ref, "claim": method.claim, "results": [],
                                   "falls_short": False, "not_replicable": method.why_not})
            continue
        methods.append((method, targets_for(method, settings, redraw_seeds, other_tasks,
                                            developed_on)))
    return methods, not_replicable


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, dict):
        if v.get("mean") is None:
            return "–"
        if v.get("ci95"):
            return f"{v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
        return f"{v['mean']:.3f}" + (f" ± {v['se']:.3f}" if v.get("se") is not None else "")
    return f"{v:.3f}"


def vs_weak_soft_cell(row: dict) -> str:
    """The paired verdict against weak_soft: ``above: +0.052 [+0.010, +0.090]`` (Δ, 95%)."""
    v = row.get("vs_weak_soft")
    if not v:
        return "–"
    d = v["diff"]
    form = " (transductive weak_soft, the stronger here)" if v.get("transductive") else ""
    return (f"{v['verdict']}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            + form)


def _run_note(info: dict | None) -> list[str]:
    """How far the replication got: done, skipped for the budget, stopped, interrupted."""
    if not info:
        return []
    budget = "no budget" if info.get("budget_s") is None else \
        f"a budget of {info['budget_s'] / 60:.1f} min"
    state = ("**interrupted** (the run was stopped); these are the results so far"
             if info.get("interrupted") else
             "in progress" if info["done"] + len(info["skipped"]) + len(info["stopped"])
             < info["jobs"] else "finished")
    out = [f"Replication {state}: {info['done']} of {info['jobs']} jobs done in "
           f"{info.get('elapsed_s', 0) / 60:.1f} min (estimated {info['estimate_s'] / 60:.1f} "
           f"min, {budget}, {info['workers']} worker(s))."]
    left = info["skipped"] + info["stopped"]
    if left:
        out.append("Not replicated: " + "; ".join(
            f"{x['target']} ({x['kind']}) of {x['method']}: {x['why']}" for x in left[:12])
            + (f" and {len(left) - 12} more" if len(left) > 12 else "") + ".")
    return [*out, ""]


def _soft(x: dict) -> str:
    return f" ({vs_weak_soft_cell(x)} vs weak_soft)" if x.get("vs_weak_soft") else ""


def _seeds(r: dict | None) -> str:
    """Which seeds the fresh-seed replication used, against the ones the result used."""
    if not r or r.get("replication_seeds") is None:
        return ""
    used = r.get("seeds_used")
    used_text = "not recorded" if used is None else ",".join(map(str, used))
    fresh = "" if r.get("fresh_seeds") else " (not surely fresh)"
    return (f" (seeds {','.join(map(str, r['replication_seeds']))}{fresh}; the result used "
            f"{used_text})")


def seed_noise_lines(reps: list[dict], summary: dict, info: dict | None = None) -> list[str]:
    """The headline again, with the seed noise of a vote in its intervals (an ``all-seeds``
    row) or a line saying that it was not measured and why."""
    if summary.get("best_submission_id") is None:
        return []
    row = next((x for r in reps for x in r.get("results", []) if x.get("seed_noise")), None)
    head = "### The headline with the seed noise of a vote"
    if row is None:
        left = [x for x in (info or {}).get("skipped", []) + (info or {}).get("stopped", [])
                if x["kind"] == "all-seeds"]
        planned = any(x["kind"] == "all-seeds" for r in reps for x in r.get("results", []))
        why = ("the baseline was not computed" if not summary.get("tuned_baseline_spec") else
               f"its re-run did not finish: {left[0]['why']}" if left else
               "its re-run is still to come" if info and not planned and info["done"] <
               info["jobs"] else "the pick is not a library spec among the replicated results, "
               f"or its task has fewer than {VOTE_SEEDS} teacher seeds")
        return [head, "", f"Not measured ({why}): the headline's intervals above resample "
                          "the final rows of one vote each, not its seeds.", ""]
    n = row["seed_noise"]
    d = n["diff"]
    lo, hi = d["ci95"]
    call = ("**a win** with seed noise too" if lo > 0 else "**no win** once seed noise is "
            "counted (the interval reaches 0)" if hi > 0 else "the tuned baseline is better")
    same, check = _reproduces(row, summary)
    if not same:
        call = "not established: the re-run is not shown to be the submitted method"
    return [head, "", f"The pick's spec and the tuned baseline re-run on every teacher seed of "
            f"the task ({', '.join(map(str, n['seeds']))}: the kit's and those its answer key "
            f"holds back); each bootstrap replicate resamples those seeds and the final rows "
            f"together, the same seeds for both, and averages every vote of {n['vote_of']} "
            f"distinct seeds, so each interval is for the PGR of a {n['vote_of']}-seed vote in "
            f"expectation over seeds: pick {_fmt(n['pick'])}, tuned baseline "
            f"{_fmt(n['baseline'])}, lab − tuned **{d['mean']:+.3f}** [{lo:+.3f}, {hi:+.3f}]: "
            f"{call}. {check}", ""]


def _reproduces(row: dict, summary: dict) -> tuple[bool, str]:
    """Whether the re-run's vote of the seeds the submission says it voted scores what the
    submission did: a spec that does not reproduce the pick's predictions says nothing about
    them, and neither does one that cannot be checked (its seeds untold, or not the task's)."""
    again, claimed = row["seed_noise"].get("rerun_of_submitted"), summary.get("best_final_pgr")
    if again is None or claimed is None:
        return False, (f"**Not checked that the spec reproduces the submitted vote** (it names "
                       f"seeds {_seed_text(summary.get('best_seeds'))}, not a set of this "
                       f"task's seeds).")
    seeds, got = _seed_text(again["seeds"]), again["pgr_final"]
    if abs(got - claimed) < 1e-9:
        return True, (f"The re-run's vote of seeds {seeds} scores the submitted vote's final "
                      f"PGR, {claimed:.3f}: the spec reproduces the pick.")
    return False, (f"**The re-run's vote of seeds {seeds} scores {got:.3f}, the submission "
                   f"{claimed:.3f}: the spec does not reproduce its predictions.**")


def _seed_text(seeds: list[int] | None) -> str:
    return "not recorded" if not seeds else ",".join(map(str, seeds))


def render_final(summary: dict, board: list[dict], reps: list[dict], audit: dict,
                 costs: list[dict], lab_md: str, info: dict | None = None) -> str:
    by_sub = {r["claim"].get("submission_id"): r for r in reps}
    lines = [lab_md.rstrip(), "", "## Leaderboard: released vs replicated", "",
             *_run_note(info),
             "| submission | researcher | method | released PGR | final PGR | replicated "
             "(fresh seeds) | replicated (re-drawn split) | other tasks |",
             "|---|---|---|---|---|---|---|---|"]
    for b in board:
        r = by_sub.get(b["submission_id"])
        res = {k: [x for x in (r or {}).get("results", []) if x["kind"] == k]
               for k in ("fresh-seeds", "redrawn", "other-task")}
        cell = {k: "; ".join(f"{_fmt(x['pgr_final'])}" + _soft(x) + (
            " **short**" if x["falls_short"] else "") for x in v) or "–"
                for k, v in res.items()}
        if res["fresh-seeds"]:
            cell["fresh-seeds"] += _seeds(r)
        cell["other-task"] = "; ".join(f"{x['target']}: {_fmt(x['pgr_final'])}{_soft(x)}"
                                       for x in res["other-task"]) or "–"
        if r and r.get("not_replicable"):
            cell["fresh-seeds"] = "cannot replicate: " + md_cell(r["not_replicable"])
        lines.append(f"| {b['submission_id']} | {b['researcher']} | `{b['method']}` | "
                     f"{_fmt(b['released_pgr'])} | "
                     f"{_fmt({'mean': b['pgr_final'], 'ci95': b.get('pgr_final_ci95')})} | "
                     f"{cell['fresh-seeds']} | {cell['redrawn']} | {cell['other-task']} |")
    lines += ["", "Replicated PGR is final-part PGR [95% interval, test rows and seeds "
              "resampled]: a spec re-run from scratch outside any sandbox (fresh seeds are weak "
              "teachers kept out of every kit), a snapshot's code re-run in a fresh sandbox, or "
              "recorded predictions scored as they are (rows they miss count as wrong); "
              "**short** marks a result more than 2 SE below its claim. In parentheses, the "
              "paired difference from weak_soft (copying the teacher; the stronger there of its "
              "plain and transductive forms) run on the same kit and seeds, final half [95%, "
              "the same rows resampled for both]: above or below when its interval excludes 0, "
              "else tie.", ""]
    lines += seed_noise_lines(reps, summary, info)
    lines.append(render_audit(audit))
    if costs:
        lines += ["## Cost", "", "| researcher | " + " | ".join(
            k for k in costs[0] if k != "researcher") + " |",
                  "|---|" + "---|" * (len(costs[0]) - 1)]
        lines += ["| " + " | ".join(str(c[k]) for k in costs[0]) + " |" for c in costs]
        lines.append("")
    lines += ["## Best methods' specs", ""]
    for r in reps:
        if r.get("spec"):
            lines += [f"Submission {r['claim'].get('submission_id')}:", "", "```json",
                      json.dumps(r["spec"], indent=1), "```", ""]
    return "\n".join(lines) + "\n"


def write_final_report(store: Store, settings: Settings, lab_id: int, report_dir: Path,
                       n_replicate: int = 3, redraw_seeds: tuple[int, ...] = (101,),
                       other_tasks: list[str] | None = None,
                       threads: int | None = None, summary: dict | None = None,
                       budget_s: float | None = None, console=None,
                       workers: int | None = None) -> dict:
    """``summary``: the lab report already written by ``aarlab run`` (else written here).

    The replication runs inside ``budget_s`` (None: no limit), announced with its estimate and a
    progress bar on ``console``; the final report is rewritten after every finished job, so a
    run killed meanwhile leaves the results so far (``replication.interrupted``)."""
    from aarlab.replication.budgeted import estimate_jobs, run_jobs

    with store.session() as s:
        run = s.get(LabRun, lab_id)
        if run is None:
            raise ReplicationError(f"--lab: no lab {lab_id}", hint="see the dashboard's labs")
        lab_tasks = (run.task, *((run.config or {}).get("suite") or []))
    summary = summary or write_report(store, settings, lab_id, report_dir, threads=threads)
    board = leaderboard(store, lab_id, scorer=_scorer(settings, summary["task"]))
    methods, not_replicable = top_methods(store, settings, board, n_replicate, redraw_seeds,
                                          other_tasks, tuple(lab_tasks))
    add_seed_noise_target(methods, summary, settings)
    jobs = estimate_jobs(methods, measured_seconds(store, lab_id),
                         _unlabelled_rows(settings, summary["task"]))
    with store.session() as s:
        costs = lab_costs(s, lab_id)
    audit = audit_lab(store, settings, lab_id, [])
    report_dir.mkdir(parents=True, exist_ok=True)
    out: dict = {}

    def write(reps: list[dict], info: dict) -> None:
        nonlocal out
        reps = reps + not_replicable
        md_text = render_final(summary, board, reps, audit, costs,
                               Path(summary["report_path"]).read_text(), info)
        md = report_dir / f"lab{lab_id}-final.md"
        _atomic(md, md_text)
        _atomic(report_dir / f"lab{lab_id}-final.html",
                f"<!doctype html><meta charset=utf-8><title>lab {lab_id}</title>"
                f"<img src='lab{lab_id}-progress.png' alt='progress'>"
                f"<pre>{html.escape(md_text)}</pre>")
        out = {"summary": summary, "leaderboard": board, "replications": reps, "audit": audit,
               "costs": costs, "replication": info, "report_path": str(md)}
        _atomic(report_dir / f"lab{lab_id}-final.json", json.dumps(out, indent=1, default=str))

    reps, info = run_jobs(methods, jobs, settings, budget_s, write, console, workers)
    audit = audit_lab(store, settings, lab_id, reps)
    write(reps, info)
    _atomic(report_dir / f"lab{lab_id}-audit.json", json.dumps(audit, indent=1, default=str))
    return out


def add_seed_noise_target(methods: list[tuple], summary: dict, settings: Settings) -> None:
    """The headline pick, if it is a spec among ``methods``, also runs on its task's kit seeds
    beside the tuned baseline (``replicate.seed_noise_target``): the headline's seed noise."""
    base = summary.get("tuned_baseline_spec")
    for method, targets in methods:
        if (base is not None and method.spec is not None and method.task == summary["task"]
                and method.claim.get("submission_id") == summary.get("best_submission_id")):
            target = seed_noise_target(settings, method.task, base)
            if len(target.seeds) >= VOTE_SEEDS:  # no vote of distinct seeds otherwise
                targets.append(target)


def measured_seconds(store: Store, lab_id: int) -> dict[str, float]:
    """{spec text: seconds of the lab's experiment with it} from the researchers' telemetry.

    The seconds are the sandbox's own claim, and a job estimated not to fit the budget is
    skipped: a researcher claiming 1e12 s for its own spec dodged the replication of its
    result, and one claiming it for another's spec sabotaged theirs. So a claim counts only up
    to the server's own clock, the time since that researcher's previous event (or the lab's
    start); a spec run more than once keeps its shortest time; a non-number counts not at all.
    """
    from aarlab.clock import as_utc
    from aarlab.lab.tables import LabEvent, LabMember

    with store.session() as s:
        start = as_utc(s.get(LabRun, lab_id).started_at)
        ids = select(LabMember.researcher_id).where(LabMember.lab_id == lab_id)
        events = s.execute(select(LabEvent.researcher_id, LabEvent.kind, LabEvent.created_at,
                                  LabEvent.payload).where(
            LabEvent.researcher_id.in_(ids)).order_by(LabEvent.id)).all()
    out: dict[str, float] = {}
    previous: dict[int, object] = {}
    for rid, kind, at, e in events:
        at = as_utc(at)
        since = (at - previous.get(rid, start)).total_seconds()
        previous[rid] = at
        if kind != "experiment" or not isinstance(e, dict) or not e.get("spec"):
            continue
        claim = e.get("seconds")
        if isinstance(claim, bool) or not isinstance(claim, int | float):
            continue
        try:
            claim = float(claim)  # an integer past a float's range (an older store's) raises
        except OverflowError:
            continue
        if not math.isfinite(claim) or claim < 0:
            continue
        spec = str(e["spec"])
        out[spec] = min(out.get(spec, math.inf), claim, max(since, 0.0))
    return out


def _unlabelled_rows(settings: Settings, task: str) -> int:
    try:
        return len(TaskKit(kit_dir(settings, task)).ids("train_unlabel"))
    except (AarlabError, OSError, ValueError):
        return 1


def _scorer(settings: Settings, task: str) -> Scorer | None:
    try:
        kit = TaskKit(kit_dir(settings, task))
        return Scorer(AnswerKey(answer_key_dir(settings, task), kit.format), kit.ids("test"))
    except (AarlabError, OSError, ValueError):  # no key here: the board goes without intervals
        return None


def latest_lab_id(store: Store) -> int:
    with store.session() as s:
        lab_id = s.scalar(select(LabRun.id).order_by(LabRun.id.desc()).limit(1))
    if lab_id is None:
        raise ReplicationError("no lab has run yet", hint="start one with `aarlab run`")
    return lab_id


def replicate_after_run(store: Store, settings: Settings, lab_id: int, report_dir: Path,
                        summary: dict, warn=print, budget_s: float | None = None,
                        console=None) -> dict | None:
    """The lab's own replication at the end of ``aarlab run``: the final report with the top
    results replicated. Never fails the run: a problem here is reported and the lab's own
    report stands."""
    try:
        return write_final_report(store, settings, lab_id, report_dir, summary=summary,
                                  threads=settings.torch_threads, budget_s=budget_s,
                                  console=console)
    except Exception as e:  # noqa: BLE001 - the run's results are already safe on disk
        warn(f"replication of the top results failed: {e}")
        return None
