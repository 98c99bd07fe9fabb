"""Starting directions: each researcher is handed a different one to start from.

A direction is a *method family* (label-noise modelling, graph propagation, elicitation, robust
losses, self-training, ensembles), so researchers divide the work by idea, not only by starting
point. Its methods are the listed library names plus any library method whose stage is in
``stages`` or whose name or docstring mentions a ``match`` keyword: a method added to the
library later joins its family without editing the list (``Direction.resolve``).

The shipped order puts families that act at different stages first (label sources that
overrule the teacher, robust losses, graph propagation, self-training), so a lab of three
researchers does not spend all three on ways of replacing the teacher's labels; the families
that share a stage with those come after.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aarlab.errors import AarlabError


@dataclass(frozen=True)
class Direction:
    name: str
    text: str
    methods: tuple[str, ...]
    match: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()

    def resolve(self, described: Iterable[dict]) -> tuple[str, ...]:
        """This family's methods in the library ``described`` (``aarlab.w2s.methods.describe()``):
        listed names first, in order, then matches by stage or keyword; unknown names dropped."""
        described = list(described)
        known = {m["name"] for m in described}
        out = [m for m in self.methods if m in known]
        for m in described:
            text = f"{m['name']} {m.get('doc', '')}".lower()
            if m["name"] not in out and (m.get("stage") in self.stages or
                                         any(k.lower() in text for k in self.match)):
                out.append(m["name"])
        return tuple(out)


def direction_for(directions: list[Direction], i: int, researchers: int, lab_seed: int
                  ) -> Direction:
    """Researcher ``i``'s direction. Lab seed s hands out the s-th block of ``researchers``
    directions (wrapping), so labs with successive seeds cover different families: with 3
    researchers and the 6 shipped families, seeds 0 and 1 between them try all six (with seed
    0 alone, the families that overrule the teacher's labels were the only ones any lab ran,
    and the loss-side families that travel across tasks had no researcher)."""
    return directions[(lab_seed * researchers + i) % len(directions)]


def family_of(method: str, directions: Iterable[Direction], described: Iterable[dict]) -> str:
    """The first direction whose resolved methods include ``method`` ("other" if none)."""
    described = list(described)
    return next((d.name for d in directions if method in d.resolve(described)), "other")


def load_directions(path: Path | None = None) -> list[Direction]:
    """The shipped directions, or a user's JSON file of
    ``[{"name", "text", "methods", "match"?, "stages"?}]``."""
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
        lists = {}
        for field in ("methods", "match", "stages"):
            value = d.get(field, [])
            if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
                raise AarlabError(f"directions[{i}].{field}: expected a list of strings")
            lists[field] = tuple(value)
        out.append(Direction(d["name"], str(d.get("text", "")), lists["methods"],
                             lists["match"], lists["stages"]))
    return out
