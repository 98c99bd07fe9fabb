"""Snapshot code re-run in a sandbox on a re-drawn kit: honest code still works there; code
that copied the answer key has nothing to copy and replicates at nothing."""

from __future__ import annotations

import json

import pytest

from aarlab.replication.method import Method
from aarlab.replication.redraw import redraw
from aarlab.replication.replicate import Target, replicate
from aarlab.sandbox.bwrap import sandbox_available
from tarballs import targz_files

BWRAP, WHY = sandbox_available()
pytestmark = pytest.mark.skipif(not BWRAP, reason=f"bubblewrap cannot run here: {WHY}")

# Honest: the weak teacher's own test labels, from the kit the code is given.
HONEST = '''import json, sys
from pathlib import Path
import numpy as np
kit = Path(sys.argv[1])
ids = [json.loads(l)["id"] for l in open(kit / "test.jsonl")]
labels = json.loads((kit / "manifest.json").read_text())["labels"]
probs = np.load(kit / "weak" / "seed0.npz")["test"]
json.dump({i: labels[int(k)] for i, k in zip(ids, probs.argmax(1))}, open("predictions.json", "w"))
'''
CHEAT = '''import json, os, sys
for p in ("../answer-keys/snli-pref/labels.json", os.path.expanduser(
        "~/.cache/aarlab/answer-keys/snli-pref/labels.json")):
    try:
        json.dump(json.load(open(p))["test"], open("predictions.json", "w"))
        break
    except OSError:
        pass
'''


def test_snapshot_code_reruns_in_a_sandbox_on_the_redrawn_kit(tiny_snli, settings):
    kit, key = tiny_snli
    rkit, rkey = redraw(kit, key, settings, seed=5)
    assert rkey.gap_ok  # a split with a gap to recover: PGR and "short" mean something there
    target = [Target(rkit.name, "redrawn", rkit, rkey, rkit.seeds)]
    leaked = json.loads((key.dir / "labels.json").read_text())["test"]

    honest = Method(ref="h", task=kit.name, files={"run.py": HONEST},
                    archive=targz_files({"run.py": HONEST}), claim={"pgr_final": 0.0})
    row = replicate(honest, target, settings=settings)["results"][0]
    assert row["how"].startswith("run.py re-run in a sandbox (exit 0")
    assert row["covered"] == row["n_test"]
    # weak seed 0 alone: its final-part PGR sits near 0 (the floor is the mean of the seeds)
    assert abs(row["pgr_final"]["mean"]) < 0.5, row

    cheat = Method(ref="c", task=kit.name, files={"run.py": CHEAT},
                   archive=targz_files({"run.py": CHEAT, "predictions.json": json.dumps(leaked)}),
                   predictions=leaked, claim={"pgr_final": 2.0})
    row = replicate(cheat, target, settings=settings)["results"][0]
    assert "no predictions.json" in row["how"] and row["covered"] == 0
    assert row["pgr_final"]["mean"] < 0 and row["falls_short"]


def test_a_reruns_stderr_reaches_the_report_and_terminal_without_escapes(tiny_snli, settings):
    """The last line a failing snapshot writes to stderr is quoted in the row's ``how`` (the
    CLI table, the final report): no terminal escape (an OSC 52 clipboard write, a screen
    clear) may ride on it, and the CLI prints it as text, not rich markup."""
    from rich.console import Console
    from rich.table import Table

    from aarlab.commands.ui import plain
    from aarlab.replication.sandbox_run import rerun_snapshot

    hostile = ('import sys; sys.stderr.write("\\x1b]52;c;ZWNobyBwd25lZA==\\x07\\x1b[2J'
               '[link=https://evil.example]click[/link]\\u202e\\x9b31m\\n\\n")')
    preds, how = rerun_snapshot(targz_files({"run.py": hostile}), tiny_snli[0].dir, settings,
                                timeout_s=120)
    assert preds == {} and "no predictions.json" in how
    assert not any(not c.isprintable() for c in how), repr(how)
    assert "click" in how  # the words themselves are kept
    console = Console(record=True, width=300, force_terminal=True)
    table = Table("how")
    table.add_row(plain(how))
    console.print(table)
    out = console.export_text(styles=True)
    assert "\x1b]8;" not in out and "\x1b]52" not in out  # no hyperlink, no clipboard write
