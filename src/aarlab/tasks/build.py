"""Build a task: fetch sources, split, write the kit and the answer key, encode, run references.

Everything lands in temporary folders first and is moved into place at the end, so a build that
is interrupted leaves either the old task or nothing, never half of one.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from aarlab.config import Settings
from aarlab.tasks.answer_key import PARTS, AnswerKey
from aarlab.tasks.features import encode_cached, row_features, row_texts
from aarlab.tasks.formats import FIELDS, LABELS, label_index
from aarlab.tasks.kit import SPLITS, TaskKit
from aarlab.tasks.paths import answer_key_dir, is_built, kit_dir
from aarlab.tasks.registry import Sizes, TaskSpec
from aarlab.w2s.backends.registry import load_encoder
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.reference import reference_runs
from aarlab.w2s.weak import TfidfTeacher

# The path helpers live in aarlab.tasks.paths; re-exported for callers that build tasks.
__all__ = ["BuildOptions", "answer_key_dir", "build_task", "is_built", "kit_dir"]

# stage(description, total) -> context manager yielding advance(n)
StageFn = Callable[[str, int | None], "contextmanager[Callable[[int], None]]"]


@contextmanager
def _silent_stage(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


@dataclass(frozen=True)
class BuildOptions:
    seed: int = 0
    weak_seeds: int = 5
    sizes: Sizes | None = None  # None: the task's own sizes
    strong_model: str | None = None  # None: the task's own


def build_task(
    spec: TaskSpec, settings: Settings, opts: BuildOptions = BuildOptions(),
    stage: StageFn = _silent_stage,
) -> tuple[TaskKit, AnswerKey]:
    sizes = opts.sizes or spec.sizes
    strong = opts.strong_model or spec.strong_model
    with stage(f"{spec.name}: fetch and shape data", None):
        rows, provenance = spec.load(settings.sources_dir, opts.seed)
    _validate_rows(spec, rows)
    sizes = sizes.scaled(len(rows))
    splits = split_rows(rows, sizes, opts.seed)
    parts = split_parts(splits["test"], opts.seed)

    kit_final, key_final = kit_dir(settings, spec.name), answer_key_dir(settings, spec.name)
    kit_tmp, key_tmp = _fresh(kit_final.with_name("kit.partial")), _fresh(
        key_final.with_name(key_final.name + ".partial"))

    for split in SPLITS:
        keep_label = split == "train_label"
        _write_jsonl(kit_tmp / f"{split}.jsonl",
                     [r if keep_label else {k: v for k, v in r.items() if k != "label"}
                      for r in splits[split]])
    labels = {s: {r["id"]: r["label"] for r in splits[s]} for s in ("train_unlabel", "test")}
    (key_tmp / "labels.json").write_text(json.dumps(labels))
    (key_tmp / "parts.json").write_text(json.dumps(parts))

    encoder = None
    feats: dict[str, np.ndarray] = {}
    for split in SPLITS:
        texts = row_texts(spec.format, splits[split])
        with stage(f"{spec.name}: encode {split} with {strong}", len(texts)) as advance:
            if encoder is None:
                encoder = load_encoder(strong, settings.sources_dir)
            text_feats, _ = encode_cached(encoder, texts, settings.cache_dir, advance)
        feats[split] = row_features(spec.format, text_feats)
        out = kit_tmp / "features" / strong / f"{split}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, feats[split])

    y = {s: np.array([label_index(spec.format, r["label"]) for r in splits[s]]) for s in SPLITS}
    weak_test = []
    with stage(f"{spec.name}: weak teacher x{opts.weak_seeds} seeds", opts.weak_seeds) as advance:
        (kit_tmp / "weak").mkdir()
        for seed in range(opts.weak_seeds):
            teacher = TfidfTeacher(spec.format, seed).fit(splits["train_label"], y["train_label"])
            probs = {s: teacher.predict_proba(splits[s]) for s in ("train_unlabel", "test")}
            np.savez(kit_tmp / "weak" / f"seed{seed}.npz", **probs)
            weak_test.append(probs["test"])
            advance(1)

    head = HeadConfig(kind=spec.student_head)  # type: ignore[arg-type]
    test_ids = [r["id"] for r in splits["test"]]
    masks = {p: np.isin(test_ids, parts[p]) for p in PARTS}
    # Heads are small: more threads than one only spin (10x slower on a loaded machine).
    torch.set_num_threads(settings.torch_threads)
    with stage(f"{spec.name}: ceiling runs x{opts.weak_seeds} seeds", None):
        reference = reference_runs(
            weak_test_probs=weak_test, x_unlabel=feats["train_unlabel"],
            y_unlabel=y["train_unlabel"], x_test=feats["test"], y_test=y["test"],
            parts=masks, head=head, n_classes=len(LABELS[spec.format]),
        )
    reference["student_head"] = asdict(head)
    (key_tmp / "reference.json").write_text(json.dumps(reference, indent=1))

    manifest = {
        "name": spec.name,
        "format": spec.format,
        "description": spec.description,
        "labels": LABELS[spec.format],
        "sizes": {s: len(splits[s]) for s in SPLITS},
        "strong_model": strong,
        "strong_model_key": encoder.key if encoder else None,
        # Package, file, sha256 and licence of every piece of the strong model's weights.
        "strong_model_provenance": getattr(encoder, "provenance", []),
        "weak_teacher": {"kind": "tfidf-logistic", "trained_on": "train_label"},
        "weak_seeds": opts.weak_seeds,
        "student_head": asdict(head),
        "build_seed": opts.seed,
        "provenance": provenance,
        "notice": spec.notice,
    }
    (kit_tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))

    _replace(key_tmp, key_final)
    _replace(kit_tmp, kit_final)
    return TaskKit(kit_final), AnswerKey(key_final, spec.format)


def split_rows(rows: list[dict], sizes: Sizes, seed: int) -> dict[str, list[dict]]:
    """Shuffle whole consistency groups, then fill train_label, train_unlabel and test."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r.get("consistency_id", r["id"]), []).append(r)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    want = {"train_label": sizes.train_label, "train_unlabel": sizes.train_unlabel,
            "test": sizes.test}
    current = iter(SPLITS)
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


def _validate_rows(spec: TaskSpec, rows: list[dict]) -> None:
    need = ("id", *FIELDS[spec.format], "label")
    ids = set()
    for i, r in enumerate(rows):
        missing = [k for k in need if k not in r]
        if missing:
            raise ValueError(f"{spec.name}: row {i} lacks {missing}")
        label_index(spec.format, r["label"])
        if r["id"] in ids:
            raise ValueError(f"{spec.name}: duplicate row id {r['id']}")
        ids.add(r["id"])


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _replace(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
