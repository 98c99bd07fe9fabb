"""The provider-neutral conversation: what the loop keeps, and what each provider translates.

A conversation is a list of ``Message``: the user's text, the assistant's text and tool calls,
and the tool results that answer them. Providers turn it into their wire format on every call
(the loop never sees a provider's own shapes) and turn the reply back into a ``Reply``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict  # a JSON schema of the arguments (type: object)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict
    # The raw argument text when the model sent something that is not a JSON object.
    bad_arguments: str | None = None
    # Written as JSON in the reply's text (no structured call came back): see textcalls.py.
    from_text: bool = False


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass
class Message:
    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Usage:
    """Tokens of one call. ``input`` counts prompt tokens billed at the full input price only;
    cache reads and writes are counted apart, so the four never overlap."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.output + other.output,
                     self.cache_read + other.cache_read, self.cache_write + other.cache_write)


StopReason = Literal["tool_use", "end", "max_tokens", "refusal", "other"]


@dataclass(frozen=True)
class Reply:
    text: str
    tool_calls: list[ToolCall]
    stop: StopReason
    usage: Usage
    model: str = ""
    request_id: str = ""
    raw_stop: str = ""
    # What the server said it did, when it says (llama.cpp's ``timings``: prompt_n, predicted_n,
    # prompt_per_second ...): kept in the transcript to check our counts against.
    timings: dict | None = None


class ProviderError(Exception):
    """A call failed after the SDK's retries. ``fatal`` errors (bad key, unknown model, bad
    request) end the researcher; the others end only the session."""

    def __init__(self, message: str, *, fatal: bool, kind: str = "error"):
        super().__init__(message)
        self.message, self.fatal, self.kind = message, fatal, kind


class Provider(ABC):
    name: str
    model: str

    @abstractmethod
    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec], *,
                 max_tokens: int, timeout_s: float | None = None) -> Reply:
        """One model call; raises ``ProviderError`` with a one-line message."""

    @abstractmethod
    def check(self) -> None:
        """Cheap pre-flight (no tokens spent): raise ``ProviderError`` for a bad key or model."""

    def cancel(self) -> None:
        """Abandon any call in flight (called from another thread): close its connections."""
        return None

    def context_window(self) -> int | None:
        """The server's context size in tokens when it reports one (local servers), else None."""
        return None


def describe_status_error(provider: str, model: str, status: int, message: str,
                          key_var: str) -> ProviderError:
    """One-line, actionable errors for the failures a user can fix."""
    short = " ".join(str(message).split())[:300]
    if status == 401:
        return ProviderError(f"{provider}: the API key was refused (401): {short} — check "
                             f"{key_var}", fatal=True, kind="auth")
    if status == 403:
        return ProviderError(f"{provider}: permission denied for model {model!r} (403): "
                             f"{short}", fatal=True, kind="auth")
    if status == 404:
        return ProviderError(f"{provider}: model {model!r} not found (404): {short} — check "
                             f"the model name in --researcher", fatal=True, kind="model")
    if status in (400, 413, 422):
        kind = "context" if "too long" in short.lower() or "context" in short.lower() \
            else "bad_request"
        # A context overflow ends only the session: the next one starts fresh and small.
        return ProviderError(f"{provider}: request refused ({status}): {short}",
                             fatal=kind != "context", kind=kind)
    return ProviderError(f"{provider}: call failed after retries ({status}): {short}",
                         fatal=False, kind="transient")
