"""A task must have a gap to recover: the build reports it, and a task without one is not
served (scoring server, `aarlab run`) unless its builder forced it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from aarlab.store.db import Store
from aarlab.tasks.answer_key import AnswerKey, TaskRefusedError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _home_with_gapless_task(tiny_tweets, home, forced=False):
    """A copy of the tiny tweets task as ``nogap``, its answer key marked with no gap."""
    kit, key = tiny_tweets
    shutil.copytree(kit.dir, home / "tasks" / "nogap" / "kit")
    key_dir = home / "answer-keys" / "nogap"
    shutil.copytree(key.dir, key_dir)
    ref = json.loads((key_dir / "reference.json").read_text())
    ref["gap"] = {**ref["gap"], "mean": 0.004, "ci95": [-0.02, 0.03], "ok": False}
    ref.update(gap_ok=False, forced=forced)
    (key_dir / "reference.json").write_text(json.dumps(ref))
    return AnswerKey(key_dir, kit.format)


def test_refusal_names_the_gap_and_what_to_change(tiny_tweets, tmp_path):
    key = _home_with_gapless_task(tiny_tweets, tmp_path)
    assert not key.gap_ok and not key.servable
    with pytest.raises(TaskRefusedError) as e:
        key.require_servable("nogap")
    msg = str(e.value)
    assert "+0.004 [-0.020, +0.030]" in msg and "--strong-model" in msg
    assert "fewer teacher labels" in msg and "--force" in msg
    forced = _home_with_gapless_task(tiny_tweets, tmp_path / "forced", forced=True)
    assert forced.servable and not forced.gap_ok


async def test_scoring_server_refuses_a_task_without_a_gap(tiny_tweets, settings, tmp_path):
    from aarlab.server.app import create_app

    _home_with_gapless_task(tiny_tweets, tmp_path)
    s = settings.model_copy(update={"home": tmp_path, "admin_token": "test-admin-token",
                                    "db_url": f"sqlite:///{tmp_path / 'lab.db'}"})
    app = create_app(s, Store(s.database_url))
    admin = {"Authorization": "Bearer test-admin-token"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://lab") as c:
        r = await c.post("/v1/admin/researchers", json={"name": "alice"}, headers=admin)
        assert r.status_code == 201, r.text
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        kit, _ = tiny_tweets
        preds = {i: True for i in kit.ids("test")}
        r = await c.post("/v1/tasks/nogap/submissions", headers=h, json={"predictions": preds})
        assert r.status_code == 404, r.text
        assert "not served" in r.text and "gap" in r.text
        # The same rows under a served name are scored: the refusal is the gap, not the data.
        shutil.copytree(kit.dir, tmp_path / "tasks" / "tweets" / "kit")
        shutil.copytree(tiny_tweets[1].dir, tmp_path / "answer-keys" / "tweets")
        r = await c.post("/v1/tasks/tweets/submissions", headers=h, json={"predictions": preds})
        assert r.status_code == 200, r.text


def test_cli_build_refuses_a_task_without_a_gap_and_force_serves_it(settings, tmp_path):
    """A task whose labels are coin flips: no student recovers anything, the build says so."""
    code = """
import random, sys
from aarlab.tasks.registry import Sizes, TaskSpec, register
import aarlab.w2s.ceiling
aarlab.w2s.ceiling.MLP_WEIGHT_DECAY = ()  # the refusal is under test, not the MLP members
def load(sources, seed):
    rng = random.Random(0)
    words = ["red", "green", "blue", "cat", "dog", "sun", "rain", "tree", "car", "sea"]
    rows = [{"id": f"r{i}", "question": "Is it so?",
             "choice": " ".join(rng.choice(words) for _ in range(6)),
             "label": rng.random() < 0.5} for i in range(240)]
    return rows, []
register(TaskSpec("coinflip", "binary", "labels are coin flips", load,
                  sizes=Sizes(40, 100, 100)))
sys.argv = ["aarlab", "task", "build", "coinflip", *sys.argv[1:]]
from aarlab.cli import main
main()
"""
    env = {**os.environ, "AARLAB_HOME": str(tmp_path),
           "AARLAB_SOURCES_ROOT": str(settings.sources_dir)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "refused" in proc.stderr and "coinflip" in proc.stderr
    assert "--strong-model" in proc.stderr and "fewer teacher labels" in proc.stderr
    # The table keeps the name whole and says the task is not served.
    assert "coinflip" in proc.stdout and "no" in proc.stdout
    key = AnswerKey(tmp_path / "answer-keys" / "coinflip", "binary")
    assert not key.servable
    proc = subprocess.run([sys.executable, "-c", code, "--force"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert AnswerKey(tmp_path / "answer-keys" / "coinflip", "binary").servable
    assert "forced" in proc.stdout
