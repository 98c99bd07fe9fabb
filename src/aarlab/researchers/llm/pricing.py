"""Dollars from tokens: a price table in configuration, with a dated default.

Prices are US dollars per million tokens. The default table holds list prices published by the
providers as of ``DEFAULT_AS_OF``; they change, so a lab owner can override any of them with a
JSON file (``aarlab run --llm-prices prices.json``, same shape as ``PriceTable``). Anthropic's
cache writes are the 5-minute cache (1.25x input), reads 0.1x input. A model without a price is
counted at $0 and flagged, and a dollar budget refuses to start on it. A model served from a
loopback or private address (your own llama.cpp, ollama, vLLM) costs $0 by default, without a
flag, unless the table prices it (a local gateway to a paid API still bills); a price file that
names the model wins over both.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aarlab.errors import AarlabError
from aarlab.researchers.llm.providers.base import Usage

DEFAULT_AS_OF = "2025-11-24"


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, description="$ per million uncached input tokens.")
    output: float = Field(ge=0, description="$ per million output tokens.")
    cache_read: float | None = Field(None, ge=0, description="Default: the input price.")
    cache_write: float | None = Field(None, ge=0, description="Default: the input price.")

    def dollars(self, u: Usage) -> float:
        cr = self.input if self.cache_read is None else self.cache_read
        cw = self.input if self.cache_write is None else self.cache_write
        return (u.input * self.input + u.output * self.output + u.cache_read * cr
                + u.cache_write * cw) / 1e6


def _p(i: float, o: float, cr: float, cw: float | None = None) -> Price:
    return Price(input=i, output=o, cache_read=cr, cache_write=cw)


# List prices as of DEFAULT_AS_OF (standard tier, no batch discount, prompts under 200k tokens).
DEFAULT_PRICES: dict[str, Price] = {
    # Anthropic (anthropic.com/pricing); Opus 4.6 kept Opus 4.5's price at its release
    "claude-opus-4-6": _p(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-5": _p(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-1": _p(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4": _p(15.0, 75.0, 1.50, 18.75),
    "claude-sonnet-4-5": _p(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4": _p(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": _p(1.0, 5.0, 0.10, 1.25),
    "claude-3-5-haiku": _p(0.80, 4.0, 0.08, 1.0),
    # OpenAI (openai.com/api/pricing); cached input has no write surcharge
    "gpt-5": _p(1.25, 10.0, 0.125),
    "gpt-5-mini": _p(0.25, 2.0, 0.025),
    "gpt-4.1": _p(2.0, 8.0, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4o": _p(2.50, 10.0, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
}


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: str = DEFAULT_AS_OF
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    def lookup(self, model: str) -> Price | None:
        """Exact name, else the longest table name the model starts with (dated snapshots such
        as ``claude-sonnet-4-5-20250929`` price like their family)."""
        if model in self.prices:
            return self.prices[model]
        best = max((k for k in self.prices if model.startswith(k + "-")), key=len, default=None)
        return self.prices[best] if best else None

    def dollars(self, model: str, usage: Usage) -> float | None:
        price = self.lookup(model)
        return None if price is None else price.dollars(usage)

    def merged(self, other: PriceTable) -> PriceTable:
        return PriceTable(as_of=other.as_of, prices={**self.prices, **other.prices})


FREE = Price(input=0, output=0, cache_read=0, cache_write=0)


def is_local_url(url: str | None) -> bool:
    """A base URL on this machine or a private network: a server someone runs, not an API
    that bills. Names are resolved (``localhost``, a LAN host); an unresolvable name is not."""
    if not url:
        return False
    host = urlparse(url).hostname or ""
    try:
        addrs = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addrs = {ipaddress.ip_address(info[4][0].split("%")[0])
                     for info in socket.getaddrinfo(host, None)}
        except (OSError, ValueError, UnicodeError):
            return False
    return bool(addrs) and all(a.is_loopback or a.is_private or a.is_link_local for a in addrs)


def load_prices(path: Path | None, *, free_models: tuple[str, ...] = ()) -> PriceTable:
    """The default table, with ``free_models`` it does not price at $0 (local servers), and
    the entries of ``path`` (JSON) laid over both."""
    table = PriceTable()
    table.prices.update({m: FREE for m in free_models if table.lookup(m) is None})
    if path is None:
        return table
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        override = PriceTable.model_validate(data)
    except FileNotFoundError:
        raise AarlabError(f"--llm-prices: no such file {path}") from None
    except ValueError as e:
        first = e.errors()[0] if isinstance(e, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else "file"
        why = first["msg"] if first else str(e)
        raise AarlabError(f"--llm-prices: {path}: {where}: {why}",
                          hint='expected {"as_of": "YYYY-MM-DD", "prices": {"MODEL": '
                               '{"input": $/Mtok, "output": $/Mtok, "cache_read": …, '
                               '"cache_write": …}}}') from None
    return table.merged(override)
