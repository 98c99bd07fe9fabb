"""The answer key: every gold label, the feedback/final split, reference runs.

Only the scoring server, the reference code and reports open it. It lives outside every kit::

    labels.json          {"train_unlabel": {id: label}, "test": {id: label}}
    train_label.jsonl    the weak teacher's gold training rows (never in a kit)
    features/<model>/train_label.npy   their strong-model features (for re-drawn splits)
    replication-weak/seed<k>.npz       teachers of seeds no kit shows: fresh replication seeds
    parts.json           {"feedback": [test ids], "final": [test ids]}  (50/50, stratified by label)
    reference.json       weak floor and ceiling accuracy per seed on test / feedback / final, the
                         ceiling family member chosen by cross-validation, the gap and ``gap_ok``
    reference_preds.npz  ids (test ids), weak (S, N) and ceiling (S, N) class indices per seed:
                         what the paired bootstrap resamples
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from aarlab.errors import AarlabError, CorruptCacheError, TaskNotBuiltError
from aarlab.kits.formats import label_index
from aarlab.w2s.metrics import Estimate, estimate

PARTS = ("feedback", "final")


class TaskRefusedError(AarlabError):
    """A built task that is not served: its gap to recover is not clearly above 0."""


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

    @cached_property
    def _reference_preds(self) -> dict[str, np.ndarray]:
        path = self.dir / "reference_preds.npz"
        if not path.exists():
            raise TaskNotBuiltError(f"missing {path} (the task was built before per-seed "
                                    "reference predictions were kept)", hint="rebuild the task")
        try:
            with np.load(path) as z:
                return {k: z[k] for k in ("ids", "weak", "ceiling", "groups") if k in z.files}
        except (ValueError, OSError, EOFError, KeyError) as e:
            raise CorruptCacheError(f"corrupt file {path}: {e}", hint="rebuild the task") from e

    def _columns(self, ids: list[str]) -> list[int]:
        pos = {str(i): k for k, i in enumerate(self._reference_preds["ids"])}
        try:
            return [pos[i] for i in ids]
        except KeyError as e:
            raise ValueError(f"test id {e.args[0]!r} is not in the answer key") from None

    def reference_preds(self, which: str, ids: list[str]) -> np.ndarray:
        """Per-seed class indices (S, len(ids)) of the ``weak`` or ``ceiling`` reference."""
        return self._reference_preds[which][:, self._columns(ids)]

    def test_groups(self, ids: list[str]) -> np.ndarray | None:
        """Consistency group per test row (rows of one question are resampled together)."""
        g = self._reference_preds.get("groups")
        return None if g is None else g[self._columns(ids)]

    def train_label_rows(self) -> list[dict]:
        """The weak teacher's gold training rows (with ``label``): lab-owner code only."""
        path = self.dir / "train_label.jsonl"
        if not path.exists():
            raise TaskNotBuiltError(f"missing {path}", hint="rebuild the task")
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def train_label_features(self, model: str) -> np.ndarray:
        """Strong-model features of ``train_label``'s rows, in ``train_label_rows`` order."""
        path = self.dir / "features" / model / "train_label.npy"
        if not path.exists():
            raise TaskNotBuiltError(f"missing {path}", hint="rebuild the task")
        return np.load(path)

    @property
    def gap_ok(self) -> bool:
        """Whether the build found a gap (ceiling − weak) whose interval lies above 0.

        Keys built before the check carry no verdict: they count as not ok, so they are rebuilt.
        """
        return bool(self.reference.get("gap_ok", False))

    @property
    def servable(self) -> bool:
        """A task is served when it has a gap to recover, or when its builder forced it."""
        return self.gap_ok or bool(self.reference.get("forced", False))

    def require_servable(self, name: str) -> None:
        if not self.servable:
            gap = self.reference.get("gap", {})
            shown = (f"{gap['mean']:+.3f} [{gap['ci95'][0]:+.3f}, {gap['ci95'][1]:+.3f}]"
                     if "ci95" in gap else "unknown (built before the gap check)")
            raise TaskRefusedError(
                f"task {name!r} is not served: its gap (ceiling - weak accuracy) is {shown}, "
                "not clearly above 0, so PGR means nothing there",
                hint=f"rebuild with a stronger student (`aarlab task build {name} --force "
                     "--strong-model mpnet`) or fewer teacher labels; `--force` serves it anyway")

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
