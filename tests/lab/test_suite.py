"""Suite labs: every researcher sees every suite kit (read-only, no key), may submit to each task,
and the headline is the method best on the suite mean of feedback halves, reported on final."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import numpy as np
import pytest

from aarlab.config import Settings
from aarlab.lab.backends.local import LocalBackend
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.lab.report import render_markdown, suite_section
from aarlab.lab.researcher_env import ResearcherEnv
from aarlab.lab.tables import LabMember, LabRun
from aarlab.sandbox.bwrap import sandbox_available
from aarlab.sandbox.errors import SandboxError
from aarlab.sandbox.factory import make_sandbox
from aarlab.sandbox.spec import SandboxSpec
from aarlab.scoring.budgets import budget_state
from aarlab.scoring.probes import pack
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher
from aarlab.tasks.scorer import Scorer

BWRAP, WHY = sandbox_available()
needs_bwrap = pytest.mark.skipif(not BWRAP, reason=f"bubblewrap cannot run here: {WHY}")


def suite_home(tmp_path, tiny_tasks, settings) -> Settings:
    """A fresh AARLAB_HOME with both tiny tasks built (kits and answer keys)."""
    home = tmp_path / "home"
    for name, (kit, key) in tiny_tasks.items():
        shutil.copytree(kit.dir, home / "tasks" / name / "kit")
        shutil.copytree(key.dir, home / "answer-keys" / name)
    return Settings(home=home, sources_root=settings.sources_dir, baseline_grid="defaults")


@needs_bwrap
def test_every_suite_kit_is_mounted_read_only_and_named_in_the_env(tmp_path, tiny_tasks,
                                                                   settings):
    s = suite_home(tmp_path, tiny_tasks, settings)
    store = Store(s.database_url)
    lab = Lab(s, store, LabOptions(task="tweets", suite=["snli-pref"], researchers=1,
                                   budget_s=60))
    lab.create()
    lab.backend = LocalBackend(s)
    m = lab.members[0]
    spec = SandboxSpec(name=m.name, workspace=m.workspace,
                       kit=s.home / "tasks" / "tweets" / "kit")
    box = lab.open_sandbox(m, spec)  # the one place the suite joins a sandbox
    probe = ("import json, os, pathlib\n"
             "suite = json.loads(os.environ['AARLAB_SUITE'])\n"
             "out = {t: sorted(p.name for p in pathlib.Path(d).iterdir())\n"
             "       for t, d in suite.items()}\n"
             "try:\n"
             "    open(pathlib.Path(suite['snli-pref']) / 'x', 'w')\n"
             "    out['wrote'] = True\n"
             "except OSError:\n"
             "    out['wrote'] = False\n"
             "out['keys'] = [str(p) for p in pathlib.Path('/').rglob('reference.json')][:3]\n"
             "print(json.dumps(out))\n")
    res = box.exec([box.python, "-c", probe], timeout=60)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert "manifest.json" in seen["snli-pref"]  # the other task's kit, inside the sandbox
    assert seen["wrote"] is False  # read-only
    assert seen["keys"] == []  # no answer key of either task reaches the sandbox
    env = ResearcherEnv.from_env({"AARLAB_TOKEN": "t", "AARLAB_TASK": "tweets",
                                  "AARLAB_DEADLINE": "1",
                                  **box._base_env()})  # what the researcher parses
    assert env.suite == {"snli-pref": "/suite/snli-pref"}


def test_a_suite_kit_reaching_an_answer_key_is_refused(tmp_path, tiny_tasks, settings):
    s = suite_home(tmp_path, tiny_tasks, settings)
    spec = SandboxSpec(name="r", workspace=tmp_path / "ws",
                       suite={"snli-pref": s.answer_keys_dir / "snli-pref"})
    with pytest.raises(SandboxError, match=r"suite\[snli-pref\]"):
        make_sandbox(spec, allow_unsandboxed=True, settings=s)
    with pytest.raises(ValueError, match="bad task name"):
        SandboxSpec(name="r", workspace=tmp_path / "ws", suite={"../x": tmp_path})


def _sub(s, rid: int, task: str, method: str, pred, scorer: Scorer, released=None):
    sc = scorer.score(pred)
    row = Submission(researcher_id=rid, task=task, created_at=datetime.now(UTC),
                     n_rows=len(pred), predictions=pack(pred), method=method,
                     **{f"acc_{p}": sc.accuracy[p] for p in sc.accuracy},
                     **{f"pgr_{p}": sc.pgr[p] for p in sc.pgr},
                     released_pgr=released, new_best=released is not None)
    s.add(row)
    s.flush()
    return row.id


def _fixed(kit, key, part_rows: dict[str, int]):
    """The weak teacher's predictions, corrected on the first n wrong rows of each part (n < 0:
    broken on the first -n right rows)."""
    ids = kit.ids("test")
    gold, pred = key.labels("test", ids), kit.weak_probs("test", 0).argmax(1).copy()
    for part, n in part_rows.items():
        rows = np.isin(ids, key.parts[part])
        if n >= 0:
            fix = np.flatnonzero((pred != gold) & rows)[:n]
            pred[fix] = gold[fix]
        else:
            hurt = np.flatnonzero((pred == gold) & rows)[:-n]
            pred[hurt] = 1 - gold[hurt]
    return pred


def test_suite_headline_picks_the_best_suite_mean_of_feedback(tmp_path, tiny_tasks, settings):
    s = suite_home(tmp_path, tiny_tasks, settings)
    store = Store(s.database_url)
    store.create_all()
    tasks = ["tweets", "snli-pref"]
    known = {}
    for t in tasks:
        kit, key = tiny_tasks[t]
        weak = kit.weak_probs("test", 0).argmax(1)
        known[t] = (Scorer(key, kit.ids("test")), {"method": "weak_soft"}, weak)
    with store.session() as db:
        lab = LabRun(task="tweets", config={"suite": ["snli-pref"]})
        db.add(lab)
        db.flush()
        r, _ = add_researcher(db, "r0")
        db.add(LabMember(lab_id=lab.id, researcher_id=r.id, direction="d", workspace="w"))
        ids = {}
        for t in tasks:
            kit, key = tiny_tasks[t]
            sc = known[t][0]
            # "steady" helps on both tasks; "spiky" is best on tweets, harmful on snli-pref;
            # "lonely" is best of all on tweets but never tried on snli-pref.
            ids["steady", t] = _sub(db, r.id, t, "steady", _fixed(kit, key, {
                "feedback": 6, "final": 6}), sc, released=0.3)
            ids["spiky", t] = _sub(db, r.id, t, "spiky", _fixed(kit, key, {
                "feedback": 10 if t == "tweets" else -10, "final": 10 if t == "tweets" else -10}),
                sc, released=0.4)
        kit, key = tiny_tasks["tweets"]
        _sub(db, r.id, "tweets", "lonely", _fixed(kit, key, {"feedback": 30, "final": 30}),
             known["tweets"][0], released=0.9)
        # budgets count per task: two tasks' submissions do not share one budget
        per_task = budget_state(db, r.id, 100, 3, tasks={"snli-pref"})
        assert per_task.used_total == 2 and budget_state(db, r.id, 100, 3).used_total == 5
        lab_id = lab.id
    su = suite_section(store, s, lab_id, tasks, budget=3, threads=1, known=known)
    assert su["method"] == "steady" and su["covered"] == tasks
    for t in tasks:
        row = su["per_task"][t]
        assert row["submission_id"] == ids["steady", t]
        assert row["pick"]["ci95"][0] <= row["pick"]["mean"] <= row["pick"]["ci95"][1]
        assert abs(row["tuned"]["mean"]) < 0.2  # the weak teacher's seed 0: PGR about 0
        assert row["diff"]["mean"] == pytest.approx(row["pick"]["mean"] - row["tuned"]["mean"])
    mean = su["final_mean"]
    assert mean["mean"] == pytest.approx(np.mean([su["per_task"][t]["pick"]["mean"]
                                                  for t in tasks]))
    assert mean["ci95"][0] < mean["mean"] < mean["ci95"][1]
    assert mean["se"] < max(su["per_task"][t]["pick"]["se"] for t in tasks)  # pooled: tighter
    md = render_markdown({"lab_id": lab_id, "task": "tweets", "elapsed_s": 1, "experiments": 0,
                          "submissions": 5, "probe_flags": 0, "findings": 0, "sandboxed": True,
                          "best_method": None, "best_final_pgr": None,
                          "best_released_pgr": None, "best_baseline_pgr": None,
                          "best_baseline_method": None, "researchers": {}, "suite": su},
                         "p.png")
    assert "## Suite" in md and "**suite mean**" in md and "`steady`" in md


def _row(method: str, task: str, feedback: float, sid: int):
    from types import SimpleNamespace
    return SimpleNamespace(id=sid, method=method, task=task, pgr_feedback=feedback,
                           is_probe=False, new_best=False, probe_of=None, released_pgr=None)


def test_suite_pick_prefers_a_method_never_below_the_teacher():
    from aarlab.lab.suite import pick_method
    tasks = ["a", "b", "c"]
    # "tilted" has the best mean (0.4) but loses to the teacher on c; "even" never does.
    subs = [_row("tilted", "a", 0.8, 1), _row("tilted", "b", 0.6, 2), _row("tilted", "c", -0.2, 3),
            _row("even", "a", 0.3, 4), _row("even", "b", 0.3, 5), _row("even", "c", 0.1, 6)]
    method, by = pick_method(subs, tasks)
    assert method == "even" and [x.id for x in by.values()] == [4, 5, 6]
    # when every method loses somewhere, the floor is dropped rather than picking nothing
    worse = [_row("even", "c", -0.5, 7) if x.id == 6 else x for x in subs]
    assert pick_method(worse, tasks)[0] == "tilted"


def test_suite_pick_floor_is_weak_soft_where_it_was_submitted():
    from aarlab.lab.suite import pick_method
    tasks = ["a", "b"]
    # "lossy" beats the teacher (PGR > 0) everywhere and has the best mean, but is below plain
    # W2S on b: a suite lab picked such a method, 0.06 under weak_soft on reviews' final half.
    subs = [_row("weak_soft", "a", 0.0, 1), _row("weak_soft", "b", 0.3, 2),
            _row("lossy", "a", 0.9, 3), _row("lossy", "b", 0.2, 4),
            _row("safe", "a", 0.5, 5), _row("safe", "b", 0.3, 6)]
    assert pick_method(subs, tasks)[0] == "safe"
    # where weak_soft itself is below the teacher, the floor is the teacher (PGR 0)
    below = [_row("weak_soft", "a", -0.2, 1), _row("weak_soft", "b", 0.3, 2),
             _row("lossy", "a", -0.1, 3), _row("lossy", "b", 0.9, 4),
             _row("safe", "a", 0.0, 5), _row("safe", "b", 0.3, 6)]
    assert pick_method(below, tasks)[0] == "safe"
