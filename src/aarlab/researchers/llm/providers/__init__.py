"""Chat providers behind one small interface: ``Provider.complete(system, messages, tools)``."""

from __future__ import annotations

from aarlab.researchers.llm.policy import LlmPolicy
from aarlab.researchers.llm.providers.base import (
    Provider,
    ProviderError,
    Reply,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
)


def make_provider(policy: LlmPolicy, *, timeout_s: float, max_retries: int,
                  api_key: str | None = None) -> Provider:
    """The provider a policy names; imports its SDK only when it is used."""
    if policy.provider == "anthropic":
        from aarlab.researchers.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(policy.model, base_url=policy.base_url, api_key=api_key,
                                 timeout_s=timeout_s, max_retries=max_retries)
    from aarlab.researchers.llm.providers.openai_compat import OpenAIProvider

    return OpenAIProvider(policy.model, base_url=policy.base_url, api_key=api_key,
                          timeout_s=timeout_s, max_retries=max_retries)


__all__ = ["Provider", "ProviderError", "Reply", "ToolCall", "ToolResult", "ToolSpec", "Usage",
           "make_provider"]
