"""The lab picks a member's runner by its policy's prefix, and names the field on a bad one."""

import pytest

from aarlab.errors import AarlabError
from aarlab.lab.members import LlmMember, SearchMember, runner_for


def test_runner_by_policy_prefix():
    assert isinstance(runner_for("search"), SearchMember)
    assert isinstance(runner_for("llm:openai:qwen@http://127.0.0.1:8080/v1"), LlmMember)


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(AarlabError, match="policy: expected one of llm, search"):
        runner_for("gossip")
