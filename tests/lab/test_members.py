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
