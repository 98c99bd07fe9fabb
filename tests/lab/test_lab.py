"""A tiny real lab end to end, and a kill -9 of the lab followed by --resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aarlab.config import Settings
from aarlab.forum.tables import Finding
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.lab.report import write_report
from aarlab.lab.tables import LabMember, LabNotebook, LabRun
from aarlab.sandbox.bwrap import sandbox_available
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store

BWRAP, WHY = sandbox_available()
needs_bwrap = pytest.mark.skipif(not BWRAP, reason=f"bubblewrap cannot run here: {WHY}")


def _home_with_task(tmp_path, tiny_tweets, sources) -> Settings:
    """A fresh AARLAB_HOME holding a copy of the tiny tweets task."""
    kit, key = tiny_tweets
    home = tmp_path / "home"
    shutil.copytree(kit.dir, home / "tasks" / "tweets" / "kit")
    shutil.copytree(key.dir, home / "answer-keys" / "tweets")
    # defaults-only tuned baseline: the full grid takes minutes, and this tests the plumbing
    return Settings(home=home, sources_root=sources, baseline_grid="defaults")


@needs_bwrap
def test_a_failing_progress_display_does_not_end_the_lab(tmp_path, tiny_tweets, settings):
    s = _home_with_task(tmp_path, tiny_tweets, settings.sources_dir)
    store = Store(s.database_url)
    warnings, ticks = [], []
    lab = Lab(s, store, LabOptions(task="tweets", researchers=1, budget_s=60,
                                   max_experiments=2, max_submissions=1),
              on_warning=warnings.append)

    def broken(status, remaining):
        ticks.append(remaining)
        raise BrokenPipeError("terminal closed")

    lab_id = lab.create()
    assert lab.run(on_tick=broken) == lab_id
    with store.session() as db:
        assert db.get(LabRun, lab_id).status == "finished"
        assert db.scalar(select(func.count()).select_from(LabNotebook)) >= 1
    assert len(ticks) == 1  # called once, then left alone
    assert any("progress display failed (BrokenPipeError" in w for w in warnings)


@needs_bwrap
def test_tiny_lab_runs_end_to_end(tmp_path, tiny_tweets, settings):
    s = _home_with_task(tmp_path, tiny_tweets, settings.sources_dir)
    store = Store(s.database_url)
    lab = Lab(s, store, LabOptions(task="tweets", researchers=2, budget_s=90,
                                   max_experiments=5, max_submissions=3))
    lab_id = lab.create()
    lab.run()
    summary = write_report(store, s, lab_id, tmp_path / "reports", threads=1)

    with store.session() as db:
        subs = list(db.scalars(select(Submission)))
        n_findings = db.scalar(select(func.count()).select_from(Finding))
        assert db.get(LabRun, lab_id).status == "finished"
    assert subs, "no researcher submitted"
    assert n_findings >= 1 and summary["findings"] == n_findings
    assert summary["experiments"] >= 4
    # The headline numbers are the server's stored scores, not anything a researcher said.
    released = [x.released_pgr for x in subs if x.released_pgr is not None]
    assert summary["best_released_pgr"] == max(released, default=None)
    best = next(x for x in subs if x.id == summary["best_submission_id"])
    assert summary["best_final_pgr"] == best.pgr_final
    assert summary["best_baseline_pgr"] is not None
    # like for like: the pick against the tuned baseline, on the final half, with intervals
    lo, hi = summary["best_final_pgr_ci95"]
    assert lo <= summary["best_final_pgr"] <= hi
    lo, hi = summary["tuned_baseline_final_pgr_ci95"]
    assert lo <= summary["tuned_baseline_final_pgr"] <= hi
    diff = summary["diff_vs_tuned_baseline"]
    assert diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1]
    assert summary["win"] is (diff["ci95"][0] > 0)
    assert summary["best_seeds"] == [0, 1, 2]  # the search researcher records its vote's seeds
    report = tmp_path / "reports" / f"lab{lab_id}-report.md"
    assert report.exists() and (tmp_path / "reports" / f"lab{lab_id}-progress.png").stat().st_size
    text = report.read_text()
    assert "final-part PGR" in text and "Lab − tuned baseline on the final half" in text
    assert ("**a win**" in text) is summary["win"]
    assert all(r["experiments"] >= 1 for r in summary["researchers"].values())
    assert summary["sandboxed"] is True
    # Each sandbox had a listener of its own (tests/security/test_redteam_connections.py).
    assert len({lab.socket_for(m) for m in lab.members}) == len(lab.members) == 2
    # Each researcher published its notebooks from inside its sandbox, over the lab's socket:
    # the store holds what its workspace holds (the dashboard shows only the store's copy).
    with store.session() as db:
        for m in db.scalars(select(LabMember).where(LabMember.lab_id == lab_id)):
            kept = {n.name: n.text for n in db.scalars(select(LabNotebook).where(
                LabNotebook.researcher_id == m.researcher_id))}
            ws = Path(m.workspace)
            assert kept["notebook.md"] == (ws / "notebook.md").read_text()
            assert [json.loads(x) for x in kept["notebook.jsonl"].splitlines()] == \
                [json.loads(x) for x in (ws / "notebook.jsonl").read_text().splitlines()]


def _count(store: Store) -> tuple[set[int], set[int]]:
    with store.session() as db:
        return (set(db.scalars(select(Submission.id))), set(db.scalars(select(Finding.id))))


@needs_bwrap
def test_kill9_then_resume_loses_nothing(tmp_path, tiny_tweets, settings):
    s = _home_with_task(tmp_path, tiny_tweets, settings.sources_dir)
    env = {**os.environ, "AARLAB_HOME": str(s.home), "AARLAB_SOURCES_ROOT": str(s.sources_dir),
           "AARLAB_BASELINE_GRID": "defaults"}
    cmd = [sys.executable, "-m", "aarlab.cli", "run", "--task", "tweets", "--researchers", "2",
           "--budget", "150s", "--max-experiments", "8", "--max-submissions", "4",
           "--report-dir", str(tmp_path / "reports"), "--json"]
    # Its output goes to a file: a pipe nobody reads until the end could fill and stall it.
    log = tmp_path / "lab.log"
    with log.open("wb") as out:
        lab = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    store = Store(s.database_url)
    deadline = time.monotonic() + 240
    before: tuple[set[int], set[int]] = (set(), set())
    try:
        while time.monotonic() < deadline and lab.poll() is None:
            time.sleep(1)
            try:
                before = _count(store)
            except Exception:  # noqa: BLE001 - tables may not exist yet
                continue
            if before[0] and before[1]:
                break
        assert lab.poll() is None, log.read_text(errors="replace")[-2000:]
        assert before[0] and before[1], "the lab made no submission and finding in time"
    finally:
        os.killpg(lab.pid, signal.SIGKILL)  # the lab and everything it started
        lab.wait()
    with store.session() as db:
        run = db.scalar(select(LabRun))
        assert run.status == "running" and run.elapsed_s > 0
        elapsed_at_kill = run.elapsed_s

    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True,
                             timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    after = _count(store)
    assert before[0] <= after[0] and before[1] <= after[1], "a submission or finding was lost"
    with store.session() as db:
        runs = list(db.scalars(select(LabRun)))
        assert len(runs) == 1 and runs[0].status == "finished"
        assert runs[0].elapsed_s >= elapsed_at_kill
    for field in ("best_released_pgr", "best_final_pgr", "best_baseline_pgr", "experiments",
                  "submissions", "findings", "probe_flags", "report_path",
                  "best_final_pgr_ci95", "tuned_baseline_final_pgr",
                  "tuned_baseline_final_pgr_ci95", "diff_vs_tuned_baseline", "win"):
        assert field in summary
    if summary["diff_vs_tuned_baseline"] is not None:
        assert summary["win"] is (summary["diff_vs_tuned_baseline"]["ci95"][0] > 0)
    assert summary["submissions"] == len(after[0])
