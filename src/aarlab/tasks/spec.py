"""What a task is (``TaskSpec``) and the table of known tasks that loaders register into.

Apart from ``registry`` (the catalogue, which imports every task module) so that a task module
registers itself without importing the catalogue that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Loader = Callable[[Path, int], tuple[list[dict], list[dict]]]


@dataclass(frozen=True)
class Sizes:
    train_label: int = 2000
    train_unlabel: int = 7000
    test: int = 1300

    def total(self) -> int:
        return self.train_label + self.train_unlabel + self.test

    def scaled(self, available: int) -> Sizes:
        """Shrink proportionally when the data has fewer rows than asked for."""
        if available >= self.total():
            return self
        f = available / self.total()
        tl, tu = int(self.train_label * f), int(self.train_unlabel * f)
        return Sizes(tl, tu, available - tl - tu)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    format: str
    description: str
    load: Loader
    default: bool = True
    notice: str | None = None
    sizes: Sizes = field(default_factory=Sizes)
    strong_model: str = "minilm-l6"
    student_head: str = "mlp"



TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    TASKS[spec.name] = spec
    return spec
