"""Red-team pass on what the scoring API tells a researcher, through the real ASGI app.

- ``/v1/me`` must credit a researcher only with scores the Ladder released to *them*: an answer
  that repeats the lab's best (a fresh researcher's bad first submission, an exact copy of
  someone's result) is not their own release, exactly as on the leaderboard.
- A built task that is not served (its gap is not clearly above 0) must not take ``/v1/tasks``
  down for everyone: it is left out of the listing, and only asking for it is a 404.
"""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from aarlab.server.app import create_app
from aarlab.store.db import Store
from aarlab.tasks.paths import answer_key_dir, kit_dir

ADMIN = "redteam-admin"


def _client(settings, tmp_path, **extra) -> TestClient:
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN, "ladder_safety": 1.0, **extra})
    return TestClient(create_app(s, Store(s.database_url)), base_url="http://lab")


def _register(c: TestClient, name: str) -> dict[str, str]:
    r = c.post("/v1/admin/researchers", json={"name": name},
               headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _submit(c: TestClient, h: dict, kit, pred) -> dict:
    ids, labels = kit.ids("test"), kit.label_names
    r = c.post("/v1/tasks/tweets/submissions", headers=h, json={
        "predictions": {i: labels[int(k)] for i, k in zip(ids, pred, strict=True)}})
    assert r.status_code == 200, r.text
    return r.json()


def test_me_credits_only_the_researchers_own_releases(settings, tiny_tweets, tmp_path):
    kit, key = tiny_tweets
    truth = key.labels("test", kit.ids("test"))
    with _client(settings, tmp_path) as c:
        alice, mallory = _register(c, "alice"), _register(c, "mallory")
        best = _submit(c, alice, kit, truth)  # a perfect submission: released
        assert best["new_best"] and best["released_pgr"] is not None
        # mallory's garbage and an exact copy of alice's vector are answered with alice's
        # release; neither is a release of mallory's
        bad = _submit(c, mallory, kit, 1 - truth)
        copy = _submit(c, mallory, kit, truth)
        assert not bad["new_best"] and not copy["new_best"]
        me = c.get("/v1/me", headers=mallory).json()
        assert me["best_released_pgr"] == {}, me
        board = c.get("/v1/tasks/tweets/leaderboard", headers=mallory).json()
        assert [r["researcher"] for r in board["by_researcher"]] == ["alice"]
        assert c.get("/v1/me", headers=alice).json()["best_released_pgr"] == {
            "tweets": best["released_pgr"]}


@pytest.fixture
def unserved(settings, tiny_tweets):
    """A copy of tiny tweets built under another name whose gap check failed (not forced)."""
    name = "unserved-copy"
    kit, key = kit_dir(settings, name), answer_key_dir(settings, name)
    shutil.copytree(kit_dir(settings, "tweets"), kit)
    shutil.copytree(answer_key_dir(settings, "tweets"), key)
    ref = json.loads((key / "reference.json").read_text())
    ref.update(gap_ok=False, forced=False)
    (key / "reference.json").write_text(json.dumps(ref))
    yield name
    shutil.rmtree(kit.parent)
    shutil.rmtree(key)


def test_an_unserved_task_does_not_take_the_task_list_down(settings, unserved, tmp_path):
    with _client(settings, tmp_path) as c:
        h = _register(c, "alice")
        r = c.get("/v1/tasks", headers=h)
        assert r.status_code == 200, r.text
        names = [t["name"] for t in r.json()]
        assert "tweets" in names and unserved not in names
        r = c.post(f"/v1/tasks/{unserved}/submissions", headers=h, json={"predictions": {}})
        assert r.status_code == 404 and "not served" in r.text


def test_a_labs_server_scores_and_serves_only_the_labs_tasks(settings, tiny_tasks, tmp_path):
    """A member's token must not open other tasks of the store (a fresh budget and Ladder on
    each, feedback outside its lab): the lab's server names its tasks (``served_tasks``)."""
    with _client(settings, tmp_path, served_tasks=("tweets",)) as c:
        h = _register(c, "alice")
        assert [t["name"] for t in c.get("/v1/tasks", headers=h).json()] == ["tweets"]
        for path in ("/v1/tasks/snli-pref/kit", "/v1/tasks/snli-pref/kit/digest",
                     "/v1/tasks/snli-pref/leaderboard"):
            assert c.get(path, headers=h).status_code == 404, path
        r = c.post("/v1/tasks/snli-pref/submissions", headers=h, json={"predictions": {}})
        assert r.status_code == 404 and "no served task" in r.text
        assert c.get("/v1/tasks/tweets/kit/digest", headers=h).status_code == 200
