"""The end-of-run replication is bounded by its budget, and a run killed during it keeps its
JSON and report (issue 18: a 4-minute run once spent 9 silent minutes replicating)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from aarlab.config import Settings
from aarlab.lab.orchestrator import LabOptions
from aarlab.lab.tables import LabMember, LabRun
from aarlab.replication.budgeted import estimate_jobs, run_jobs
from aarlab.replication.method import Method
from aarlab.replication.replicate import Target
from aarlab.scoring.probes import pack
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher
from aarlab.tasks.scorer import Scorer

RUN_TAIL = """
import sys
from pathlib import Path

import typer
from rich.console import Console

from aarlab.commands.run import _sigterm_interrupts, replication_phase
from aarlab.config import Settings
from aarlab.lab.report import write_report
from aarlab.store.db import Store

settings = Settings()
store = Store(settings.database_url)
lab_id, reports = int(sys.argv[1]), Path(sys.argv[2])
_sigterm_interrupts()
summary = write_report(store, settings, lab_id, reports, baselines=False)
try:
    replication_phase(store, settings, lab_id, reports, summary, 600.0, Console(stderr=True))
except typer.Exit as e:
    sys.exit(e.exit_code)
"""


def _home(tmp_path, tiny_tasks, settings) -> Settings:
    home = tmp_path / "home"
    for name, (kit, key) in tiny_tasks.items():
        shutil.copytree(kit.dir, home / "tasks" / name / "kit")
        shutil.copytree(key.dir, home / "answer-keys" / name)
    return Settings(home=home, sources_root=settings.sources_dir, baseline_grid="defaults")


def test_jobs_that_do_not_fit_the_budget_are_skipped_and_said(tiny_tweets, settings):
    kit, key = tiny_tweets
    m = Method(ref="1", task=kit.name, spec={"method": "weak_soft"},
               claim={"method": "weak_soft", "pgr_final": 0.0})
    targets = [Target(kit.name, "fresh-seeds", kit, key, [0]),
               Target("other", "other-task", kit, key, [0])]
    # The lab measured this spec at 10 minutes a run: neither job fits 60 s. The other task
    # is skipped; the fresh-seed check runs anyway (stopped at the deadline if need be), as
    # the estimate is the researchers' claim: 1e9 s claimed for a spec skipped its check.
    jobs = estimate_jobs([(m, targets)], {"weak_soft": 600.0}, len(kit.ids("train_unlabel")))
    assert [j.target.kind for j in jobs] == ["fresh-seeds", "other-task"]
    updates = []
    reps, info = run_jobs([(m, targets)], jobs, settings, 60.0,
                          lambda r, i: updates.append(dict(i)), workers=1)
    assert info["done"] == 1 and [x["kind"] for x in info["skipped"]] == ["other-task"]
    assert all("does not fit" in x["why"] for x in info["skipped"])
    assert [r["kind"] for r in reps[0]["results"]] == ["fresh-seeds"]
    assert updates[0]["done"] == 0  # announced (written) before anything ran

    # Cheap enough: both run, each finished job is handed over at once (partial writes).
    jobs = estimate_jobs([(m, targets)], {"weak_soft": 1.0}, len(kit.ids("train_unlabel")))
    seen = []
    reps, info = run_jobs([(m, targets)], jobs, settings, 300.0,
                          lambda r, i: seen.append(len(r[0]["results"])), workers=2)
    assert info["done"] == 2 and not info["skipped"] and not info["interrupted"]
    assert seen[0] == 0 and 1 in seen and seen[-1] == 2
    assert {r["target"] for r in reps[0]["results"]} == {kit.name, "other"}
    assert info["workers"] == min(2, info["workers"])


def test_a_stop_while_the_first_report_is_written_is_reported_as_an_interruption(
        tiny_tweets, settings):
    """SIGTERM (a KeyboardInterrupt here) can land while the first partial report is being
    written, before any worker exists: the report written after it must say interrupted."""
    kit, key = tiny_tweets
    m = Method(ref="1", task=kit.name, spec={"method": "weak_soft"},
               claim={"method": "weak_soft", "pgr_final": 0.0})
    targets = [Target(kit.name, "fresh-seeds", kit, key, [0])]
    jobs = estimate_jobs([(m, targets)], {"weak_soft": 1.0}, len(kit.ids("train_unlabel")))
    written = []

    def on_update(reps, info):
        written.append(dict(info))
        if len(written) == 1:
            raise KeyboardInterrupt  # the stop arrives during the first write

    with pytest.raises(KeyboardInterrupt):
        run_jobs([(m, targets)], jobs, settings, 300.0, on_update, workers=1)
    assert written[-1]["interrupted"] is True and written[-1]["done"] == 0


def test_estimates_count_weak_soft_once_per_target(tiny_tweets):
    """Every method is compared with weak_soft on each target, but weak_soft runs there once in
    each form (kept beside the answer key): only the first method's job on a target pays."""
    kit, key = tiny_tweets
    rows = len(kit.ids("train_unlabel"))
    targets = [Target(kit.name, "fresh-seeds", kit, key, [0, 1, 2]),
               Target("other", "other-task", kit, key, [0, 1, 2])]
    logconf = Method(ref="1", task=kit.name, spec={"method": "logconf"},
                     claim={"method": "logconf"})
    gce = Method(ref="2", task=kit.name, spec={"method": "gce"}, claim={"method": "gce"})
    soft = Method(ref="3", task=kit.name, spec={"method": "weak_soft"},
                  claim={"method": "weak_soft"})
    measured = {"logconf": 10.0, "gce": 20.0, "weak_soft": 5.0}
    jobs = estimate_jobs([(logconf, targets), (gce, targets)], measured, rows)
    by = {(j.method_index, j.target.kind): j.estimate_s for j in jobs}
    # logconf + weak_soft in its two forms (plain and transductive)
    assert by[(0, "fresh-seeds")] == by[(0, "other-task")] == 20.0
    assert by[(1, "fresh-seeds")] == by[(1, "other-task")] == 20.0  # gce alone
    # weak_soft replicated first runs one form: the method after it pays for the other
    jobs = estimate_jobs([(soft, targets), (gce, targets)], measured, rows)
    assert sorted(j.estimate_s for j in jobs) == [5.0, 5.0, 25.0, 25.0]
    # other seeds of one task are another target
    jobs = estimate_jobs([(logconf, targets[:1]),
                          (gce, [Target(kit.name, "fresh-seeds", kit, key, [3, 4, 5])])],
                         measured, rows)
    assert sorted(j.estimate_s for j in jobs) == [20.0, 30.0]


def _finished_lab(s: Settings, tiny_tasks, pred=None, seeds=(0, 1, 2)) -> int:
    """A finished lab with one replicable pick (a bare method label is a spec); ``pred``: its
    predictions (default: the teacher's, seed 0)."""
    kit, key = tiny_tasks["tweets"]
    store = Store(s.database_url)
    store.create_all()
    scorer = Scorer(key, kit.ids("test"))
    pred = kit.weak_probs("test", 0).argmax(1) if pred is None else pred
    sc = scorer.score(pred)
    with store.session() as db:
        opts = LabOptions(task="tweets", researchers=1, budget_s=30, max_submissions=3)
        lab = LabRun(task="tweets", status="finished", elapsed_s=30.0,
                     config=opts.model_dump(mode="json"))
        db.add(lab)
        db.flush()
        r, _ = add_researcher(db, f"lab{lab.id}-0-any")
        db.add(LabMember(lab_id=lab.id, researcher_id=r.id, direction="any",
                         workspace=str(s.home / "labs" / str(lab.id) / "ws")))
        db.add(Submission(researcher_id=r.id, task="tweets", created_at=datetime.now(UTC),
                          n_rows=len(pred), predictions=pack(pred), method="weak_soft",
                          seeds=None if seeds is None else list(seeds),
                          released_pgr=sc.pgr["feedback"], new_best=True,
                          **{f"acc_{p}": sc.accuracy[p] for p in sc.accuracy},
                          **{f"pgr_{p}": sc.pgr[p] for p in sc.pgr}))
        return lab.id


def test_a_run_killed_during_replication_leaves_its_json_and_report(tmp_path, tiny_tasks,
                                                                      settings):
    s = _home(tmp_path, tiny_tasks, settings)
    lab_id = _finished_lab(s, tiny_tasks)
    reports = tmp_path / "reports"
    env = {**os.environ, "AARLAB_HOME": str(s.home), "AARLAB_SOURCES_ROOT": str(s.sources_dir),
           "AARLAB_BASELINE_GRID": "defaults"}
    # The run's own last phase, as `aarlab run` calls it after the lab and its report (the
    # quick report stands in for the full one: its baselines take minutes on a busy machine).
    cmd = [sys.executable, "-c", RUN_TAIL, str(lab_id), str(reports)]
    # Its stderr goes to a file: a pipe nobody reads until the end could fill and stall it.
    log = tmp_path / "run.err"
    with log.open("wb") as err_file:
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_file,
                               start_new_session=True)
    final = reports / f"lab{lab_id}-final.json"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and run.poll() is None and not final.exists():
            time.sleep(0.2)
        assert run.poll() is None, log.read_text(errors="replace")[-3000:]
        assert final.exists(), "the replication never started"
        run.send_signal(signal.SIGTERM)  # mid-replication: its first jobs are running
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    err = log.read_text(errors="replace")
    assert run.returncode == 130, err[-3000:]
    assert "stopped during the replication" in err
    assert "replication:" in err and "estimated" in err  # announced with its estimate
    summary = json.loads((reports / f"lab{lab_id}-report.json").read_text())
    assert summary["lab_id"] == lab_id and summary["best_method"] == "weak_soft"
    assert summary["best_final_pgr"] is not None
    assert (reports / f"lab{lab_id}-report.md").read_text().startswith(f"# Lab {lab_id}")
    data = json.loads(final.read_text())
    assert data["replication"]["interrupted"] is True, data["replication"]
    assert data["replication"]["jobs"] >= 2 and data["replication"]["done"] < \
        data["replication"]["jobs"]
    md = (reports / f"lab{lab_id}-final.md").read_text()
    assert "Replication **interrupted**" in md
    assert not list(reports.glob("*.tmp"))  # every file written whole


def test_the_headline_pick_reruns_on_every_seed_beside_the_tuned_baseline(
        tmp_path, tiny_tasks, settings):
    """The headline's intervals resample the rows of one submitted vote; the final report adds
    the seed noise of a vote: the pick's spec and the tuned baseline's on every teacher seed
    of the task (the kit's and the reserved ones), and whether the spec reproduces the pick."""
    from aarlab.lab.baselines import majority_vote
    from aarlab.lab.report import write_report
    from aarlab.replication.report import write_final_report
    from aarlab.w2s.runner import run_experiment

    s = _home(tmp_path, tiny_tasks, settings)
    kit, key = tiny_tasks["tweets"]
    runs = run_experiment(kit, {"steps": [{"method": "weak_soft"}]}, [0, 1, 2])
    submitted = majority_vote(np.stack([runs[k] for k in (0, 1, 2)]), kit.n_classes)
    lab_id = _finished_lab(s, tiny_tasks, submitted)  # what the search researcher submits
    store, reports = Store(s.database_url), tmp_path / "reports"
    summary = write_report(store, s, lab_id, reports, baselines=False)
    assert summary["best_submission_id"] is not None and summary["best_seeds"] == [0, 1, 2]
    final = reports / f"lab{lab_id}-final.md"

    write_final_report(store, s, lab_id, reports, summary=dict(summary), redraw_seeds=(),
                       other_tasks=[], threads=1, workers=1)
    assert "Not measured (the baseline was not computed)" in final.read_text()

    summary["tuned_baseline_spec"] = {"steps": [{"method": "weak_hard"}]}
    out = write_final_report(store, s, lab_id, reports, summary=dict(summary), redraw_seeds=(),
                             other_tasks=[], threads=1, workers=1)
    rows = [x for r in out["replications"] for x in r["results"] if x["kind"] == "all-seeds"]
    every = [*kit.seeds, *key.reference["replication_seeds"]]
    assert len(rows) == 1 and rows[0]["seeds"] == every and rows[0]["fresh"] is False
    n = rows[0]["seed_noise"]
    assert n["vote_of"] == 3 and n["pick"]["seeds"] == n["diff"]["seeds"] == len(every)
    for k in ("pick", "baseline", "diff"):
        assert n[k]["ci95"][0] <= n[k]["mean"] <= n[k]["ci95"][1]
    md = final.read_text()
    assert "### The headline with the seed noise of a vote" in md
    assert f"**{n['diff']['mean']:+.3f}**" in md and "the spec reproduces the pick" in md

    # A submission its spec does not reproduce (here: the teacher's own labels, under the
    # label "weak_soft") gets no call from a re-run of something else.
    lab2 = _finished_lab(s, tiny_tasks)
    summary2 = {**write_report(store, s, lab2, reports, baselines=False),
                "tuned_baseline_spec": {"steps": [{"method": "weak_hard"}]}}
    write_final_report(store, s, lab2, reports, summary=summary2, redraw_seeds=(),
                       other_tasks=[], threads=1, workers=1)
    md = (reports / f"lab{lab2}-final.md").read_text()
    assert "not established" in md and "does not reproduce its predictions" in md

    # The check is on the seeds the submission names, in any order; one that names none
    # cannot be checked, and gets no call either (round 7: seeds [1, 0, 2] or none skipped
    # the check and printed "a win").
    for seeds, says in (((2, 0, 1), "the spec reproduces the pick"),
                        (None, "Not checked that the spec reproduces the submitted vote")):
        lab_n = _finished_lab(s, tiny_tasks, submitted, seeds)
        summary_n = {**write_report(store, s, lab_n, reports, baselines=False),
                     "tuned_baseline_spec": {"steps": [{"method": "weak_hard"}]}}
        write_final_report(store, s, lab_n, reports, summary=summary_n, redraw_seeds=(),
                           other_tasks=[], threads=1, workers=1)
        md = (reports / f"lab{lab_n}-final.md").read_text()
        assert says in md and (("not established" in md) is (seeds is None)), seeds
