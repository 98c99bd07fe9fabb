"""A lab's per-researcher submission cap (``aarlab run --max-submissions``) is the server's to
enforce, not the researcher's: a scripted LLM researcher in a real lab (bubblewrap sandbox,
the lab's own socket) that ignores AARLAB_MAX_SUBMISSIONS and keeps submitting gets 429s past
the cap, and the store holds no more than the cap. The tuned baseline it is compared with is
given exactly that many submissions, so more would be more feedback than its budget."""

from __future__ import annotations

import json

import pytest
from llm_standins import CANARY_KEY, LabRunner, StandIn, Turn, call, needs_bwrap, tool_results
from sqlalchemy import func, select

from aarlab.researchers.llm.config import LlmOptions
from aarlab.scoring.tables import Submission

pytestmark = needs_bwrap
CAP = 2
# From inside the sandbox, with its own token: a task of the store that is not the lab's.
OTHER_TASK = '''python - <<'PY'
import os
from aarlab.client import LabClient, LabError
with LabClient(socket=os.environ["AARLAB_SOCKET"], token=os.environ["AARLAB_TOKEN"]) as c:
    for what, call in (("other-task", lambda: c.post("/v1/tasks/snli-pref/submissions",
                                                     json={"predictions": {}})),
                       ("kit", lambda: c.get("/v1/tasks/snli-pref/kit/digest"))):
        try:
            call()
            print(what, "open")
        except LabError as e:
            print(what, e.status)
PY'''


@pytest.fixture
def runner(settings, tiny_tweets, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY_KEY)
    r = LabRunner(settings)
    yield r
    r.cleanup()


def test_a_researcher_ignoring_its_cap_is_refused_by_the_server(runner, tiny_tasks, tiny_tweets):
    kit, _ = tiny_tweets
    preds = [{i: (n + k) % 3 == 0 for n, i in enumerate(kit.ids("test"))} for k in range(4)]
    script = [
        Turn("Write four prediction files.",
             [call("write_file", path=f"p{k}.json", content=json.dumps(p))
              for k, p in enumerate(preds)]),
        Turn("Submit them all, whatever my budget says.",
             [call("submit", path=f"p{k}.json", method=f"try {k}") for k in range(4)]),
        Turn("And try another task of the store.", [call("shell", command=OTHER_TASK)]),
        Turn("Done.")]
    with StandIn("anthropic", script, key=CANARY_KEY) as api:
        _, store = runner.run([f"llm:anthropic:claude-opus-4-6@{api.base_url}"],
                              llm=LlmOptions(max_sessions=1), max_submissions=CAP)
        bodies = api.requests
    results = tool_results(bodies[2])
    assert len(results) == 4
    assert all(not r.startswith("error:") for r in results[:CAP]), results
    for r in results[CAP:]:
        assert r.startswith("error:") and "budget" in r and "429" in r, r
    other = tool_results(bodies[3])[0]
    assert "other-task 404" in other and "kit 404" in other, other
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == CAP


def test_a_finished_labs_tokens_are_dead(runner, settings):
    """A member can write its token into its workspace and publish it (a snapshot, a finding):
    snapshots and findings outlive the lab, so a later lab's researcher on the same store would
    get a second budget and a fresh Ladder. When the run ends, its members' tokens die."""
    from fastapi.testclient import TestClient

    from aarlab.server.app import create_app

    script = [Turn("Keep my token.", [call("shell", command="printf %s \"$AARLAB_TOKEN\" > t")]),
              Turn("Done.")]
    with StandIn("anthropic", script, key=CANARY_KEY) as api:
        lab, store = runner.run([f"llm:anthropic:claude-opus-4-6@{api.base_url}"],
                                llm=LlmOptions(max_sessions=1))
    token = (lab.members[0].workspace / "t").read_text()
    assert token.startswith("aar_"), token
    app = create_app(lab.settings, store, role="researcher")
    with TestClient(app, base_url="http://lab") as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
