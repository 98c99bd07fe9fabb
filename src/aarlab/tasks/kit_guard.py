"""The kit writer's last check: no gold label, and nothing that stands in for one.

Called by the builder, ``task import`` and the re-draw on the kit folder *before* it is moved
into place. It refuses, naming the file:

- anything but plain files and folders (a symlink could point at the answer key);
- a jsonl row that carries a label-like key (``label``, ``gold``, ``target``, ...);
- a file named like one of the answer key's;
- an array (npy / npz member) over the rows of ``train_unlabel`` or ``test`` that agrees with
  gold better than the weak teacher's best seed does on that split, plus a tolerance. An (N,)
  array is read as one prediction, an (N, K) array as argmax and column by column, so a gold
  column planted among the features is found too. The weak teacher's own outputs pass by
  construction; the strong features pass because no single column of them predicts gold.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from aarlab.errors import AarlabError
from aarlab.tasks.kit_archive import ANSWER_KEY_FILES

# Keys a row may not carry: the gold label under any of its usual names.
LABEL_KEY = re.compile(r"label|gold|target|truth|^y$|^answer$|^correct$", re.IGNORECASE)
SPLITS = ("train_unlabel", "test")
# The bar over the weak teacher's best seed: 2 points plus sampling noise, 1 / sqrt(N) for one
# reading of an array, 3 / sqrt(N) for the best of many columns (e.g. 384 feature columns).
TOLERANCE = 0.02


class KitLeakError(AarlabError):
    """The kit about to be written carries gold labels or something that agrees with them."""


def check_kit_has_no_gold(kit_dir: Path, gold: dict[str, np.ndarray],
                          weak: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Refuse a kit that leaks gold; return each split's weak-teacher bar (before noise).

    ``gold``: class indices per split (``train_unlabel``, ``test``) in kit row order.
    ``weak``: the weak teacher's per-seed predictions (class indices) per split, same order.
    """
    kit_dir = Path(kit_dir)
    bars = {s: max(_agreement(p, gold[s]) for p in weak[s]) + TOLERANCE for s in SPLITS}
    for path in sorted(kit_dir.rglob("*")):
        name = path.relative_to(kit_dir).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise KitLeakError(f"kit file {name}: not a plain file or folder",
                               hint="a kit holds only regular files; rebuild the task")
        if path.is_dir():
            continue
        if path.name in ANSWER_KEY_FILES:
            raise KitLeakError(f"kit file {name}: named like an answer-key file",
                               hint="answer-key files never go into a kit")
        if path.suffix == ".jsonl":
            _check_rows(path, name)
        elif path.suffix == ".npy":
            _check_array(_load(path, name), name, gold, bars)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                for member in z.files:
                    _check_array(z[member], f"{name}:{member}", gold, bars)
    return bars


def _check_rows(path: Path, name: str) -> None:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict):
                raise KitLeakError(f"kit file {name}:{n}: expected a JSON object per row")
            bad = sorted(k for k in row if LABEL_KEY.search(k))
            if bad:
                raise KitLeakError(f"kit file {name}:{n}: row carries label-like field(s) "
                                   f"{bad}", hint="kit rows carry no gold label of any split")


def _check_array(a: np.ndarray, name: str, gold: dict[str, np.ndarray],
                 bars: dict[str, float]) -> None:
    for split in SPLITS:
        y = gold[split]
        if a.ndim not in (1, 2) or a.shape[0] != len(y) or a.dtype.kind not in "biuf":
            continue
        for how, pred in _readings(a, n_classes=int(y.max()) + 1 if y.size else 2):
            agree = _agreement(pred, y)
            bar = bars[split] + (3 if how.startswith("column") else 1) / math.sqrt(len(y))
            if agree > bar:
                raise KitLeakError(
                    f"kit file {name}: read as {how}, it agrees with gold {split} labels on "
                    f"{agree:.1%} of rows, above the weak teacher's best seed plus tolerance "
                    f"({bar:.1%})", hint="a kit carries no gold label, in any form")


def _readings(a: np.ndarray, n_classes: int):
    """Ways an array could encode a label per row: as given, argmax, each column thresholded."""
    a = a.astype(np.float64)
    if a.ndim == 1:
        yield "predictions", _as_labels(a, n_classes)
        return
    if a.shape[1] == n_classes:
        yield "argmax", a.argmax(1)
    for j in range(a.shape[1]):
        yield f"column {j}", _as_labels(a[:, j], n_classes)


def _as_labels(v: np.ndarray, n_classes: int) -> np.ndarray:
    if np.all(v == np.round(v)) and v.min() >= 0 and v.max() < n_classes:
        return v.astype(np.int64)  # class indices
    cut = 0.5 if v.min() >= 0 and v.max() <= 1 else 0.0  # a probability, else a score's sign
    return (v > cut).astype(np.int64)


def _agreement(pred: np.ndarray, y: np.ndarray) -> float:
    agree = float((np.asarray(pred) == y).mean())
    # With two classes the flipped array leaks as much as the array itself.
    return max(agree, 1 - agree) if int(y.max(initial=0)) <= 1 else agree


def _load(path: Path, name: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise KitLeakError(f"kit file {name}: not a plain numpy array ({e})") from e
