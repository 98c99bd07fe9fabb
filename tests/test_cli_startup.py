"""``aarlab --help`` starts at once: importing the CLI loads none of the heavy layers."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "sklearn", "scipy", "transformers", "aarlab.w2s", "aarlab.lab.orchestrator")


def test_importing_the_cli_leaves_torch_sklearn_and_scipy_out():
    code = ("import sys, json, aarlab.cli; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(out.stdout) == []


def test_help_lists_every_command_group():
    out = subprocess.run([sys.executable, "-m", "aarlab.cli", "--help"], capture_output=True,
                         text=True, check=True, timeout=120)
    for command in ("task", "baseline", "serve", "run", "replicate", "report"):
        assert command in out.stdout
