"""``aarlab run --researcher bogus``: an unknown researcher policy is refused before anything
starts (issue 17): one line naming the option and the accepted forms, exit 2, no traceback, and
no lab, store or workspace created."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("policy", ["bogus", "search:fast", "llm:gemini:pro", "llm:openai"])
def test_an_unknown_policy_is_one_line_and_creates_no_lab(tmp_path, policy):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AARLAB_")}
    env |= {"AARLAB_HOME": str(home), "COLUMNS": "40"}  # a narrow terminal must not wrap it
    out = subprocess.run([sys.executable, "-m", "aarlab.cli", "run", "--task", "tweets",
                          "--researcher", "search", "--researcher", policy, "--budget", "1m"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --researcher:"), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert f"{policy!r}" in lines[0] and "expected" in lines[0]  # as typed, and what is accepted
    assert ("search or llm:PROVIDER:MODEL" in lines[0]
            or "expected one of anthropic, openai" in lines[0])
    assert not home.exists() or not any(home.rglob("*")), sorted(home.rglob("*"))
