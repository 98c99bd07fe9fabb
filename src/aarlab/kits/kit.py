"""Reading a task kit: everything a researcher may see, and nothing else.

Layout of a kit directory (written by ``aarlab.tasks.build``)::

    manifest.json                name, format, labels, sizes, models, provenance, licences
    train_unlabel.jsonl          large set for the student (no ``label``)
    test.jsonl                   scored set (no ``label``)
    features/<model>/<split>.npy strong-model features, rows in jsonl order (float32)
    weak/seed<k>.npz             weak teacher's class probabilities on train_unlabel and test

A kit holds no gold label of any split: the weak teacher's own training rows (``train_label``,
of which the manifest keeps only the count) live in the answer key, and what a researcher sees
of them is the teacher's outputs. ``aarlab.tasks.kit_guard`` checks this when a kit is written.
No file in a kit names or points to the answer key.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from aarlab.errors import CorruptCacheError, TaskNotBuiltError
from aarlab.kits.formats import LABELS

SPLITS = ("train_unlabel", "test")


class TaskKit:
    def __init__(self, kit_dir: Path):
        self.dir = Path(kit_dir)
        if not (self.dir / "manifest.json").exists():
            raise TaskNotBuiltError(
                f"no task kit at {self.dir}", hint="run `aarlab task build NAME` first"
            )

    @cached_property
    def manifest(self) -> dict:
        return _read_json(self.dir / "manifest.json")

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def label_names(self) -> list:
        return LABELS[self.format]

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def strong_model(self) -> str:
        return self.manifest["strong_model"]

    @property
    def seeds(self) -> list[int]:
        return list(range(self.manifest["weak_seeds"]))

    def rows(self, split: str) -> list[dict]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return _cached_rows(self.dir / f"{split}.jsonl")

    def ids(self, split: str) -> list[str]:
        return [r["id"] for r in self.rows(split)]

    def features(self, split: str, model: str | None = None) -> np.ndarray:
        path = self.dir / "features" / (model or self.strong_model) / f"{split}.npy"
        if not path.exists():
            raise TaskNotBuiltError(f"no features at {path}", hint="rebuild the task")
        return _load_npy(path)

    def weak_probs(self, split: str, seed: int) -> np.ndarray:
        """Weak teacher's class probabilities (N, K) on ``train_unlabel`` or ``test``."""
        path = self.dir / "weak" / f"seed{seed}.npz"
        if not path.exists():
            raise TaskNotBuiltError(
                f"no weak labels for seed {seed} at {path}",
                hint=f"seeds built: {self.seeds}",
            )
        with np.load(path) as z:
            return z[split]

    def labels_to_values(self, indices: np.ndarray) -> list:
        names = self.label_names
        return [names[int(i)] for i in indices]


_ROWS: dict[tuple[Path, float], list[dict]] = {}


def _cached_rows(path: Path) -> list[dict]:
    key = (path, path.stat().st_mtime)
    if key not in _ROWS:
        with open(path, encoding="utf-8") as f:
            _ROWS[key] = [json.loads(line) for line in f if line.strip()]
    return _ROWS[key]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise CorruptCacheError(f"corrupt file {path}: {e}", hint="rebuild the task") from e


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path)
    except (ValueError, OSError, EOFError) as e:
        raise CorruptCacheError(f"corrupt feature file {path}: {e}", hint="rebuild the task") from e
