"""The lab's report: Markdown + JSON + a PNG progress plot, written at the end of a run.

The headline is the *final*-part PGR of the submission each researcher chose by its *released
feedback* score, with the final half as a one-sided veto (``aarlab.lab.headline``): a release
the final half does not bear out is skipped and reported, so a researcher who climbed the
feedback half cannot win the headline. No researcher ever saw the final half.

The headline is compared like for like with the *tuned classical baseline* (library
methods tuned with a label-free signal and a researcher's submission budget, chosen on feedback,
a vote of as many seeds): the difference on the final half comes with a paired-bootstrap 95%
interval (test rows resampled together for both), and it is a *win* only when that whole
interval lies above 0. Reference lines: weak floor (PGR 0), ceiling (PGR 1), and the best
default-parameter classical method (chosen on feedback).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from aarlab.clock import as_utc
from aarlab.config import Settings
from aarlab.cores import usable_cores
from aarlab.errors import AarlabError
from aarlab.forum.tables import Finding
from aarlab.kits.kit import TaskKit
from aarlab.lab import headline, suite
from aarlab.lab.baselines import best_baseline, tuned_baseline
from aarlab.lab.status import lab_costs, lab_submissions, member_rows, progress_points
from aarlab.lab.tables import LabEvent, LabRun
from aarlab.lab.tuned import researcher_submissions
from aarlab.scoring.builds import same_build
from aarlab.scoring.probes import unpack
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer


def lab_summary(store: Store, settings: Settings, lab_id: int,
                baseline: dict | None = None, compare=None) -> dict:
    """The lab's numbers; ``compare(chosen submission) -> dict`` adds the intervals and the
    comparison with the tuned baseline (it needs the answer key)."""
    with store.session() as s:
        lab = s.get(LabRun, lab_id)
        members = member_rows(s, lab)
        subs = lab_submissions(s, lab)
        ids = [m["researcher_id"] for m in members]
        every = s.scalar(select(func.count()).select_from(Submission).where(
            Submission.researcher_id.in_(ids), Submission.task == lab.task)) or 0
        experiments = s.scalar(select(func.count()).select_from(LabEvent).where(
            LabEvent.researcher_id.in_(ids), LabEvent.kind == "experiment")) or 0
        findings = s.scalar(select(func.count()).select_from(Finding).where(
            Finding.author_id.in_(ids))) or 0
        points = progress_points(s, lab)
        task, elapsed = lab.task, lab.elapsed_s
        sandboxed = all(m["sandboxed"] for m in members)
    scored = [x for x in subs if not x.is_probe]
    parts = _parts(settings, task)
    names = {m["researcher_id"]: m["researcher"] for m in members}
    per_researcher, picks, vetoed = {}, [], []
    for m in members:
        own = [x for x in scored if x.researcher_id == m["researcher_id"]]
        mine, out = headline.choose(own, parts)  # by released score, final half as a veto
        vetoed += [{"researcher": names.get(v["researcher_id"]), **v} for v in out]
        picks += [mine] if mine else []
        per_researcher[m["researcher"]] = {
            **{k: m[k] for k in ("direction", "experiments", "submissions", "restarts")},
            "best_released_pgr": m["best_released_pgr"],
            "final_pgr_of_best": mine.pgr_final if mine else None,
            "best_method": mine.method if mine else None,
        }
    chosen = max(picks, key=headline.rank, default=None)
    return {
        "lab_id": lab_id, "task": task, "elapsed_s": round(elapsed, 1),
        "headline_rule": HEADLINE_RULE, "released_above_final": vetoed,
        "researchers": per_researcher, "sandboxed": sandboxed,
        "experiments": experiments, "submissions": len(subs), "findings": findings,
        # exact copies of predictions another lab of this store submitted first: not this lab's
        "copies_of_earlier_labs": every - len(subs),
        "probe_flags": sum(1 for x in subs if x.is_probe),
        "best_released_pgr": max((x.released_pgr for x in scored
                                  if x.new_best and x.released_pgr is not None), default=None),
        "best_final_pgr": chosen.pgr_final if chosen else None,
        "best_submission_id": chosen.id if chosen else None,
        "best_method": chosen.method if chosen else None,
        "best_seeds": chosen.seeds if chosen else None,
        "best_baseline_pgr": _base(baseline)["mean"] if baseline else None,
        "best_baseline_pgr_ci95": _base(baseline)["ci95"] if baseline else None,
        "best_baseline_method": baseline["method"] if baseline else None,
        **_EMPTY_COMPARISON, **(compare(chosen) if compare and chosen else {}),
        "points": [{**p, "time": as_utc(p["time"]).isoformat()} for p in points],
    }


_EMPTY_COMPARISON = {"best_final_pgr_ci95": None, "tuned_baseline_final_pgr": None,
                     "tuned_baseline_final_pgr_ci95": None, "tuned_baseline_method": None,
                     "tuned_baseline": None, "diff_vs_tuned_baseline": None, "win": False}


HEADLINE_RULE = ("each researcher's highest released submission whose accuracy gain over the "
                 "weak teacher on the final half is within 2 SE of its gain on the feedback half "
                 "(aarlab.lab.headline); "
                 "the lab's headline is the best of these picks by released score")


def _parts(settings: Settings, task: str) -> headline.Parts | None:
    try:
        kit = TaskKit(kit_dir(settings, task))
        return headline.task_parts(kit, AnswerKey(answer_key_dir(settings, task), kit.format))
    except (AarlabError, OSError, ValueError, KeyError):  # no key here: picks go unchecked
        return None


def _base(row: dict) -> dict:
    """A baseline's final-half PGR: its seed vote when it has one, as the lab submits votes."""
    return (row.get("vote") or row)["pgr_final"]


def comparison(scorer: Scorer, chosen: Submission, tuned: dict, tuned_vote) -> dict:
    """The pick's final PGR interval, the tuned baseline's, and their paired difference."""
    if not same_build(chosen, scorer):
        return {"comparison_note": f"submission {chosen.id} was scored on another build of the "
                                   "task (rebuilt since): not comparable with this one"}
    pred = unpack(chosen.predictions, chosen.n_rows)
    mine = scorer.pgr_interval([pred], "final")
    base = scorer.pgr_interval([tuned_vote], "final")
    diff = scorer.pgr_diff([pred], [tuned_vote], "final")
    t = tuned.get("tuning", {})
    return {
        "best_final_pgr_ci95": [mine.lo, mine.hi],
        "tuned_baseline_final_pgr": base.mean,
        "tuned_baseline_final_pgr_ci95": [base.lo, base.hi],
        "tuned_baseline_method": tuned["method"],
        "tuned_baseline_spec": tuned.get("spec"),
        "tuned_baseline": {"seeds": (tuned.get("vote") or {}).get("seeds"), **t},
        "diff_vs_tuned_baseline": {"mean": diff.mean, "se": diff.se, "ci95": [diff.lo, diff.hi],
                                   "n_rows": diff.n_rows},
        "win": bool(diff.lo > 0),
    }


def suite_section(store: Store, settings: Settings, lab_id: int, tasks: list[str], budget: int,
                  threads: int | None, known: dict) -> dict:
    """Per-task final PGR of the suite's pick, the tuned baseline on each task, and the means
    (``aarlab.lab.suite``). ``known``: {task: (scorer, tuned, tuned_vote)} already computed."""
    with store.session() as s:
        subs = lab_submissions(s, s.get(LabRun, lab_id), tasks)

    def measure(task: str, x) -> dict:
        if task not in known:
            tkit = TaskKit(kit_dir(settings, task))
            tkey = AnswerKey(answer_key_dir(settings, task), tkit.format)
            known[task] = (Scorer(tkey, tkit.ids("test")),
                           *tuned_baseline(tkit, tkey, settings, budget, threads=threads,
                                           workers=usable_cores()))
        scorer, tuned, tuned_vote = known[task]
        base = scorer.pgr_interval([tuned_vote], "final")
        row = {"tuned_method": tuned["method"], "tuned": base.as_dict(), "pick": None,
               "diff": None}
        if x is not None and same_build(x, scorer):
            pred = unpack(x.predictions, x.n_rows)
            row["pick"] = scorer.pgr_interval([pred], "final").as_dict()
            row["diff"] = scorer.pgr_diff([pred], [tuned_vote], "final").as_dict()
        return row

    return suite.suite_summary(subs, tasks, measure)


def write_report(store: Store, settings: Settings, lab_id: int, report_dir: Path,
                 threads: int | None = None, baselines: bool = True) -> dict:
    """The lab's report. ``baselines=False`` is the quick one (seconds, no baseline runs) that a
    stopped run writes at once, so that it is never left without a JSON and a report."""
    with store.session() as s:
        task = s.get(LabRun, lab_id).task
        config = dict(s.get(LabRun, lab_id).config or {})
    if not baselines:
        summary = lab_summary(store, settings, lab_id)
        summary["comparison_note"] = "the run was stopped before the baselines were computed"
        summary["interrupted"] = True
        return _write(store, lab_id, report_dir, summary)
    kit = TaskKit(kit_dir(settings, task))
    key = AnswerKey(answer_key_dir(settings, task), kit.format)
    # The researchers are gone: the baselines (the first time, ~100 specs) take every core.
    baseline = best_baseline(kit, key, threads=threads, workers=usable_cores())
    budget = researcher_submissions(settings, config.get("budget_s"),
                                    config.get("max_submissions"))
    tuned, tuned_vote = tuned_baseline(kit, key, settings, budget, threads=threads,
                                       workers=usable_cores())
    scorer = Scorer(key, kit.ids("test"))
    summary = lab_summary(store, settings, lab_id, baseline,
                          lambda chosen: comparison(scorer, chosen, tuned, tuned_vote))
    others = [t for t in config.get("suite") or [] if t != task]
    if others:
        summary["suite"] = suite_section(store, settings, lab_id, [task, *others], budget,
                                         threads, {task: (scorer, tuned, tuned_vote)})
        summary["suite_win"] = suite.suite_win(summary["suite"])
    return _write(store, lab_id, report_dir, summary)


def _write(store: Store, lab_id: int, report_dir: Path, summary: dict) -> dict:
    with store.session() as s:
        summary["llm_costs"] = lab_costs(s, lab_id)
    report_dir.mkdir(parents=True, exist_ok=True)
    plot = report_dir / f"lab{lab_id}-progress.png"
    plot_progress(summary, plot)
    md = report_dir / f"lab{lab_id}-report.md"
    _atomic(md, render_markdown(summary, plot.name))
    summary["report_path"] = str(md)
    _atomic(report_dir / f"lab{lab_id}-report.json", json.dumps(summary, indent=1))
    with store.session() as s:
        s.get(LabRun, lab_id).report_path = str(md)
    return summary


def _atomic(path: Path, text: str) -> None:
    """Whole or not at all: a run killed mid-write keeps the previous file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def plot_progress(summary: dict, path: Path) -> None:
    """Best released PGR over time, per researcher (steps) and for the lab (thick line)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a lab machine
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    points = [p for p in summary["points"] if p["released_pgr"] is not None]
    t0 = min((datetime.fromisoformat(p["time"]) for p in points), default=None)

    def minutes(p: dict) -> float:
        return (datetime.fromisoformat(p["time"]) - t0).total_seconds() / 60

    lab_best, lab_curve = None, []
    for name in summary["researchers"]:
        best, xs, ys = None, [], []
        for p in points:
            if p["researcher"] == name:
                best = p["released_pgr"] if best is None else max(best, p["released_pgr"])
                xs.append(minutes(p))
                ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", alpha=0.7, label=name)
    for p in points:
        lab_best = p["released_pgr"] if lab_best is None else max(lab_best, p["released_pgr"])
        lab_curve.append((minutes(p), lab_best))
    if lab_curve:
        ax.step(*zip(*lab_curve, strict=True), where="post", color="black", linewidth=2.5,
                label="lab")
    ax.axhline(0, color="tab:red", linestyle="--", linewidth=1, label="weak floor (PGR 0)")
    ax.axhline(1, color="tab:green", linestyle="--", linewidth=1, label="ceiling (PGR 1)")
    if summary.get("best_baseline_pgr") is not None:
        ax.axhline(summary["best_baseline_pgr"], color="tab:gray", linestyle=":", linewidth=1.5,
                   label=f"best classical ({summary['best_baseline_method']})")
    ax.set_xlabel("minutes since first submission")
    ax.set_ylabel("best released feedback PGR")
    ax.set_title(f"lab {summary['lab_id']} on {summary['task']}")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _ci(ci: list[float] | None) -> str:
    return "–" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _seeds(seeds: list[int] | None) -> str:
    return "not recorded" if seeds is None else ",".join(map(str, seeds))


def copies_note(summary: dict) -> str:
    """Why a lab in a shared store may have no submission of its own, and what to do."""
    n = summary.get("copies_of_earlier_labs") or 0
    if not n:
        return ""
    return (f" {n} of its researchers' submissions were exact copies of predictions an earlier "
            "lab in this store submitted first (its posted snapshots are on the forum every "
            "researcher reads), and a copy is credited to whoever submitted it first: to "
            "measure a lab alone, give it a home of its own (AARLAB_HOME).")


def verdict(summary: dict) -> str:
    """One sentence: the difference against the tuned baseline, its interval, and the call."""
    d = summary.get("diff_vs_tuned_baseline")
    if d is None:
        return ("No comparison with the tuned classical baseline: "
                + (summary.get("comparison_note") or "the lab made no scored submission") + "."
                + copies_note(summary))
    lo, hi = d["ci95"]
    t = summary.get("tuned_baseline") or {}
    how = (f"The tuned baseline had a researcher's means: {t.get('candidates')} library specs "
           f"ranked by `{t.get('signal')}`, {t.get('submitted')} of a budget of "
           f"{t.get('submissions_budget')} scored submissions, chosen by released feedback "
           f"score, a vote of seeds {_seeds(t.get('seeds'))}. ") if t else ""
    diff = (f"Lab − tuned baseline on the final half: **{d['mean']:+.3f}** (95% interval "
            f"[{lo:+.3f}, {hi:+.3f}], paired bootstrap over {d['n_rows']} final rows and the "
            "reference seeds). ")
    # One submitted vote each side: the rows are resampled, the vote's own seeds are not.
    seeds = ("This interval holds the row noise of one submitted vote each, not the noise of "
             "which teacher seeds went into the votes: the final report re-runs the pick and "
             "the tuned baseline on every teacher seed of the task for that (\"The headline "
             "with the seed noise of a vote\"). ")
    if summary.get("win"):
        call = "The whole interval lies above 0: **a win** for the lab."
    elif hi < 0:
        call = "The whole interval lies below 0: the tuned baseline is better; **no win**."
    else:
        call = "The interval includes 0: **no win** (the difference is within noise)."
    return how + diff + seeds + call


def render_markdown(summary: dict, plot_name: str) -> str:
    lines = [
        f"# Lab {summary['lab_id']} on `{summary['task']}`", "",
        f"- wall time: {summary['elapsed_s'] / 60:.1f} min; experiments: "
        f"{summary['experiments']}; submissions: {summary['submissions']} "
        f"({summary['probe_flags']} flagged as probes); findings: {summary['findings']}",
        f"- sandboxed: {'yes (bubblewrap)' if summary['sandboxed'] else 'NO — plain processes'}",
        "", "## Headline", "",
        "| | final-part PGR | 95% interval |", "|---|---|---|",
        f"| lab (best by released feedback score: `{summary['best_method']}`, seeds "
        f"{_seeds(summary.get('best_seeds'))}) | {_fmt(summary['best_final_pgr'])} | "
        f"{_ci(summary.get('best_final_pgr_ci95'))} |",
        f"| tuned classical baseline (`{summary.get('tuned_baseline_method') or '–'}`) | "
        f"{_fmt(summary.get('tuned_baseline_final_pgr'))} | "
        f"{_ci(summary.get('tuned_baseline_final_pgr_ci95'))} |",
        f"| best classical method, default parameters (`{summary['best_baseline_method']}`) | "
        f"{_fmt(summary['best_baseline_pgr'])} | {_ci(summary.get('best_baseline_pgr_ci95'))} |",
        "", verdict(summary), "",
        f"Best released feedback PGR: {_fmt(summary['best_released_pgr'])}. The scoring server "
        "never fed the final half back; the audit below says whether anything else reached "
        "the answer key.", "",
        f"How the lab's pick is made: {summary.get('headline_rule', 'best released score')}. "
        + _vetoes(summary.get("released_above_final") or []), "",
        *_suite_md(summary.get("suite")),
        f"![progress]({plot_name})", "", "## Researchers", "",
        "| researcher | direction | experiments | submissions | restarts | best released PGR "
        "| final PGR of that pick | method |", "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["researchers"].items():
        lines.append(f"| {name} | {r['direction']} | {r['experiments']} | {r['submissions']} | "
                     f"{r['restarts']} | {_fmt(r['best_released_pgr'])} | "
                     f"{_fmt(r['final_pgr_of_best'])} | `{r['best_method'] or '–'}` |")
    lines += _costs(summary.get("llm_costs") or [])
    return "\n".join(lines) + "\n"


def _est(e: dict | None) -> str:
    return "–" if not e else f"{e['mean']:.3f} {_ci(e.get('ci95'))}"


def _suite_md(su: dict | None) -> list[str]:
    """The suite lab's headline: one method across tasks, per task and the mean."""
    if not su:
        return []
    out = ["## Suite", "", f"Pick: `{su['method'] or '–'}` ({su['rule']}; submitted on "
           f"{len(su['covered'])} of {len(su['tasks'])} tasks). Final-part PGR [95%]:", "",
           "| task | feedback PGR | final PGR of the pick | tuned baseline | pick − tuned |",
           "|---|---|---|---|---|"]
    for t, r in su["per_task"].items():
        out.append(f"| {t} | {_fmt(r['feedback_pgr'])} | {_est(r.get('pick'))} | "
                   f"{_est(r.get('tuned'))} (`{r.get('tuned_method') or '–'}`) | "
                   f"{_est(r.get('diff'))} |")
    out.append(f"| **suite mean** | {_fmt(su['feedback_mean'])} | {_est(su['final_mean'])} | "
               f"{_est(su['tuned_mean'])} | {_est(su['diff_mean'])} |")
    d = su.get("diff_mean")
    call = ("**a win** across the suite (interval above 0)" if d and d["ci95"][0] > 0 else
            "**no win** across the suite" + ("" if d else " (the pick misses a task)"))
    out += ["", f"Suite-mean intervals combine the per-task paired bootstraps (independent "
            f"tasks: SE of the mean = sqrt(sum SE^2) / tasks): {call}.", ""]
    return out


def _vetoes(rows: list[dict]) -> str:
    if not rows:
        return "No release was vetoed."
    shown = "; ".join(f"submission {v['submission_id']} of {v['researcher']} (released "
                      f"{_fmt(v['released_pgr'])}, final {_fmt(v['final_pgr'])})"
                      for v in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return (f"**{len(rows)} release(s) vetoed** because the final half does not bear them out "
            f"(an audit finding): {shown}{more}.")


def _costs(costs: list[dict]) -> list[str]:
    """LLM researchers' tokens and dollars (none for a lab of search researchers)."""
    if not costs:
        return []
    out = ["", "## LLM costs", "", "| researcher | model | sessions | calls | input tokens | "
           "output tokens | $ | research-h |", "|---|---|---|---|---|---|---|---|"]
    for c in costs:
        dollars = f"{c['dollars']:.4f}" + ("" if c["priced"] else " (no price)")
        out.append(f"| {c['researcher']} | {c['policy'].removeprefix('llm:')} | "
                   f"{c['sessions']} | {c['calls']} | {c['input_tokens']:,} | "
                   f"{c['output_tokens']:,} | {dollars} | {c['research_hours']:.3f} |")
    out.append(f"\nTotal: ${sum(c['dollars'] for c in costs):.4f}.")
    return out

