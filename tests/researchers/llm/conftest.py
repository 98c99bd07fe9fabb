"""A real lab for LLM researchers: a fresh home (store, workspaces, transcripts) per test whose
task kits are the session's tiny built ones, the real orchestrator, scoring server and forum,
and bubblewrap sandboxes."""

from __future__ import annotations

import pytest
from llm_standins import CANARY_KEY, LabRunner


@pytest.fixture
def api_keys(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return CANARY_KEY


@pytest.fixture
def run_lab(settings, tiny_tweets, api_keys):
    """``run_lab(policies, llm=LlmOptions(...), **lab_options) -> (Lab, Store)``, run to the end."""
    runner = LabRunner(settings)
    yield runner.run
    runner.cleanup()
