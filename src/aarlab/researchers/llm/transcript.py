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

from aarlab import safe_files
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


def tail(path: Path, n: int, limit: int = 256 * 1024) -> list[dict]:
    """The newest ``n`` lines of a transcript, newest first, from its last ``limit`` bytes; []
    when it cannot be read. The lab writes transcripts outside every sandbox, but the path comes
    from the store: read through ``safe_files`` anyway (no link, FIFO or device followed)."""
    p = Path(path)
    try:
        data, cut = safe_files.tail_inside(p.parent, p.name, limit)
    except (OSError, safe_files.UnsafePath):
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    out: list[dict] = []
    for line in reversed(lines[1:] if cut else lines):  # a cut tail's first line is partial
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        if isinstance(entry, dict):
            out.append(entry)
        if len(out) >= n:
            break
    return out
