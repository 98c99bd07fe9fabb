"""Parsing a researcher policy: ``search``, ``llm:anthropic:MODEL[@URL]``, ``llm:openai:MODEL@URL``.

``@URL`` is the API base URL: required for a local OpenAI-compatible server (vLLM, ollama,
llama.cpp), optional for Anthropic and OpenAI themselves (a proxy or gateway).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from aarlab.errors import AarlabError

PROVIDERS = ("anthropic", "openai")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,199}$")
EXAMPLES = "search, llm:anthropic:claude-opus-4-5, llm:openai:qwen2.5-7b@http://127.0.0.1:8000/v1"


@dataclass(frozen=True)
class LlmPolicy:
    provider: Literal["anthropic", "openai"]
    model: str
    base_url: str | None = None

    @property
    def text(self) -> str:
        return f"llm:{self.provider}:{self.model}" + (f"@{self.base_url}" if self.base_url else "")


def parse_policy(text: str, field: str = "--researcher") -> LlmPolicy | None:
    """``None`` for ``search``; an ``LlmPolicy`` for ``llm:...``; ``AarlabError`` otherwise."""
    text = text.strip()
    if text == "search":
        return None
    parts = text.split(":", 2)
    if len(parts) != 3 or parts[0] != "llm":
        raise AarlabError(f"{field}: expected search or llm:PROVIDER:MODEL, got {text!r}",
                          hint=f"e.g. {EXAMPLES}")
    _, provider, rest = parts
    if provider not in PROVIDERS:
        raise AarlabError(f"{field}: unknown provider {provider!r} in {text!r}",
                          hint=f"expected one of {', '.join(PROVIDERS)}")
    model, _, url = rest.partition("@")
    if not _MODEL.match(model):
        raise AarlabError(f"{field}: expected a model name after llm:{provider}:, got {model!r}",
                          hint=f"e.g. {EXAMPLES}")
    if url:
        u = urlparse(url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise AarlabError(f"{field}: expected an http(s) base URL after @, got {url!r}",
                              hint="e.g. http://127.0.0.1:11434/v1 for ollama")
    return LlmPolicy(provider, model, url or None)  # type: ignore[arg-type]


def is_llm(policy: str) -> bool:
    return policy.strip().startswith("llm:")
