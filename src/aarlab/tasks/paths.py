"""Where a task's kit and answer key live. Light on purpose: the server imports it without
pulling in torch and the encoders that the builder needs."""

from __future__ import annotations

import re
from pathlib import Path

from aarlab.config import Settings

# A plain task name: also what keeps a name from stepping outside kits_dir and answer_keys_dir.
TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def kit_dir(settings: Settings, name: str) -> Path:
    return settings.kits_dir / name / "kit"


def answer_key_dir(settings: Settings, name: str) -> Path:
    return settings.answer_keys_dir / name


def is_built(settings: Settings, name: str) -> bool:
    return (kit_dir(settings, name) / "manifest.json").exists() and (
        answer_key_dir(settings, name) / "reference.json"
    ).exists()
