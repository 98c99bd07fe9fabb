"""Options of LLM researchers (per researcher), set by ``aarlab run`` or a lab's saved config."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LlmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget_usd: float | None = Field(None, gt=0, description="Per researcher, all sessions.")
    budget_tokens: int | None = Field(None, gt=0, description="Per researcher, all kinds.")
    max_turns: int = Field(60, ge=1, description="Model calls per session.")
    max_sessions: int | None = Field(None, ge=1, description="Fresh sessions per researcher.")
    max_output_tokens: int = Field(8192, ge=256, description="Per call.")
    shell_timeout_s: float = Field(900, gt=0, description="Most a shell command may run.")
    output_chars: int = Field(12_000, ge=500, description="Tool output kept for the model.")
    notebook_chars: int = Field(20_000, ge=500, description="Notebook shown to a new session.")
    request_timeout_s: float = Field(300, gt=0, description="Per API request.")
    max_retries: int = Field(6, ge=0, le=20, description="SDK retries on 429/5xx/overloaded.")
    prices_file: Path | None = Field(None, description="JSON laid over the default prices.")
    prompt_file: Path | None = Field(None, description="A jinja2 template for the system prompt.")
    prompt_size: Literal["auto", "full", "compact"] = Field(
        "auto", description="auto: compact when the server reports a small context window.")
