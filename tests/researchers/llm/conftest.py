"""A real lab for LLM researchers: a fresh home (store, workspaces, transcripts) per test whose
task kits are the session's tiny built ones, the real orchestrator, scoring server and forum,
and bubblewrap sandboxes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from llm_standins import CANARY_KEY

from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.researchers.llm.config import LlmOptions
from aarlab.store.db import Store


@pytest.fixture
def api_keys(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return CANARY_KEY


@pytest.fixture
def run_lab(settings, tiny_tweets, api_keys):
    """``run_lab(policies, llm=LlmOptions(...), **lab_options) -> (Lab, Store)``, run to the end.

    The home is short (AF_UNIX socket paths are limited to 108 bytes) and fresh per test.
    """
    homes: list[Path] = []

    def run(policies: list[str], llm: LlmOptions | None = None, **options) -> tuple[Lab, Store]:
        home = Path(tempfile.mkdtemp(prefix="al-"))
        homes.append(home)
        (home / "tasks").symlink_to(settings.kits_dir, target_is_directory=True)
        s = settings.model_copy(update={
            "home": home, "answer_key_root": settings.answer_keys_dir,
            "db_url": f"sqlite:///{home / 'aarlab.db'}", "snapshots_root": home / "blobs"})
        store = Store(s.database_url)
        opts = LabOptions(task="tweets", researchers=options.pop("researchers", len(policies)),
                          budget_s=options.pop("budget_s", 300), policies=policies,
                          llm=llm or LlmOptions(), **options)
        lab = Lab(s, store, opts, on_warning=lambda msg: None)
        lab.create()
        lab.run()
        return lab, store

    yield run
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
