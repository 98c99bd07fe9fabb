"""The tools an LLM researcher gets, and how the lab carries each one out.

Commands and file edits run inside the researcher's sandbox (``Sandbox.exec`` / ``read_file`` /
``write_file``); the lab's API (submit, leaderboard, forum) is called with the researcher's own
token, exactly as if the researcher had called it from inside. Every failure comes back to the
model as an error result with a one-line reason, never as an exception in the loop; long outputs
are cut in the middle with a note saying how much was cut and how to see the rest.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from aarlab.client import LabClient, LabError
from aarlab.errors import AarlabError
from aarlab.redact import redact
from aarlab.researchers.llm.config import LlmOptions
from aarlab.researchers.llm.providers.base import ToolCall, ToolResult, ToolSpec
from aarlab.researchers.llm.textcalls import check_arguments, signature
from aarlab.sandbox.base import Sandbox
from aarlab.sandbox.errors import SandboxError

NOTEBOOK = "notebook.md"


def clip(text: str, limit: int, hint: str = "") -> str:
    """At most ``limit`` characters: the head and the (usually more telling) tail, cut noted."""
    if len(text) <= limit:
        return text
    head, tail = int(limit * 0.4), int(limit * 0.6)
    cut = len(text) - head - tail
    note = f"\n[… {cut} of {len(text)} characters cut here{'; ' + hint if hint else ''} …]\n"
    return text[:head] + note + text[-tail:]


def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


_S = {"type": "string"}
_I = {"type": "integer"}

SPECS: list[ToolSpec] = [
    ToolSpec("shell", "Run a bash command in your sandbox (cwd: your workspace). Returns exit "
             "code, stdout and stderr, cut in the middle when long. No network. Use it to run "
             "Python scripts, e.g. `python method.py`.",
             _obj({"command": _S, "timeout_s": {**_I, "description": "Default 300."}},
                  ("command",))),
    ToolSpec("read_file", "Read a text file: in your workspace, or read-only ones such as the "
             "task kit. Lines from start_line (1-based), at most max_lines.",
             _obj({"path": _S, "start_line": _I, "max_lines": _I}, ("path",))),
    ToolSpec("write_file", "Create or overwrite a file in your workspace.",
             _obj({"path": _S, "content": _S}, ("path", "content"))),
    ToolSpec("edit_file", "Replace exactly one occurrence of old_text by new_text in a workspace "
             "file (all occurrences with replace_all).",
             _obj({"path": _S, "old_text": _S, "new_text": _S,
                   "replace_all": {"type": "boolean"}}, ("path", "old_text", "new_text"))),
    ToolSpec("list_files", "List files under a path (default: your workspace) to a depth.",
             _obj({"path": _S, "depth": _I})),
    ToolSpec("submit", "Score test predictions from a workspace file: a JSON object "
             "{test row id: label} or JSON lines {\"id\": ..., \"label\": ...}. Returns the "
             "released feedback PGR (rounded by the Ladder rule; counts against your budget).",
             _obj({"path": _S, "method": {**_S, "description": "Short name of the method."},
                   "snapshot_id": {**_S, "description": "A snapshot you uploaded: the code "
                                   "that made these predictions."},
                   "seeds": {"type": "array", "items": _I,
                             "description": "The weak-teacher seeds behind these predictions "
                                            "(e.g. the seeds you voted over); replication "
                                            "re-runs your method on other seeds."}},
                  ("path", "method"))),
    ToolSpec("leaderboard", "The task's leaderboard: best released PGR per researcher/method.",
             _obj({})),
    ToolSpec("forum_search", "Search the lab forum's findings (all researchers).",
             _obj({"query": _S, "kind": {"enum": ["result", "hypothesis", "insight", "error"]},
                   "tag": _S, "sort": {"enum": ["new", "top", "pgr", "relevance"]},
                   "limit": _I})),
    ToolSpec("forum_read", "Read one finding in full, with its comments.",
             _obj({"finding_id": _I}, ("finding_id",))),
    ToolSpec("forum_post", "Post a finding. kind=result needs submission_id (one of yours; its "
             "PGR comes from the server); others: hypothesis, insight, error.",
             _obj({"kind": {"enum": ["result", "hypothesis", "insight", "error"]},
                   "title": _S, "body": _S, "tags": {"type": "array", "items": _S},
                   "submission_id": _I, "snapshot_id": _S}, ("kind", "title", "body"))),
    ToolSpec("snapshot_upload", "Upload a workspace directory (default: all of it) as a code "
             "snapshot others can download; returns its id.",
             _obj({"path": _S, "label": _S, "submission_id": _I})),
    ToolSpec("snapshot_download", "Download a snapshot and extract it into a new, empty "
             "workspace directory.", _obj({"snapshot_id": _S, "target": _S},
                                          ("snapshot_id", "target"))),
    ToolSpec("notebook_read", "Read your notebook: your memory across sessions.", _obj({})),
    ToolSpec("notebook_write", "Write to your notebook (append by default, or replace it). A "
             "next session starts fresh and sees only the notebook and the forum.",
             _obj({"text": _S, "mode": {"enum": ["append", "replace"]}}, ("text",))),
]


# What a tool reads into the lab process (which also serves the scoring server): a 100 MiB file
# of short lines, or a predictions file parsed into a dict, took 10-13 times its size.
READ_MAX_BYTES = 4 << 20
SUBMIT_MAX_BYTES = 16 << 20  # far above any task's predictions; the server takes 5 MB


@dataclass
class Toolbox:
    sandbox: Sandbox
    client: LabClient
    task: str
    options: LlmOptions
    deadline: float  # unix time: no command runs past it
    on_event: Callable[[str, dict], None] = lambda kind, payload: None

    @property
    def specs(self) -> list[ToolSpec]:
        return SPECS

    def run(self, call: ToolCall) -> ToolResult:
        """Carry out ``call``; the result never holds a secret the lab knows (``redact``)."""
        r = self._run(call)
        return ToolResult(r.call_id, r.name, redact(r.content), r.is_error)

    def _run(self, call: ToolCall) -> ToolResult:
        fn = getattr(self, f"_t_{call.name}", None)
        spec = next((s for s in self.specs if s.name == call.name), None)
        if fn is None or spec is None:
            # Small models invent tools (run_experiment): show them what exists, with arguments.
            return ToolResult(call.id, call.name, f"error: no tool named {call.name!r}. The "
                              "tools are: " + "; ".join(signature(s) for s in self.specs), True)
        if call.bad_arguments is not None:
            return ToolResult(call.id, call.name, "error: arguments must be a JSON object, got "
                              f"{call.bad_arguments[:200]!r}; expected {signature(spec)}", True)
        why = check_arguments(spec, call.arguments)
        if why:
            return ToolResult(call.id, call.name, f"error: bad arguments for {call.name}: {why}; "
                              f"expected {signature(spec)} (? = optional)", True)
        try:
            out = fn(**call.arguments)
        except TypeError as e:  # missing or unexpected argument names
            return ToolResult(call.id, call.name, f"error: bad arguments: {e}; expected "
                              f"{signature(spec)}", True)
        except (AarlabError, SandboxError, OSError, ValueError) as e:
            return ToolResult(call.id, call.name, f"error: {_one_line(e)}", True)
        if isinstance(out, tuple):
            text, is_error = out
        else:
            text, is_error = out, False
        return ToolResult(call.id, call.name, clip(text, self.options.output_chars), is_error)

    # -- sandbox tools ---------------------------------------------------------------------------
    def _exec(self, argv: list[str], timeout: float):
        left = self.deadline - time.time()
        if left < 5:
            raise AarlabError("the lab's time is up: no more commands")
        return self.sandbox.exec(argv, timeout=max(1.0, min(timeout, left)))

    def _t_shell(self, command: str, timeout_s: float = 300) -> tuple[str, bool]:
        timeout = min(float(timeout_s), self.options.shell_timeout_s)
        r = self._exec(["bash", "-c", command], timeout)
        self.on_event("experiment", {"tool": "shell", "command": command[:300],
                                     "exit": r.returncode, "seconds": round(r.duration_s, 2)})
        half = self.options.output_chars // 2
        hint = "redirect output to a file and read parts with read_file"
        head = f"exit code {r.returncode}" + (f" (timed out after {timeout:.0f} s)"
                                                 if r.timed_out else "") + \
            (" (cancelled: the lab is stopping)" if r.cancelled else "")
        parts = [head]
        if r.stdout:
            parts.append("--- stdout ---\n" + clip(r.stdout, half, hint)
                         + ("\n[stdout beyond 1 MiB was dropped]" if r.stdout_truncated else ""))
        if r.stderr:
            parts.append("--- stderr ---\n" + clip(r.stderr, half, hint)
                         + ("\n[stderr beyond 1 MiB was dropped]" if r.stderr_truncated else ""))
        return "\n".join(parts), not r.ok

    def _in_workspace(self, path: str) -> bool:
        ws = self.sandbox.workspace_path.rstrip("/")
        return not path.startswith("/") or path == ws or path.startswith(ws + "/")

    def _t_read_file(self, path: str, start_line: int = 1, max_lines: int = 400) -> str:
        if self._in_workspace(path):
            text = self.sandbox.read_file(path, max_bytes=READ_MAX_BYTES)
        else:  # e.g. the kit: read it from inside, where only what the sandbox shows exists
            r = self._exec(["cat", "--", path], 60)
            if not r.ok:
                raise AarlabError(f"path: cannot read {path}: {r.stderr.strip()[:300]}")
            text = r.stdout
        lines = text.splitlines()
        start = max(1, int(start_line))
        chunk = lines[start - 1:start - 1 + max(1, int(max_lines))]
        more = len(lines) - (start - 1 + len(chunk))
        tail = f"\n[{more} more lines: read on with start_line={start + len(chunk)}]" \
            if more > 0 else ""
        return "\n".join(chunk) + tail

    def _t_write_file(self, path: str, content: str) -> str:
        self.sandbox.write_file(path, content)
        return f"wrote {len(content.encode())} bytes to {path}"

    def _t_edit_file(self, path: str, old_text: str, new_text: str,
                     replace_all: bool = False) -> tuple[str, bool]:
        text = self.sandbox.read_file(path, max_bytes=READ_MAX_BYTES)
        n = text.count(old_text) if old_text else 0
        if n == 0:
            return f"error: old_text not found in {path}", True
        if n > 1 and not replace_all:
            return (f"error: old_text occurs {n} times in {path}; give more context or "
                    "replace_all=true"), True
        self.sandbox.write_file(path, text.replace(old_text, new_text))
        return f"replaced {n if replace_all else 1} occurrence(s) in {path}", False

    def _t_list_files(self, path: str = ".", depth: int = 2) -> tuple[str, bool]:
        d = max(1, min(int(depth), 6))
        r = self._exec(["find", path, "-maxdepth", str(d), "-not", "-name", "__pycache__",
                        "-printf", "%y %10s  %p\n"], 60)
        return (r.stdout or r.stderr or "(empty)"), not r.ok

    def _t_notebook_read(self) -> str:
        try:
            return self.sandbox.read_file(NOTEBOOK) or "(empty)"
        except FileNotFoundError:
            return "(empty: no notebook yet)"

    def _t_notebook_write(self, text: str, mode: str = "append") -> str:
        if mode not in ("append", "replace"):
            raise ValueError(f"mode: expected append or replace, got {mode!r}")
        old = ""
        if mode == "append":
            with contextlib.suppress(FileNotFoundError):
                old = self.sandbox.read_file(NOTEBOOK)
        new = (old.rstrip("\n") + "\n\n" if old else "") + text.rstrip("\n") + "\n"
        self.sandbox.write_file(NOTEBOOK, new)
        return f"notebook: {len(new)} characters"

    def _t_snapshot_upload(self, path: str = ".", label: str | None = None,
                           submission_id: int | None = None) -> tuple[str, bool]:
        argv = [self.sandbox.python, "-m", "aarlab.researchers.llm.inside", "upload", path]
        argv += ["--label", label] if label else []
        argv += ["--submission-id", str(int(submission_id))] if submission_id else []
        return self._inside(argv)

    def _t_snapshot_download(self, snapshot_id: str, target: str) -> tuple[str, bool]:
        return self._inside([self.sandbox.python, "-m", "aarlab.researchers.llm.inside",
                             "download", snapshot_id, target])

    def _inside(self, argv: list[str]) -> tuple[str, bool]:
        r = self._exec(argv, 300)
        if r.ok:
            return r.stdout.strip(), False
        return f"error: {r.stderr.strip()[-1000:] or shlex.join(argv)}", True

    # -- the lab's API, as this researcher -------------------------------------------------------
    def _t_submit(self, path: str, method: str, snapshot_id: str | None = None,
                  seeds: list[int] | None = None) -> str:
        predictions = parse_predictions(
            self.sandbox.read_file(path, max_bytes=SUBMIT_MAX_BYTES), path)
        receipt = self.client.submit(self.task, predictions, method=method[:480],
                                     snapshot_id=snapshot_id, seeds=seeds)
        self.on_event("note", {"text": f"submitted {method[:100]}: released PGR "
                                       f"{receipt.get('released_pgr')}"})
        return json.dumps(receipt, default=str)

    def _t_leaderboard(self) -> str:
        return json.dumps(self.client.leaderboard(self.task), default=str)

    def _t_forum_search(self, query: str | None = None, kind: str | None = None,
                        tag: str | None = None, sort: str | None = None, limit: int = 10) -> str:
        found = self.client.findings(query or None, kind=kind, tag=tag, sort=sort,
                                     task=self.task, limit=max(1, min(int(limit), 50)))
        items = found.get("items", []) if isinstance(found, dict) else found
        return json.dumps({"total": found.get("total") if isinstance(found, dict) else None,
                           "items": [brief(f) for f in items]}, default=str)

    def _t_forum_read(self, finding_id: int) -> str:
        return json.dumps(self.client.finding(int(finding_id)), default=str)

    def _t_forum_post(self, kind: str, title: str, body: str, tags: list[str] | None = None,
                      submission_id: int | None = None, snapshot_id: str | None = None) -> str:
        out = self.client.post_finding(kind, title, body, tags=list(tags or []), task=self.task,
                                       submission_id=submission_id, snapshot_id=snapshot_id)
        return json.dumps(brief(out), default=str)


def parse_predictions(text: str, path: str) -> dict[str, object]:
    """``{id: label}`` from a JSON object or JSON lines with ``id`` and ``label``."""
    text = text.strip()
    if text.startswith("{") and "\n{" not in text:
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError(f"{path}: JSON nested too deeply") from None
        if isinstance(data, dict) and "predictions" in data and isinstance(
                data["predictions"], dict):
            data = data["predictions"]
        return {str(k): v for k, v in data.items()}
    out: dict[str, object] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[str(row["id"])] = row["label"] if "label" in row else row["prediction"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise ValueError(f"{path}:{n}: expected JSON lines {{\"id\": …, \"label\": …}} or "
                             "one JSON object {id: label}") from None
    return out


def brief(f: dict) -> dict:
    """A finding in a few fields, for listings."""
    keep = ("id", "kind", "title", "tags", "score", "n_comments", "created_at")
    out = {k: f.get(k) for k in keep if k in f}
    if isinstance(f.get("author"), dict):
        out["author"] = f["author"].get("name")
    if f.get("metrics"):
        out["released_pgr"] = f["metrics"].get("released_pgr")
        out["submission_id"] = f["metrics"].get("submission_id")
    return out


def _one_line(e: Exception) -> str:
    text = str(e) if not isinstance(e, LabError) else f"{e.message} (HTTP {e.status})"
    return " ".join(text.split())[:1000]
