"""The researcher's notebook: one JSON line per experiment, in its own workspace.

It is the researcher's memory across restarts: a restarted researcher reads it back and goes on
where it stopped instead of repeating itself. An experiment's line holds the spec, why it was
tried, its label-free signals and selection score (no gold number: the kit has none) and, when
it was submitted, what the scorer released (``released_pgr``, ``new_best``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from aarlab.client import BudgetExceeded, LabClient, LabError
from aarlab.client.lab import NOTEBOOK_MAX_BYTES


class Notebook:
    def __init__(self, path: Path):
        self.path = path

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a kill: the rest of the notebook still counts
        return out

    def append(self, entry: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


class Journal:
    """``notebook.md``: the same rounds as prose a person can follow (hypothesis, what was run,
    the label-free evidence, the decision and why). The dashboard shows its tail."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text.rstrip() + "\n\n")


def publish(client: LabClient, paths: Iterable[Path], final: bool = False) -> None:
    """Hand the lab the newest part of each notebook file: the dashboard shows only the copy
    the lab keeps, never the workspace. Never stops research: a refused publish is simply
    redone after the next round (``final``: once more, after the wait the lab asks for)."""
    for path in paths:
        try:
            with open(path, "rb") as f:
                # One byte more than the cap, so a cut front line is seen and dropped.
                f.seek(max(0, os.fstat(f.fileno()).st_size - NOTEBOOK_MAX_BYTES - 1))
                data = f.read(NOTEBOOK_MAX_BYTES + 1)
        except OSError:
            continue
        for attempt in (1, 2):
            try:
                client.publish_notebook(path.name, data)
            except BudgetExceeded as e:
                if final and attempt == 1:
                    time.sleep(min(5.0, e.retry_after or 1.0))
                    continue
            except LabError:
                pass
            break
