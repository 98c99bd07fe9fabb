"""How a build splits rows: train_label, train_unlabel and test, then test into feedback and
final. Consistency groups (rows of one question) are never split across either cut."""

from __future__ import annotations

import json
import random

from aarlab.kits.kit import SPLITS
from aarlab.tasks.spec import Sizes

# Every split a build draws; the kit holds only SPLITS (train_label's rows are answer-key only).
ALL_SPLITS = ("train_label", *SPLITS)


def split_rows(rows: list[dict], sizes: Sizes, seed: int) -> dict[str, list[dict]]:
    """Shuffle whole consistency groups, then fill train_label, train_unlabel and test."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r.get("consistency_id", r["id"]), []).append(r)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    out: dict[str, list[dict]] = {s: [] for s in ALL_SPLITS}
    want = {"train_label": sizes.train_label, "train_unlabel": sizes.train_unlabel,
            "test": sizes.test}
    current = iter(ALL_SPLITS)
    split = next(current)
    for gid in order:
        while split and len(out[split]) >= want[split]:
            split = next(current, None)
        if split is None:
            break
        out[split].extend(groups[gid])
    return out


def split_parts(test_rows: list[dict], seed: int) -> dict[str, list[str]]:
    """50/50 split of test into feedback and final, stratified by label, groups kept whole."""
    groups: dict[str, list[dict]] = {}
    for r in test_rows:
        groups.setdefault(r.get("consistency_id", r["id"]), []).append(r)
    by_label: dict[str, list[str]] = {}
    for gid, members in groups.items():
        by_label.setdefault(json.dumps(members[0]["label"]), []).append(gid)
    rng = random.Random(seed + 1)
    parts: dict[str, list[str]] = {"feedback": [], "final": []}
    for stratum in sorted(by_label):
        gids = sorted(by_label[stratum])
        rng.shuffle(gids)
        half = len(gids) // 2
        for i, gid in enumerate(gids):
            parts["feedback" if i < half else "final"].extend(r["id"] for r in groups[gid])
    return parts
