"""Local stand-ins for the Anthropic Messages API and OpenAI chat completions.

Each is a FastAPI app served by uvicorn on 127.0.0.1 (a real HTTP server the real SDKs talk to
via ``base_url``). It checks the key and the model as the real APIs do, validates the shape of
each request the way the real APIs reject bad ones (every tool call answered by a result with
its id, roles in order), replays a scripted conversation, and records every request it got.

A script is a list of turns; a turn is a ``Turn`` or a callable ``(request_json) -> Turn`` (to
read a tool result, e.g. a submission id, out of the request). ``Fail(status, ...)`` answers one
request with an API error (e.g. 529 overloaded) before the script goes on.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aarlab.config import Settings
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.researchers.llm.config import LlmOptions
from aarlab.sandbox import sandbox_available
from aarlab.store.db import Store

BWRAP_OK, BWRAP_REASON = sandbox_available()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=BWRAP_REASON)
CANARY_KEY = "sk-ant-canary-0f9e8d7c6b5a4f3e2d1c"  # the lab's API key; must never reach a sandbox


@dataclass
class Turn:
    text: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)
    usage: tuple[int, int, int, int] = (1000, 200, 0, 0)  # input, output, cache read, write
    stop: str | None = None  # default: tool_use / end_turn (tool_calls / stop)
    raw_arguments: str | None = None  # OpenAI only: send this text as the first call's args
    delay_s: float = 0.0  # OpenAI only: answer this late (a slow local model)


@dataclass
class Fail:
    status: int
    message: str = "Overloaded"
    type: str = "overloaded_error"
    retry_after_ms: int | None = 20


def call(name: str, **args) -> tuple[str, dict]:
    return name, args


class StandIn:
    """``StandIn("anthropic" | "openai", script, key=..., models=...)``; use as a context
    manager; ``base_url`` is what the SDK should be pointed at."""

    def __init__(self, kind: str, script: list, *, key: str = "test-key",
                 models: tuple[str, ...] = ("claude-opus-4-6", "qwen2.5-7b-instruct")):
        self.kind, self.script, self.key, self.models = kind, list(script), key, models
        self.requests: list[dict] = []  # bodies of completion requests, in order
        self.headers: list[dict] = []
        self.model_lookups = 0
        self.app = self._anthropic() if kind == "anthropic" else self._openai()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                       daemon=True)

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root if self.kind == "anthropic" else root + "/v1"

    def __enter__(self) -> StandIn:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > 20:
                raise RuntimeError("stand-in server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._sock.close()

    def _next(self, body: dict):
        if not self.script:
            return None
        item = self.script.pop(0)
        return item(body) if callable(item) and not isinstance(item, (Turn, Fail)) else item

    # -- Anthropic -----------------------------------------------------------------------------
    def _anthropic(self) -> FastAPI:
        app = FastAPI()

        def error(status: int, type_: str, message: str, headers=None) -> JSONResponse:
            return JSONResponse({"type": "error", "error": {"type": type_, "message": message}},
                                status_code=status, headers=headers)

        def auth(request: Request) -> JSONResponse | None:
            # The real API takes the key as x-api-key or as a bearer token (newer SDKs).
            if self.key not in (request.headers.get("x-api-key"),
                                request.headers.get("authorization", "").removeprefix("Bearer ")):
                return error(401, "authentication_error", "invalid x-api-key")
            if "anthropic-version" not in request.headers:
                return error(400, "invalid_request_error", "anthropic-version header required")
            return None

        @app.get("/v1/models/{model_id}")
        def model(model_id: str, request: Request):
            self.model_lookups += 1
            if (bad := auth(request)) is not None:
                return bad
            if model_id not in self.models:
                return error(404, "not_found_error", f"model: {model_id}")
            return {"type": "model", "id": model_id, "display_name": model_id,
                    "created_at": "2025-01-01T00:00:00Z"}

        @app.post("/v1/messages")
        async def messages(request: Request):
            body = await request.json()
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            if (bad := auth(request)) is not None:
                return bad
            if body.get("model") not in self.models:
                return error(404, "not_found_error", f"model: {body.get('model')}")
            if (why := check_anthropic(body)) is not None:
                return error(400, "invalid_request_error", why)
            turn = self._next(body)
            if turn is None:
                return error(500, "api_error", "stand-in: the script has no more turns")
            if isinstance(turn, Fail):
                h = {"retry-after-ms": str(turn.retry_after_ms)} if turn.retry_after_ms else {}
                return error(turn.status, turn.type, turn.message, h)
            content = ([{"type": "text", "text": turn.text}] if turn.text else []) + [
                {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": n,
                 "input": a} for n, a in turn.calls]
            i, o, cr, cw = turn.usage
            return {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message",
                    "role": "assistant", "model": body["model"], "content": content,
                    "stop_reason": turn.stop or ("tool_use" if turn.calls else "end_turn"),
                    "stop_sequence": None,
                    "usage": {"input_tokens": i, "output_tokens": o,
                              "cache_read_input_tokens": cr,
                              "cache_creation_input_tokens": cw}}

        return app

    # -- OpenAI --------------------------------------------------------------------------------
    def _openai(self) -> FastAPI:
        app = FastAPI()

        def error(status: int, message: str, type_: str = "invalid_request_error",
                  code: str | None = None, headers=None) -> JSONResponse:
            return JSONResponse({"error": {"message": message, "type": type_, "param": None,
                                           "code": code}}, status_code=status, headers=headers)

        def auth(request: Request) -> JSONResponse | None:
            if request.headers.get("authorization") != f"Bearer {self.key}":
                return error(401, "Incorrect API key provided", code="invalid_api_key")
            return None

        @app.get("/v1/models")
        def models(request: Request):
            self.model_lookups += 1
            if (bad := auth(request)) is not None:
                return bad
            return {"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                "owned_by": "stand-in"} for m in self.models]}

        @app.post("/v1/chat/completions")
        async def completions(request: Request):
            body = await request.json()
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            if (bad := auth(request)) is not None:
                return bad
            if body.get("model") not in self.models:
                return error(404, f"The model `{body.get('model')}` does not exist",
                             code="model_not_found")
            if (why := check_openai(body)) is not None:
                return error(400, why)
            turn = self._next(body)
            if turn is None:
                return error(500, "stand-in: the script has no more turns", "server_error")
            if isinstance(turn, Fail):
                h = {"retry-after-ms": str(turn.retry_after_ms)} if turn.retry_after_ms else {}
                return error(turn.status, turn.message, "server_error", headers=h)
            if turn.delay_s:
                await asyncio.sleep(turn.delay_s)
            calls = [{"id": f"call_{uuid.uuid4().hex[:20]}", "type": "function",
                      "function": {"name": n, "arguments": json.dumps(a)}}
                     for n, a in turn.calls]
            if calls and turn.raw_arguments is not None:
                calls[0]["function"]["arguments"] = turn.raw_arguments
            i, o, cr, _ = turn.usage
            message = {"role": "assistant", "content": turn.text or None}
            if calls:
                message["tool_calls"] = calls
            return {"id": f"chatcmpl-{uuid.uuid4().hex[:20]}", "object": "chat.completion",
                    "created": int(time.time()), "model": body["model"],
                    "choices": [{"index": 0, "message": message, "logprobs": None,
                                 "finish_reason": turn.stop or ("tool_calls" if calls
                                                                else "stop")}],
                    "usage": {"prompt_tokens": i + cr, "completion_tokens": o,
                              "total_tokens": i + cr + o,
                              "prompt_tokens_details": {"cached_tokens": cr}}}

        return app


def check_anthropic(body: dict) -> str | None:
    """The request-shape rules the real Messages API enforces that our loop could break."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    msgs = body.get("messages") or []
    if not msgs or msgs[0]["role"] != "user":
        return "messages: first message must use the user role"
    for n, tool in enumerate(body.get("tools", [])):
        if set(tool) - {"name", "description", "input_schema", "cache_control"} or \
                tool.get("input_schema", {}).get("type") != "object":
            return f"tools.{n}: bad tool definition"
    pending: set[str] = set()
    for n, m in enumerate(msgs):
        if n and m["role"] == msgs[n - 1]["role"]:
            return f"messages.{n}: roles must alternate"
        blocks = m["content"] if isinstance(m["content"], list) else [
            {"type": "text", "text": m["content"]}]
        if m["role"] == "user":
            answered = {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"}
            if pending - answered:
                return (f"messages.{n}: tool_use ids were found without tool_result blocks "
                        f"immediately after: {sorted(pending - answered)}")
            pending = set()
        else:
            pending = {b["id"] for b in blocks if b["type"] == "tool_use"}
        for b in blocks:
            if b["type"] == "text" and not b["text"]:
                return f"messages.{n}: text content blocks must be non-empty"
    return None


def check_openai(body: dict) -> str | None:
    msgs = body.get("messages") or []
    pending: set[str] = set()
    for n, m in enumerate(msgs):
        if m["role"] == "tool":
            if m.get("tool_call_id") not in pending:
                return (f"messages.[{n}].role: messages with role 'tool' must be a response "
                        "to a preceeding message with 'tool_calls'")
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            return ("An assistant message with 'tool_calls' must be followed by tool messages "
                    f"responding to each 'tool_call_id'. Missing: {sorted(pending)}")
        if m["role"] == "assistant":
            pending = {c["id"] for c in m.get("tool_calls") or []}
            for c in m.get("tool_calls") or []:
                if not isinstance(c["function"]["arguments"], str):
                    return f"messages.[{n}].tool_calls: arguments must be a string"
    return None


def tool_results(body: dict) -> list[str]:
    """The texts of the tool results in the newest turn of a request (either wire format)."""
    last = body["messages"][-1]
    if "tool_call_id" in last:  # OpenAI: trailing role=tool messages
        out = []
        for m in reversed(body["messages"]):
            if m["role"] != "tool":
                break
            out.insert(0, m["content"])
        return out
    blocks = last["content"] if isinstance(last["content"], list) else []
    return ["".join(c["text"] for c in b["content"]) if isinstance(b["content"], list)
            else b["content"] for b in blocks if b.get("type") == "tool_result"]


def first_user_text(body: dict) -> str:
    m = body["messages"][0] if body["messages"][0]["role"] == "user" else body["messages"][1]
    c = m["content"]
    return c if isinstance(c, str) else "".join(b.get("text", "") for b in c)


def system_text(body: dict) -> str:
    if "system" in body:
        s = body["system"]
        return s if isinstance(s, str) else "".join(b["text"] for b in s)
    return body["messages"][0]["content"]


class LabRunner:
    """Real labs on the session's tiny built tasks, each in a fresh short home (AF_UNIX socket
    paths are limited to 108 bytes) with its own store, workspaces and transcripts."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.homes: list[Path] = []

    def run(self, policies: list[str], llm: LlmOptions | None = None,
            **options) -> tuple[Lab, Store]:
        home = Path(tempfile.mkdtemp(prefix="al-"))
        self.homes.append(home)
        (home / "tasks").symlink_to(self.settings.kits_dir, target_is_directory=True)
        s = self.settings.model_copy(update={
            "home": home, "answer_key_root": self.settings.answer_keys_dir,
            "db_url": f"sqlite:///{home / 'aarlab.db'}", "snapshots_root": home / "blobs"})
        store = Store(s.database_url)
        opts = LabOptions(task="tweets", researchers=options.pop("researchers", len(policies)),
                          budget_s=options.pop("budget_s", 300), policies=policies,
                          llm=llm or LlmOptions(), **options)
        lab = Lab(s, store, opts, on_warning=lambda msg: None)
        lab.create()
        lab.run()
        return lab, store

    def cleanup(self) -> None:
        for home in self.homes:
            shutil.rmtree(home, ignore_errors=True)
