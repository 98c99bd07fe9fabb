"""The dashboard's task pages read the baseline cache ``aarlab baseline`` keeps beside the
answer key (``lab.baselines.BaselineCache``: ``{"fingerprint", "version", "defaults": [rows]}``).
The pages read a ``{"best", "all"}`` form no writer makes, so once a cache existed (after any
``aarlab run``) the overview, leaderboard, task page and progress fragment of that task were
500s. And the public view showed each baseline's *test* PGR, final half included, under a
footer promising feedback-part numbers only. Over HTTP to the real app on a real SQLite file."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from aarlab.config import Settings
from aarlab.server.app import create_app
from aarlab.store.db import Store

ADMIN = "baseline-refs-admin"
PAGES = ["/?task=tweets", "/tasks/tweets", "/leaderboard?task=tweets",
         "/fragments/progress?task=tweets"]


def _est(mean: float) -> dict:
    return {"mean": mean, "se": 0.01, "ci95": [mean - 0.02, mean + 0.02], "n_rows": 10,
            "seeds": 5}


@pytest.fixture
def home(tmp_path, tiny_tweets, settings):
    kit, key = tiny_tweets
    root = tmp_path / "home"
    shutil.copytree(kit.dir, root / "tasks" / "tweets" / "kit")
    shutil.copytree(key.dir, root / "answer-keys" / "tweets")
    s = Settings(home=root, sources_root=settings.sources_dir, admin_token=ADMIN)
    return s.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}"})


def _cache(home: Settings, text: str) -> None:
    (home.home / "answer-keys" / "tweets" / "baselines.json").write_text(text)


def test_the_cache_as_aarlab_baseline_writes_it_is_shown_feedback_only(home):
    rows = [{"task": "tweets", "method": "weak_soft", "pgr": _est(0.6111),
             "pgr_feedback": _est(0.2222), "pgr_final": _est(0.9333)},
            {"task": "tweets", "method": "noisy_em", "pgr": _est(0.6543),
             "pgr_feedback": _est(0.4321), "pgr_final": _est(0.8765)}]
    _cache(home, json.dumps({"fingerprint": "x", "version": 1, "defaults": rows,
                             "candidates": []}))
    with TestClient(create_app(home, Store(home.database_url)), base_url="http://lab") as c:
        for page in PAGES:
            r = c.get(page)
            assert r.status_code == 200, (page, r.text[:200])
        public = c.get("/tasks/tweets").text
        assert "0.432" in public and "0.222" in public
        assert public.index("noisy_em") < public.index("weak_soft")  # best feedback first
        for hidden in ("0.654", "0.611", "0.876", "0.933"):  # test or final PGR
            assert hidden not in public
        c.get(f"/login?token={ADMIN}")
        admin = c.get("/tasks/tweets").text
        assert "0.876" in admin and "0.933" in admin


@pytest.mark.parametrize("text", ['{"best": {"method": "x"}}', "not json", "[1, 2]",
                                  '{"defaults": [1, {"method": "m"}, {"pgr_feedback": 3}]}',
                                  '{"defaults": {"a": 1}}', ""])
def test_a_cache_this_page_does_not_know_takes_no_page_down(home, text):
    _cache(home, text)
    with TestClient(create_app(home, Store(home.database_url)), base_url="http://lab") as c:
        for page in PAGES:
            assert c.get(page).status_code == 200, page
        assert "Not computed yet" in c.get("/tasks/tweets").text
