"""The LoRA student: the same method pipeline, with the strong LM fine-tuned instead of a head.

A spec picks its student with ``"student": {"kind": "lora", "lr": 1e-4, ...}`` (the default,
``{"kind": "head"}``, is the frozen-feature head). Every step keeps working unchanged because
steps only ever see feature rows: a training set's rows, the test rows, or their negations (a
pair with A and B swapped). :class:`RowIndex` maps each such feature row back to its kit row
(swapped when negated), so ``ctx.fit`` fine-tunes the LM on those rows' prompts with the same
``loss(logits, targets, step_frac)`` and weights, and ``model.predict_proba(x)`` answers for any
feature row of the kit. A step that invents feature rows no kit row has cannot be run with this
student and says so.

Runs are cached by (spec, seed, kit sha256, signals): a repeated experiment costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.errors import SpecError
from aarlab.kits.kit import SPLITS, TaskKit
from aarlab.w2s.heads import LossFn, xent_loss
from aarlab.w2s.methods.base import Context, TrainSet
from aarlab.w2s.spec import StudentSpec


def check_kit(kit: TaskKit, student: StudentSpec) -> dict:
    """The kit's strong-LM record; a kit without one cannot train a LoRA student."""
    rec = kit.manifest.get("student_lm")
    if student.kind == "lora" and not rec:
        raise SpecError(f"student.kind: 'lora' needs a task built with language models; "
                        f"{kit.name!r} has a sentence-encoder student",
                        hint="build one with `aarlab task build SOURCE --as NAME --weak-model M "
                             "--strong-model M`, or use the default head student")
    return rec or {}


class RowIndex:
    """Feature row -> (split, row index, swapped) for every kit row and its negation."""

    def __init__(self, kit: TaskKit, x: dict[str, np.ndarray]):
        self.kit = kit
        self.pairwise = kit.format == "pairwise"
        self._map: dict[bytes, tuple[str, int, bool]] = {}
        for split in SPLITS:
            feats = np.ascontiguousarray(x[split], dtype=np.float32)
            for i, row in enumerate(feats):
                self._map.setdefault(row.tobytes(), (split, i, False))
                if self.pairwise:
                    self._map.setdefault((-row).tobytes(), (split, i, True))

    def rows(self, x: np.ndarray) -> list[dict]:
        """The kit rows (pairs swapped where negated) behind feature rows ``x``."""
        out = []
        for row in np.ascontiguousarray(x, dtype=np.float32):
            hit = self._map.get(row.tobytes())
            if hit is None:
                raise SpecError("student.kind: 'lora' trains on kit rows only, but a step made "
                                "a feature row that is no row of the kit (e.g. interpolated "
                                "features)", hint="run this method with the head student")
            split, i, swapped = hit
            r = self.kit.rows(split)[i]
            out.append({**r, "first": r["second"], "second": r["first"]} if swapped else r)
        return out


class LoraModel:
    """A fine-tuned LM that answers ``predict_proba(features)`` like a head does."""

    def __init__(self, clf, index: RowIndex, fmt: str):
        self.clf, self.index, self.fmt = clf, index, fmt
        self._memo: dict[bytes, np.ndarray] = {}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        keys = [r.tobytes() for r in x]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            probs = self.clf.predict_proba(self.fmt, self.index.rows(x[todo]))
            for i, p in zip(todo, probs, strict=True):
                self._memo[keys[i]] = p
        return np.stack([self._memo[k] for k in keys]) if keys else np.empty((0, 2), np.float32)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(x), 1e-12, None))


@dataclass
class LoraContext(Context):
    """A Context whose ``fit`` fine-tunes the strong LM (LoRA) on the training rows' prompts."""

    student: StudentSpec = field(default_factory=StudentSpec)
    lm_folder: Path | None = None
    index: RowIndex | None = None

    def fit(self, ts: TrainSet, loss_fn: LossFn = xent_loss, seed_offset: int = 0) -> LoraModel:
        from aarlab.w2s.lm_fit import LMFit, classifier

        keep = ts.weights > 0
        if not keep.any():
            raise ValueError("every training row was dropped; loosen the filter")
        assert self.index is not None and self.lm_folder is not None
        rows = self.index.rows(ts.x[keep])
        w = ts.weights[keep]
        s = self.student
        fit = LMFit(epochs=s.epochs, batch_size=s.batch_size, r=s.r, max_length=s.max_length)
        clf = classifier(self.lm_folder, fit.config(self.lm_folder, s.lr, self.seed + seed_offset))
        clf.fit(self.format, rows, ts.targets[keep], loss_fn=loss_fn,
                weights=None if np.all(w == 1) else w)
        return LoraModel(clf, self.index, self.format)


def context_factory(kit: TaskKit, student: StudentSpec, x: dict[str, np.ndarray],
                    make_context: Callable[..., Any]):
    """``make_context``'s replacement for a LoRA student (same arguments), built on the runner's
    ``make_context`` (passed in: the runner imports this module, so no import back)."""
    from aarlab.w2s.backends.lm_models import find_lm

    folder = find_lm(check_kit(kit, student))
    index = RowIndex(kit, x)

    def make(kit: TaskKit, seed: int, head=None, *, x=x, shared=None) -> LoraContext:
        base = make_context(kit, seed, head, x=x, shared=shared)
        return LoraContext(**base.__dict__, student=student, lm_folder=folder, index=index)

    return make


# --- run cache ---------------------------------------------------------------------------------

_KIT_SHA: dict[tuple[str, float], str] = {}


def kit_sha256(kit: TaskKit) -> str:
    """sha256 over every file of the kit (names and contents)."""
    stamp = (str(kit.dir.resolve()), (kit.dir / "manifest.json").stat().st_mtime)
    if stamp not in _KIT_SHA:
        h = hashlib.sha256()
        for p in sorted(q for q in kit.dir.rglob("*") if q.is_file() and not q.is_symlink()):
            h.update(p.relative_to(kit.dir).as_posix().encode() + b"\0")
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
        _KIT_SHA[stamp] = h.hexdigest()
    return _KIT_SHA[stamp]


def cache_root() -> Path:
    env = os.environ.get("AARLAB_RUN_CACHE")
    if env:
        return Path(env)
    workspace = os.environ.get("AARLAB_WORKSPACE")  # inside a sandbox: the writable place
    if workspace:
        return Path(workspace) / ".run-cache"
    from aarlab.config import get_settings

    return get_settings().cache_dir / "student-runs"


class RunCache:
    """Per-seed (predictions, diagnostics) of one spec on one kit, on disk."""

    def __init__(self, kit: TaskKit, canonical: dict, signals: bool, folds: int):
        blob = json.dumps({"spec": canonical, "kit": kit_sha256(kit), "signals": signals,
                           "folds": folds if signals else None}, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()
        self.dir = cache_root()

    def _path(self, seed: int) -> Path:
        return self.dir / f"{self.key}-seed{seed}.json"

    def get(self, seed: int) -> tuple[np.ndarray, dict] | None:
        path = self._path(seed)
        if not path.is_file() or path.is_symlink():
            return None
        try:
            # JSON, never pickle: a cache file is data, whoever wrote it.
            entry = json.loads(path.read_text())
            return np.asarray(entry["pred"], dtype=np.int64), {**entry["diag"], "cached": True}
        except Exception:  # noqa: BLE001 - a broken entry is a miss, never a crash
            return None

    def put(self, seed: int, pred: np.ndarray, diag: dict) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self._path(seed).with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"pred": np.asarray(pred).tolist(), "diag": diag},
                                      default=_plain))
            os.replace(tmp, self._path(seed))
        except OSError:
            pass  # a read-only place: the run still counts, it is just not cached


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON: {type(v).__name__}")
