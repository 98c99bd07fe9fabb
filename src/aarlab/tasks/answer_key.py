"""The answer key: test and train_unlabel labels, the feedback/final split, reference runs.

Only the scoring server, the reference code and reports open it. It lives outside every kit::

    labels.json     {"train_unlabel": {id: label}, "test": {id: label}}
    parts.json      {"feedback": [test ids], "final": [test ids]}  (50/50, stratified by label)
    reference.json  weak floor and ceiling accuracy per seed on test / feedback / final
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from aarlab.errors import CorruptCacheError, TaskNotBuiltError
from aarlab.tasks.formats import label_index
from aarlab.w2s.metrics import Estimate, estimate

PARTS = ("feedback", "final")


class AnswerKey:
    def __init__(self, key_dir: Path, fmt: str):
        self.dir = Path(key_dir)
        self.format = fmt
        if not (self.dir / "labels.json").exists():
            raise TaskNotBuiltError(f"no answer key at {self.dir}", hint="build the task first")

    @cached_property
    def _labels(self) -> dict[str, dict[str, object]]:
        return _read(self.dir / "labels.json")

    @cached_property
    def parts(self) -> dict[str, list[str]]:
        return _read(self.dir / "parts.json")

    @cached_property
    def reference(self) -> dict:
        return _read(self.dir / "reference.json")

    def labels(self, split: str, ids: list[str]) -> np.ndarray:
        """Gold class indices for ``ids`` of ``split``, in that order."""
        table = self._labels[split]
        return np.array([label_index(self.format, table[i]) for i in ids])

    def reference_estimate(self, which: str, part: str = "test") -> Estimate:
        """``which`` is ``weak`` or ``ceiling``; ``part`` is ``test``, ``feedback`` or ``final``."""
        return estimate(self.reference[which][part])


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise TaskNotBuiltError(f"missing {path}", hint="rebuild the task") from e
    except ValueError as e:
        raise CorruptCacheError(f"corrupt file {path}: {e}", hint="rebuild the task") from e
