"""A task drawn from another's rows (an LM task and its source) is no new task.

Replication's "other tasks" must be data the method was not developed on. Before, every
built task counted: in a suite lab the suite's tasks (every sandbox mounted their kits and got
feedback on them), and an LM task built from the method's own task (the same rows; its test
rows are the source's) were reported as generalisation to another task. Likewise a suite
could hold both (a suite mean counting the same rows twice), and the scoring server gave each
its own submission budget: twice the probes over the same feedback labels."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from aarlab.commands.run import parse_suite
from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.replication.method import Method
from aarlab.replication.replicate import same_rows, targets_for
from aarlab.tasks.lm_tasks import LMTaskSpec
from aarlab.tasks.spec import TASKS
from redteam_lab import register, served_lab


@pytest.fixture
def home(tmp_path, tiny_tasks, settings):
    """A home with the tiny tweets and snli-pref tasks and ``tweets-lm``, built from tweets."""
    root = tmp_path / "home"
    for name, (kit, key) in tiny_tasks.items():
        shutil.copytree(kit.dir, root / "tasks" / name / "kit")
        shutil.copytree(key.dir, root / "answer-keys" / name)
    kit, key = tiny_tasks["tweets"]
    shutil.copytree(kit.dir, root / "tasks" / "tweets-lm" / "kit")
    shutil.copytree(key.dir, root / "answer-keys" / "tweets-lm")
    manifest = root / "tasks" / "tweets-lm" / "kit" / "manifest.json"
    # what the LM build writes (lm_build.py)
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "name": "tweets-lm",
                                    "source_task": "tweets"}))
    TASKS["tweets-lm"] = LMTaskSpec(**{**replace(TASKS["tweets"]).__dict__,
                                       "name": "tweets-lm", "default": False},
                                    source="tweets", weak_model="w")
    try:
        yield Settings(home=root, sources_root=settings.sources_dir, baseline_grid="defaults")
    finally:
        TASKS.pop("tweets-lm", None)


def _others(targets) -> set[str]:
    return {t.name for t in targets if t.kind == "other-task"}


def test_a_task_of_the_same_rows_is_not_another_task(home):
    assert same_rows("tweets-lm", "tweets") and same_rows("tweets", "tweets-lm")
    assert not same_rows("tweets", "snli-pref")
    m = Method(ref="1", task="tweets", spec={"method": "weak_soft"})
    assert _others(targets_for(m, home, ())) == {"snli-pref"}
    m = Method(ref="2", task="tweets-lm", spec={"method": "weak_soft"})
    assert _others(targets_for(m, home, ())) == {"snli-pref"}
    # asked for by name, still not "another task"
    assert _others(targets_for(m, home, (), other_tasks=["tweets", "snli-pref"])) == {"snli-pref"}


def test_a_suite_labs_own_tasks_are_not_held_out(home):
    m = Method(ref="1", task="tweets", spec={"method": "weak_soft"})
    targets = targets_for(m, home, (), developed_on=("tweets", "snli-pref"))
    assert _others(targets) == set()
    assert [t.kind for t in targets] == ["fresh-seeds"]  # its own fresh seeds still replicate


def test_a_suite_holds_no_two_tasks_of_the_same_rows(home):
    with pytest.raises(AarlabError, match="'tweets-lm' is drawn from the same rows as 'tweets'"):
        parse_suite("snli-pref,tweets-lm", "tweets", home)
    with pytest.raises(AarlabError, match="same rows"):
        parse_suite("tweets,tweets-lm", "snli-pref", home)
    assert sorted(parse_suite("all", "tweets", home)) == ["snli-pref"]
    assert parse_suite("all", "tweets-lm", home) == ["snli-pref"]


def test_tasks_of_the_same_rows_share_one_submission_budget(home, tmp_path):
    s = home.model_copy(update={"submissions_total": 2})
    rng = np.random.default_rng(0)
    with served_lab(s, tmp_path) as (_, _, c):
        h = register(c, "mallory")

        def submit(task: str) -> int:
            ids = [json.loads(line)["id"] for line in
                   (home.home / "tasks" / task / "kit" / "test.jsonl").read_text().splitlines()]
            labels = json.loads((home.home / "tasks" / task / "kit" / "manifest.json")
                                .read_text())["labels"]
            pred = {i: labels[int(k)] for i, k in zip(ids, rng.integers(0, 2, len(ids)),
                                                       strict=True)}
            return c.post(f"/v1/tasks/{task}/submissions", headers=h,
                          json={"predictions": pred}).status_code

        assert [submit("tweets"), submit("tweets")] == [200, 200]
        # the same feedback labels under another name: no fresh budget (was 200)
        assert submit("tweets-lm") == 429
        assert submit("snli-pref") == 200  # other rows: a budget of their own, as before
