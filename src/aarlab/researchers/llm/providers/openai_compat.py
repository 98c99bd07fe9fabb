"""Any OpenAI-compatible chat-completions endpoint through the ``openai`` SDK.

OpenAI itself, or a local server given by base URL: vLLM (``vllm serve MODEL
--enable-auto-tool-choice --tool-call-parser …``), ollama (``http://127.0.0.1:11434/v1``),
llama.cpp's ``llama-server --jinja``. Tool calls are ``tool_calls`` on the assistant message with
JSON-text arguments; results go back as ``role: tool`` messages. Cached prompt tokens
(``prompt_tokens_details.cached_tokens``) are part of ``prompt_tokens`` on the wire; we count
them apart. Retries on 408/409/429/5xx are the SDK's own. Local servers report their context
size in their own way (``context_window``): llama.cpp's ``/props``, vLLM's ``max_model_len`` in
``/v1/models``, ollama's ``/api/show``.
"""

from __future__ import annotations

import contextlib
import json
import os

import httpx
import openai

from aarlab.researchers.llm.providers.base import (
    Message,
    Provider,
    ProviderError,
    Reply,
    ToolCall,
    ToolSpec,
    Usage,
    describe_status_error,
)

_STOPS = {"tool_calls": "tool_use", "function_call": "tool_use", "stop": "end",
          "length": "max_tokens", "content_filter": "refusal"}


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 300.0, max_retries: int = 6):
        self.model = model
        # Local servers take any key; the SDK insists on one, so give it a placeholder there.
        key = api_key or os.environ.get("OPENAI_API_KEY") or ("local" if base_url else None)
        self._make = lambda: openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout_s,
                                           max_retries=max_retries)
        try:
            self.client = self._make()
        except openai.OpenAIError as e:
            raise ProviderError(f"openai: {e} — set OPENAI_API_KEY in the lab's environment "
                                "or give a local server's URL (llm:openai:MODEL@URL)",
                                fatal=True, kind="auth") from None

    def check(self) -> None:
        try:
            ids = [m.id for m in self.client.models.list()]
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise describe_status_error("openai", self.model, e.status_code, _msg(e),
                                            "OPENAI_API_KEY") from None
            return  # some servers have no model list; the first call will tell
        except openai.APIConnectionError as e:
            raise ProviderError(f"openai: cannot reach {self.client.base_url}: {e}",
                                fatal=True, kind="connection") from None
        if ids and self.model not in ids:
            shown = ", ".join(sorted(ids)[:8])
            raise ProviderError(f"openai: model {self.model!r} is not served at "
                                f"{self.client.base_url} (it serves: {shown})", fatal=True,
                                kind="model")

    def cancel(self) -> None:
        # Closing the pool closes the socket of the call in flight; later calls get a new client.
        old, self.client = self.client, self._make()
        old.close()

    def context_window(self) -> int | None:
        root = str(self.client.base_url).rstrip("/").removesuffix("/v1")
        with contextlib.suppress(httpx.HTTPError, ValueError, TypeError, AttributeError):
            return context_from(
                props=_get_json(f"{root}/props"),
                models=_get_json(f"{root}/v1/models"),
                ollama=_get_json(f"{root}/api/show", {"model": self.model}),
                model=self.model)
        return None

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec], *,
                 max_tokens: int, timeout_s: float | None = None) -> Reply:
        kwargs = {"timeout": timeout_s} if timeout_s else {}
        try:
            resp = self.client.chat.completions.create(
                model=self.model, max_tokens=max_tokens, messages=to_wire(system, messages),
                tools=[{"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}}
                    for t in tools], **kwargs)
        except openai.APIStatusError as e:
            raise describe_status_error("openai", self.model, e.status_code, _msg(e),
                                        "OPENAI_API_KEY") from None
        except openai.APIConnectionError as e:
            raise ProviderError(f"openai: no answer from {self.client.base_url} after "
                                f"retries: {e}", fatal=False, kind="connection") from None
        return from_wire(resp)


def to_wire(system: str, messages: list[Message]) -> list[dict]:
    out: list[dict] = [{"role": "system", "content": system}]
    for m in messages:
        if m.role == "assistant":
            # null content only beside tool calls: servers refuse an empty assistant turn else.
            msg: dict = {"role": "assistant", "content": m.text or (None if m.tool_calls else "")}
            if m.tool_calls:
                msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                    "name": c.name,
                    "arguments": c.bad_arguments if c.bad_arguments is not None
                    else json.dumps(c.arguments)}} for c in m.tool_calls]
            out.append(msg)
        elif m.role == "tool":
            out += [{"role": "tool", "tool_call_id": r.call_id, "content": r.content}
                    for r in m.results]
        else:
            out.append({"role": "user", "content": m.text})
    return out


def from_wire(resp) -> Reply:
    if not resp.choices:
        raise ProviderError("openai: the server answered with no choices", fatal=False,
                            kind="transient")
    choice = resp.choices[0]
    calls = []
    for c in choice.message.tool_calls or []:
        fn = getattr(c, "function", None)
        if fn is None:
            continue
        try:
            args = json.loads(fn.arguments or "{}")
            bad = None if isinstance(args, dict) else fn.arguments
        except ValueError:
            args, bad = {}, fn.arguments
        calls.append(ToolCall(c.id, fn.name, args if bad is None else {}, bad))
    u = resp.usage
    cached = wrote = 0
    if u is not None and u.prompt_tokens_details is not None:
        cached = u.prompt_tokens_details.cached_tokens or 0
        wrote = getattr(u.prompt_tokens_details, "cache_write_tokens", None) or 0
    prompt = u.prompt_tokens if u is not None else 0
    usage = Usage(input=max(0, prompt - cached - wrote),
                  output=u.completion_tokens if u is not None else 0,
                  cache_read=cached, cache_write=wrote)
    stop = "tool_use" if calls else _STOPS.get(choice.finish_reason or "", "other")
    timings = (getattr(resp, "model_extra", None) or {}).get("timings")
    return Reply(text=choice.message.content or "", tool_calls=calls, stop=stop, usage=usage,
                 model=resp.model or "", request_id=getattr(resp, "_request_id", None) or resp.id,
                 raw_stop=choice.finish_reason or "",
                 timings=timings if isinstance(timings, dict) else None)


def _get_json(url: str, post: dict | None = None):
    """A small JSON endpoint of a local server, or None; never slow (2 s)."""
    try:
        r = httpx.post(url, json=post, timeout=2.0) if post is not None else \
            httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        return r.json()
    except ValueError:
        return None


OLLAMA_DEFAULT_CTX = 4096  # ollama runs a model with this context unless num_ctx is set


def context_from(*, props, models, ollama, model: str) -> int | None:
    """The context size a server reports: llama.cpp, vLLM or ollama (the first that does)."""
    if isinstance(props, dict):
        settings = props.get("default_generation_settings") or {}
        n = settings.get("n_ctx") or props.get("n_ctx")
        if isinstance(n, int) and n > 0:
            return n
    if isinstance(models, dict):
        for m in models.get("data") or []:
            if isinstance(m, dict) and m.get("id") == model and \
                    isinstance(m.get("max_model_len"), int):
                return m["max_model_len"]
    if isinstance(ollama, dict):
        for line in str(ollama.get("parameters") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "num_ctx" and value.strip().isdigit():
                return int(value.strip())
        info = ollama.get("model_info") or {}
        trained = [v for k, v in info.items() if k.endswith(".context_length")
                   and isinstance(v, int)]
        if trained:
            return min(trained[0], OLLAMA_DEFAULT_CTX)
    return None


def _msg(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error", body) if isinstance(body, dict) else {}
    return (err.get("message") if isinstance(err, dict) else None) or e.message
