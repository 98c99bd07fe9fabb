"""Client calls for the lab's own API: telemetry events and publishing a notebook.

A notebook reaches the dashboard only this way: the researcher (or the lab's member runner for
an LLM researcher) hands the lab its text, the lab checks it and keeps the newest copy in the
store, and the dashboard reads the store. No lab process opens a notebook in a workspace.
"""

from __future__ import annotations

import json
import math

# The notebooks the lab keeps, and how much of each: the newest part, a few hundred rounds.
NOTEBOOKS = ("notebook.md", "notebook.jsonl")
NOTEBOOK_MAX_BYTES = 256 * 1024


def newest_part(data: bytes, limit: int = NOTEBOOK_MAX_BYTES) -> bytes:
    """The last ``limit`` bytes of ``data``, starting on a whole line (so on a whole UTF-8
    character): a page shows a notebook's end, and the lab never takes more."""
    if len(data) <= limit:
        return data
    tail = data[-limit:]
    cut = tail.find(b"\n")
    return tail[cut + 1:] if cut >= 0 else b""


def whole_json_lines(data: bytes) -> bytes:
    """``data`` without the lines that do not parse (a line cut short by a kill): the notebook's
    own reader skips them too, and the lab refuses a notebook that holds one."""
    keep = []
    for line in data.splitlines():
        try:
            ok = isinstance(json.loads(line), dict)
        except (ValueError, RecursionError):
            ok = False
        if ok:
            keep.append(line)
    return b"".join(x + b"\n" for x in keep)


def json_safe(value):  # noqa: ANN001, ANN201 - any JSON-like value
    """``value`` with every NaN or infinity replaced by None: the lab refuses an event holding
    one (JSON has no such number), and a score of -inf (a spec with a missing signal) is
    telemetry the lab still wants to count."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class LabAPI:
    """Mixin over ``BaseClient`` (needs ``request``/``post``)."""

    def post_event(self, kind: str, payload: dict) -> dict:
        """Telemetry: ``kind`` is experiment, idea, note, error or status."""
        return self.post("/v1/lab/events", json={"kind": kind, "payload": json_safe(payload)})

    def publish_notebook(self, name: str, data: bytes | str) -> dict:
        """Hand the lab my notebook ``name`` (``notebook.md`` or ``notebook.jsonl``): its newest
        ``NOTEBOOK_MAX_BYTES``, whole JSON lines only for ``.jsonl``. Returns
        ``{"name", "bytes", "changed"}``; a publish is a write: past the lab's
        ``writes_per_minute`` it is refused (429, ``BudgetExceeded`` with ``retry_after``)."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if name.endswith(".jsonl"):
            raw = whole_json_lines(newest_part(raw))
        body = newest_part(raw)
        kind = "application/x-ndjson" if name.endswith(".jsonl") else "text/markdown"
        return self.request("PUT", f"/v1/lab/me/notebooks/{name}", content=body,
                            headers={"Content-Type": f"{kind}; charset=utf-8"})
