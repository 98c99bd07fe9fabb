"""Fitting an LLM researcher to the server it talks to: prices, prompt size, output length.

A local server (loopback or private address) costs nothing by default. A server that reports a
small context window (llama.cpp ``-c 8192``, ollama's default 4096) gets the compact prompt and
a reply limit that leaves room for the conversation; ``--llm-prompt-size`` and a price file
override both choices.
"""

from __future__ import annotations

from aarlab.researchers.llm.config import LlmOptions
from aarlab.researchers.llm.policy import LlmPolicy
from aarlab.researchers.llm.pricing import PriceTable, is_local_url, load_prices
from aarlab.researchers.llm.prompt import COMPACT, DEFAULT, Prompt
from aarlab.researchers.llm.providers.base import Provider

# Below this many tokens of context the full prompt (about 3,300 tokens, plus the tool schemas
# sent beside it) leaves too little room for a working session.
COMPACT_BELOW = 16_384


def prices_for(policy: LlmPolicy, options: LlmOptions) -> PriceTable:
    free = (policy.model,) if is_local_url(policy.base_url) else ()
    return load_prices(options.prices_file, free_models=free)


def fit_to_server(provider: Provider, options: LlmOptions) -> tuple[Prompt, LlmOptions, dict]:
    """(prompt, options with a reply limit that fits, what was chosen and why)."""
    if options.prompt_file is not None:
        return Prompt(options.prompt_file), options, {"prompt": str(options.prompt_file)}
    n_ctx = provider.context_window() if options.prompt_size == "auto" else None
    size = options.prompt_size
    if size == "auto":
        size = "compact" if n_ctx is not None and n_ctx < COMPACT_BELOW else "full"
    if n_ctx:
        # A reply may take at most a quarter of the window: the rest is prompt and history.
        options = options.model_copy(update={
            "max_output_tokens": max(256, min(options.max_output_tokens, n_ctx // 4))})
    prompt = Prompt(COMPACT if size == "compact" else DEFAULT)
    return prompt, options, {"prompt": size, "context_tokens": n_ctx,
                             "max_output_tokens": options.max_output_tokens}
