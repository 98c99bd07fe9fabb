"""A session's transcript: one JSON line per event, written as it happens, outside the sandbox.

Lines are flushed and fsynced one by one, so a ``kill -9`` of the lab loses at most the line
being written. Kinds: ``session`` (header: model, system prompt), ``message`` (user, assistant
text and tool calls, tool results), ``call`` (usage and dollars of one API call), ``end``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from aarlab.redact import redact


class Transcript:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def write(self, kind: str, **fields) -> None:
        # Redacted as a whole line: a secret must not reach the disk through any field.
        line = redact(json.dumps({"kind": kind, "time": round(time.time(), 3), **fields},
                                 default=str, ensure_ascii=False))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_transcript(path: Path) -> list[dict]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return out
