"""Fixtures shared by the task tests."""

from __future__ import annotations

import shutil

import pytest

from aarlab.kits.kit import TaskKit
from aarlab.tasks.answer_key import AnswerKey


@pytest.fixture
def task_copy(tiny_snli, tmp_path):
    """A private copy of the tiny snli-pref kit and answer key, without any baseline cache."""
    kit, key = tiny_snli
    shutil.copytree(kit.dir, tmp_path / "kit")
    shutil.copytree(key.dir, tmp_path / "key")
    for p in (tmp_path / "key").glob("baselines*"):  # the caches: files, and folders
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return TaskKit(tmp_path / "kit"), AnswerKey(tmp_path / "key", kit.format)
