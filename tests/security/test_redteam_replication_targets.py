"""Replication's "other tasks" must be data the method was not developed on. Before, every
built task counted: in a suite lab the suite's tasks (every sandbox mounted their kits and got
feedback on them), and an LM task built from the method's own task (the same rows; its test
rows are the source's) were reported as generalisation to another task."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from aarlab.config import Settings
from aarlab.replication.method import Method
from aarlab.replication.replicate import same_rows, targets_for
from aarlab.tasks.lm_tasks import LMTaskSpec
from aarlab.tasks.spec import TASKS


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
