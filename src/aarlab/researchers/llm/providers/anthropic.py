"""Anthropic Messages API through the ``anthropic`` SDK: tool use and prompt caching.

Wire format: the system prompt and the tools form a stable prefix, marked with one cache
breakpoint at the end of the system block; a second breakpoint on the newest user turn lets each
call read the whole previous conversation from the cache. Assistant turns carry ``text`` and
``tool_use`` blocks; our tool results go back as ``tool_result`` blocks in one user turn.
Retries with backoff on 408/409/429/5xx/529 (overloaded) are the SDK's own (``max_retries``).
"""

from __future__ import annotations

import anthropic

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

_EPHEMERAL = {"type": "ephemeral"}
_STOPS = {"tool_use": "tool_use", "end_turn": "end", "stop_sequence": "end",
          "max_tokens": "max_tokens", "refusal": "refusal"}


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 300.0, max_retries: int = 6):
        self.model = model
        self._make = lambda: anthropic.Anthropic(api_key=api_key, base_url=base_url,
                                                 timeout=timeout_s, max_retries=max_retries)
        try:
            self.client = self._make()
        except anthropic.AnthropicError as e:  # no key anywhere
            raise ProviderError(f"anthropic: {e} — set ANTHROPIC_API_KEY in the lab's "
                                "environment (it never enters a sandbox)", fatal=True,
                                kind="auth") from None

    def check(self) -> None:
        try:
            self.client.models.retrieve(self.model)
        except anthropic.APIStatusError as e:
            raise describe_status_error("anthropic", self.model, e.status_code, _msg(e),
                                        "ANTHROPIC_API_KEY") from None
        except anthropic.APIConnectionError as e:
            raise ProviderError(f"anthropic: cannot reach {self.client.base_url}: {e}",
                                fatal=True, kind="connection") from None

    def cancel(self) -> None:
        # Closing the pool closes the socket of the call in flight; later calls get a new client.
        old, self.client = self.client, self._make()
        old.close()

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec], *,
                 max_tokens: int, timeout_s: float | None = None) -> Reply:
        kwargs = {"timeout": timeout_s} if timeout_s else {}
        try:
            resp = self.client.messages.create(
                model=self.model, max_tokens=max_tokens,
                system=[{"type": "text", "text": system, "cache_control": _EPHEMERAL}],
                tools=[{"name": t.name, "description": t.description,
                        "input_schema": t.parameters} for t in tools],
                messages=to_wire(messages), **kwargs)
        except anthropic.APIStatusError as e:
            raise describe_status_error("anthropic", self.model, e.status_code, _msg(e),
                                        "ANTHROPIC_API_KEY") from None
        except anthropic.APIConnectionError as e:  # includes timeouts, after retries
            raise ProviderError(f"anthropic: no answer from {self.client.base_url} after "
                                f"retries: {e}", fatal=False, kind="connection") from None
        return from_wire(resp)


def to_wire(messages: list[Message]) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        if m.role == "assistant":
            blocks: list[dict] = [{"type": "text", "text": m.text}] if m.text else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in m.tool_calls]
            out.append({"role": "assistant", "content": blocks or [{"type": "text",
                                                                      "text": "(no text)"}]})
        elif m.role == "tool":
            out.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": r.call_id, "is_error": r.is_error,
                 "content": [{"type": "text", "text": r.content or "(no output)"}]}
                for r in m.results]})
        else:
            out.append({"role": "user", "content": [{"type": "text", "text": m.text}]})
    # Cache the conversation so far: the next call reads it back at a tenth of the price.
    if out and out[-1]["role"] == "user":
        last = out[-1]["content"][-1]
        out[-1]["content"][-1] = {**last, "cache_control": _EPHEMERAL}
    return out


def from_wire(resp) -> Reply:
    text = "".join(b.text for b in resp.content if b.type == "text")
    calls = [ToolCall(b.id, b.name, b.input if isinstance(b.input, dict) else {},
                      None if isinstance(b.input, dict) else str(b.input))
             for b in resp.content if b.type == "tool_use"]
    u = resp.usage
    usage = Usage(input=u.input_tokens or 0, output=u.output_tokens or 0,
                  cache_read=u.cache_read_input_tokens or 0,
                  cache_write=u.cache_creation_input_tokens or 0)
    stop = _STOPS.get(resp.stop_reason or "", "other")
    return Reply(text=text, tool_calls=calls, stop=stop, usage=usage, model=resp.model,
                 request_id=getattr(resp, "_request_id", None) or resp.id,
                 raw_stop=resp.stop_reason or "")


def _msg(e: anthropic.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    return err.get("message") or e.message
