"""A re-drawn split of a built task: the same rows, a new partition, new weak teachers.

Rows (with gold labels from the answer key, which alone holds ``train_label``'s rows and
features) are split again with another seed, and pairwise rows get a fresh A/B order, as the
task's loader would with another build seed. Features are reused row by row from the original
build (a pair's features are ``emb(first) - emb(second)``, so a swap negates them), so no
encoder runs: a re-draw costs a few teacher fits and the refit of
the original's ceiling member. It is written by the builder's own ``write_task`` (kit guard
included), so a re-drawn kit holds no gold label either.

Ids stay the same; a hard-coded id -> label table then gets every swapped pair and every row
that moved into the test set from elsewhere wrong. The result lands in its own home,
``AARLAB_HOME/replication/<task>-seed<k>/{kit,answer-key}``, never beside the original.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from aarlab.config import Settings
from aarlab.kits.kit import SPLITS, TaskKit
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.build import ALL_SPLITS, split_parts, split_rows, write_task
from aarlab.tasks.registry import Sizes
from aarlab.w2s.ceiling import Member


def replication_home(settings: Settings, task: str, seed: int) -> Path:
    return settings.home / "replication" / f"{task}-seed{seed}"


def redraw(kit: TaskKit, key: AnswerKey, settings: Settings,
           seed: int) -> tuple[TaskKit, AnswerKey]:
    """Build (or reuse) the re-drawn split of ``kit`` with build seed ``seed``."""
    home = replication_home(settings, kit.name, seed)
    kit_out, key_out = home / "kit", home / "answer-key"
    # A re-draw made before reference predictions were kept is stale: make it again.
    if (kit_out / "manifest.json").exists() and (key_out / "reference_preds.npz").exists():
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
    (tmp / "kit").mkdir(parents=True)
    (tmp / "answer-key").mkdir()
    x = {s: np.stack([feats[r["id"]] for r in splits[s]]) for s in ALL_SPLITS}
    manifest = {**kit.manifest, "build_seed": seed,
                "redrawn_from": kit.manifest.get("build_seed", 0)}
    torch.set_num_threads(settings.torch_threads)
    # The ceiling member chosen on the original build is refit here, not searched again.
    chosen = key.reference.get("ceiling_member")
    write_task(tmp / "kit", tmp / "answer-key", kit.format, splits, x, parts, manifest,
               weak_seeds=len(kit.seeds),
               replication_seeds=len(key.reference.get("replication_seeds", [])),
               force=key.servable, cv_seed=seed,
               ceiling_member=Member(chosen["kind"], chosen["value"]) if chosen else None,
               label=f"{kit.name} re-draw {seed}")
    if home.exists():
        shutil.rmtree(home)
    tmp.rename(home)
    return TaskKit(kit_out), AnswerKey(key_out, kit.format)


def _rows_with_features(kit: TaskKit, key: AnswerKey) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every row of the original build with its gold label and its feature vector.

    ``train_label``'s rows and features come from the answer key (a kit never holds them).
    """
    rows, feats = [], {}
    for r, v in zip(key.train_label_rows(), key.train_label_features(kit.strong_model),
                    strict=True):
        rows.append(r)
        feats[r["id"]] = np.asarray(v)
    for s in SPLITS:
        split_rows_ = kit.rows(s)
        gold = kit.labels_to_values(key.labels(s, [r["id"] for r in split_rows_]))
        for i, (r, v) in enumerate(zip(split_rows_, kit.features(s), strict=True)):
            rows.append({**r, "label": gold[i]})
            feats[r["id"]] = np.asarray(v)
    return rows, feats
