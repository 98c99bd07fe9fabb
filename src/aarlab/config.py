"""Every default in one place. Override with environment variables prefixed ``AARLAB_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AARLAB_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "aarlab",
        description="Root for sources, models, feature caches, task kits and answer keys.",
    )
    answer_key_root: Path | None = Field(
        default=None,
        description="Where answer keys live; defaults to HOME/answer-keys (never inside a kit).",
    )
    sources_root: Path | None = Field(
        default=None,
        description="Where downloaded source packages are cached; defaults to HOME/sources.",
    )
    admin_token: str | None = Field(default=None, description="Admin bearer token for the server.")
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in HOME.")
    torch_threads: int = Field(
        default=1, ge=1,
        description="Intra-op threads for torch. Heads are small: one thread is as fast, and "
                    "with several processes per core, extra threads spin and run 10x slower.",
    )

    # Scoring server release rule and budgets (paired Ladder, Blum & Hardt 2015; see
    # aarlab.scoring.ladder and bench/ladder_attack.py for how the defaults were measured).
    ladder_safety: float = Field(
        default=3.0, ge=0, le=10,
        description="Release only when the paired feedback gain exceeds this many SEs of it.")
    ladder_min_step_se: float = Field(
        default=0.5, gt=0, le=5,
        description="Smallest released gain, and the released grid, as a fraction of one SE of "
                    "a single submission's feedback accuracy.")
    ladder_eta: float = Field(default=0.02, gt=0, le=1,
                              description="Legacy unpaired step on PGR (not used by the server).")
    ladder_grid: float | None = Field(default=None, gt=0, le=1,
                                      description="Legacy grid for ladder_eta.")
    submissions_per_hour: int = Field(default=60, ge=1)
    submissions_total: int = Field(default=1000, ge=1)
    baseline_grid: Literal["one-at-a-time", "defaults"] = Field(
        default="one-at-a-time",
        description="Candidates of the tuned classical baseline: each method's parameters moved "
                    "one at a time (~80 specs, minutes), or defaults only (fast, for tests).")
    probe_min_rows: int = Field(default=10, ge=1, description="Differ in fewer rows = probe.")
    probe_min_fraction: float = Field(default=0.01, ge=0, le=1, description="Or < this share.")
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    served_tasks: tuple[str, ...] | None = Field(
        default=None,
        description="Only these tasks are scored and their kits served (a lab's server: "
                    "its task and suite); None: every built task.")
    requests_in_flight: int = Field(
        default=8, ge=1,
        description="Requests one token may have in flight at once; more are a 429 before "
                    "their body is read (stalled uploads held 20 MB of the lab each).")
    listener_connections: int = Field(
        default=64, ge=1,
        description="Connections one listener of the lab's servers holds at once (each sandbox "
                    "has a listener of its own); one more is a 503 and closed, so a sandbox "
                    "cannot hold the lab process's file descriptors.")
    request_timeout_s: float = Field(
        default=30.0, gt=0,
        description="Seconds a connection may wait, new or kept alive, before its request "
                    "starts; then it is closed (uvicorn alone never closes a silent one).")
    text_quota_chars: int = Field(
        default=20_000_000, ge=1000,
        description="Characters of forum text (every revision and comment) one researcher "
                    "may store, and as many of telemetry: within the write rate a sandbox "
                    "could otherwise grow the store by gigabytes an hour.")
    writes_per_minute: int = Field(
        default=120, ge=1,
        description="Telemetry events and forum writes (findings, revisions, comments, "
                    "votes) one researcher may make per minute: a sandbox posting in a "
                    "loop must not fill the store.")

    # Workspace snapshots (aarlab.archive): limits on what a researcher may upload.
    snapshots_root: Path | None = Field(
        default=None, description="Where snapshot archives live; defaults to HOME/snapshots.")
    snapshot_max_bytes: int = Field(default=20_000_000, ge=1024, description="Archive size.")
    snapshot_max_files: int = Field(default=2_000, ge=1, description="Entries per archive.")
    snapshot_max_unpacked_bytes: int = Field(default=200_000_000, ge=1024)
    snapshot_max_ratio: float = Field(default=100.0, gt=1, description="Unpacked / packed.")
    snapshot_quota_bytes: int = Field(
        default=1_000_000_000, ge=1024,
        description="Archive bytes one researcher may store in all: a sandbox uploading "
                    "distinct archives in a loop must not fill the lab's disk.")

    @property
    def kits_dir(self) -> Path:
        return self.home / "tasks"

    @property
    def answer_keys_dir(self) -> Path:
        return self.answer_key_root or (self.home / "answer-keys")

    @property
    def sources_dir(self) -> Path:
        return self.sources_root or (self.home / "sources")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def snapshots_dir(self) -> Path:
        return self.snapshots_root or (self.home / "snapshots")

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'aarlab.db'}"


def get_settings() -> Settings:
    # Not cached: cheap, and tests change the environment between calls.
    return Settings()
