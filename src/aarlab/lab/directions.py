"""Starting directions: each researcher is handed a different one to start from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aarlab.errors import AarlabError


@dataclass(frozen=True)
class Direction:
    name: str
    text: str
    methods: tuple[str, ...]


def load_directions(path: Path | None = None) -> list[Direction]:
    """The shipped directions, or a user's JSON file of ``[{"name","text","methods"}]``."""
    if path is None:
        raw = resources.files("aarlab.researchers").joinpath("directions.json").read_text()
        where = "the shipped directions.json"
    else:
        try:
            raw = Path(path).read_text()
        except OSError as e:
            raise AarlabError(f"directions: cannot read {path}: {e.strerror}") from None
        where = str(path)
    try:
        items = json.loads(raw)
    except ValueError as e:
        raise AarlabError(f"directions: {where} is not valid JSON ({e})") from None
    if not isinstance(items, list) or not items:
        raise AarlabError(f"directions: {where} must be a non-empty JSON list")
    out = []
    for i, d in enumerate(items):
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
            raise AarlabError(f"directions[{i}].name: expected a non-empty string")
        methods = d.get("methods", [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise AarlabError(f"directions[{i}].methods: expected a list of method names")
        out.append(Direction(d["name"], str(d.get("text", "")), tuple(methods)))
    return out
