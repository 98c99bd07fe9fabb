"""A re-drawn split of a built task: the same rows, a new partition, new weak teachers.

Rows (with gold labels from the answer key) are split again with another seed, and pairwise
rows get a fresh A/B order, as the task's loader would with another build seed. Features are
reused row by row from the original kit (a pair's features are ``emb(first) - emb(second)``, so
a swap negates them), so no encoder runs: a re-draw costs a few teacher and head fits.

Ids stay the same; a hard-coded id -> label table then gets every swapped pair and every row
that moved into the test set from elsewhere wrong. The result lands in its own home,
``AARLAB_HOME/replication/<task>-seed<k>/{kit,answer-key}``, never beside the original.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from aarlab.config import Settings
from aarlab.tasks.answer_key import PARTS, AnswerKey
from aarlab.tasks.build import split_parts, split_rows
from aarlab.tasks.formats import LABELS, label_index
from aarlab.tasks.kit import SPLITS, TaskKit
from aarlab.tasks.registry import Sizes
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.reference import reference_runs
from aarlab.w2s.weak import TfidfTeacher


def replication_home(settings: Settings, task: str, seed: int) -> Path:
    return settings.home / "replication" / f"{task}-seed{seed}"


def redraw(kit: TaskKit, key: AnswerKey, settings: Settings,
           seed: int) -> tuple[TaskKit, AnswerKey]:
    """Build (or reuse) the re-drawn split of ``kit`` with build seed ``seed``."""
    home = replication_home(settings, kit.name, seed)
    kit_out, key_out = home / "kit", home / "answer-key"
    if (kit_out / "manifest.json").exists() and (key_out / "reference.json").exists():
        return TaskKit(kit_out), AnswerKey(key_out, kit.format)
    if seed == kit.manifest.get("build_seed", 0):
        raise ValueError(f"seed {seed} is the original build seed; pick another")

    rows, feats = _rows_with_features(kit, key)
    rng = random.Random(seed)
    if kit.format == "pairwise":  # fresh A/B order, as the loader would draw it
        for i, r in enumerate(rows):
            if rng.random() < 0.5:
                rows[i] = {**r, "first": r["second"], "second": r["first"],
                           "label": "B" if r["label"] == "A" else "A"}
                feats[r["id"]] = -feats[r["id"]]
    m = kit.manifest["sizes"]
    splits = split_rows(rows, Sizes(m["train_label"], m["train_unlabel"], m["test"]), seed)
    parts = split_parts(splits["test"], seed)

    tmp = home.with_name(home.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "kit" / "weak").mkdir(parents=True)
    (tmp / "answer-key").mkdir()
    x = {s: np.stack([feats[r["id"]] for r in splits[s]]) for s in SPLITS}
    y = {s: np.array([label_index(kit.format, r["label"]) for r in splits[s]]) for s in SPLITS}
    for s in SPLITS:
        with open(tmp / "kit" / f"{s}.jsonl", "w", encoding="utf-8") as f:
            for r in splits[s]:
                f.write(json.dumps(r if s == "train_label" else
                                   {k: v for k, v in r.items() if k != "label"},
                                   ensure_ascii=False) + "\n")
        out = tmp / "kit" / "features" / kit.strong_model / f"{s}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, x[s].astype(np.float32))
    labels = {s: {r["id"]: r["label"] for r in splits[s]} for s in ("train_unlabel", "test")}
    (tmp / "answer-key" / "labels.json").write_text(json.dumps(labels))
    (tmp / "answer-key" / "parts.json").write_text(json.dumps(parts))

    weak_test = []
    for k in kit.seeds:
        teacher = TfidfTeacher(kit.format, k).fit(splits["train_label"], y["train_label"])
        probs = {s: teacher.predict_proba(splits[s]) for s in ("train_unlabel", "test")}
        np.savez(tmp / "kit" / "weak" / f"seed{k}.npz", **probs)
        weak_test.append(probs["test"])
    head = HeadConfig(**kit.manifest["student_head"])
    test_ids = [r["id"] for r in splits["test"]]
    torch.set_num_threads(settings.torch_threads)
    reference = reference_runs(
        weak_test_probs=weak_test, x_unlabel=x["train_unlabel"], y_unlabel=y["train_unlabel"],
        x_test=x["test"], y_test=y["test"], parts={p: np.isin(test_ids, parts[p]) for p in PARTS},
        head=head, n_classes=len(LABELS[kit.format]))
    reference["student_head"] = asdict(head)
    (tmp / "answer-key" / "reference.json").write_text(json.dumps(reference, indent=1))
    manifest = {**kit.manifest, "sizes": {s: len(splits[s]) for s in SPLITS},
                "build_seed": seed, "redrawn_from": kit.manifest.get("build_seed", 0)}
    (tmp / "kit" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if home.exists():
        shutil.rmtree(home)
    tmp.rename(home)
    return TaskKit(kit_out), AnswerKey(key_out, kit.format)


def _rows_with_features(kit: TaskKit, key: AnswerKey) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every row of the original build with its gold label and its feature vector."""
    rows, feats = [], {}
    for s in SPLITS:
        split_rows_ = kit.rows(s)
        x = kit.features(s)
        gold = (None if s == "train_label" else
                kit.labels_to_values(key.labels(s, [r["id"] for r in split_rows_])))
        for i, (r, v) in enumerate(zip(split_rows_, x, strict=True)):
            rows.append(r if gold is None else {**r, "label": gold[i]})
            feats[r["id"]] = np.asarray(v)
    return rows, feats
