"""The lab picks a member's runner by its policy, and one validation (``parse_policy``) finds a
bad policy: ``Lab.create`` called from Python refuses it, naming the field, before it writes."""

import pytest
from sqlalchemy import func, select

from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.lab.members import LlmMember, SearchMember, runner_for
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.lab.tables import LabMember, LabRun
from aarlab.store.db import Store
from aarlab.store.identity import Researcher


def test_runner_by_policy():
    assert isinstance(runner_for("search"), SearchMember)
    assert isinstance(runner_for("llm:openai:qwen@http://127.0.0.1:8080/v1"), LlmMember)


@pytest.mark.parametrize("policy, says", [
    ("gossip", "policy: expected search or llm:PROVIDER:MODEL, got 'gossip'"),
    ("search:x", "policy: expected search or llm:PROVIDER:MODEL"),  # was taken for search
    ("llm:bard:m", "policy: unknown provider 'bard'"),  # was found only in the member thread
    ("llm:openai:qwen@ftp://x", "policy: expected an http(s) base URL"),
])
def test_a_bad_policy_is_a_clear_error(policy, says):
    with pytest.raises(AarlabError) as e:
        runner_for(policy)
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("policies, says", [
    (["search", "llm:bard:m"], "policies[1]: unknown provider 'bard'"),
    (["serch"], "policies[0]: expected search or llm:PROVIDER:MODEL, got 'serch'"),
    (["search", "llm:openai:bad model"], "policies[1]: expected a model name"),
])
def test_lab_create_refuses_a_bad_policy_before_writing_anything(tmp_path, policies, says):
    s = Settings(home=tmp_path / "home")
    store = Store(s.database_url)
    lab = Lab(s, store, LabOptions(task="tweets", researchers=3, policies=policies))
    with pytest.raises(AarlabError) as e:
        lab.create()
    assert says in str(e.value) and "\n" not in str(e.value)
    assert lab.lab_id is None and lab.members == []
    with store.session() as db:
        for table in (LabRun, LabMember, Researcher):
            assert db.scalar(select(func.count()).select_from(table)) == 0
    assert not (s.home / "labs").exists()


def test_a_failing_researcher_leaves_its_error_as_an_event_said_once_and_cleaned(
        tmp_path, tiny_tweets, settings, monkeypatch):
    """A lab whose researchers died at start sat out its budget with only placement events (the
    reason stayed in memory). The error is the sandbox's output, so hostile: no terminal escape
    or secret of it reaches the event the dashboard shows or the operator's screen."""
    import shutil

    import aarlab.lab.orchestrator as orchestrator
    from aarlab.lab.tables import LabEvent

    kit, key = tiny_tweets
    home = tmp_path / "home"
    shutil.copytree(kit.dir, home / "tasks" / "tweets" / "kit")
    shutil.copytree(key.dir, home / "answer-keys" / "tweets")
    s = Settings(home=home, sources_root=settings.sources_dir, baseline_grid="defaults")
    store = Store(s.database_url)
    warnings: list[str] = []
    lab = Lab(s, store, LabOptions(task="tweets", researchers=1, budget_s=60),
              on_warning=warnings.append)
    lab.create()
    m = lab.members[0]
    monkeypatch.setattr(orchestrator.time, "sleep", lambda s: None)  # the back-off
    monkeypatch.setenv("SOME_API_KEY", "sk-provider-secret-123")
    crash = ("noise\n" * 50 + f"env: AARLAB_TOKEN={m.token} SOME_API_KEY=sk-provider-secret-123\n"
             "\x1b[2J\x1b]0;owned\x07Traceback: [/] ValueError: boom\n")
    lab.record_failure(m, crash, 1)
    lab.record_failure(m, crash, 2)
    with store.session() as db:
        row = db.get(LabMember, m.member_id)
        assert (row.status, row.restarts) == ("restarting", 2)
        texts = [e.payload["text"] for e in db.scalars(select(LabEvent).where(
            LabEvent.researcher_id == m.researcher_id, LabEvent.kind == "error"))]
    assert [t.split(":")[0] for t in texts] == ["attempt 1 failed", "attempt 2 failed"]
    for text in (*texts, *warnings):
        assert "ValueError: boom" in text
        assert m.token not in text and "sk-provider-secret" not in text
        assert not any(not c.isprintable() for c in text.replace("\n", ""))
    assert "[redacted: researcher token]" in texts[0] and texts[0].count("noise") < 20
    assert len(warnings) == 1 and m.name in warnings[0]  # said once, not every restart


def test_a_warning_quoting_brackets_prints_as_text(capsys):
    """A warning may quote a researcher's output; its brackets are not rich markup."""
    from aarlab.commands import run

    run._warn("Traceback: [/] [bold]boom")
    assert "[/] [bold]boom" in capsys.readouterr().err
