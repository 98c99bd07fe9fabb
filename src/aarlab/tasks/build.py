"""Build a task: fetch sources, split, encode, write the kit and the answer key, run references.

Everything lands in temporary folders first and is moved into place at the end, so a build that
is interrupted leaves either the old task or nothing, never half of one.
"""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from aarlab.config import Settings
from aarlab.kits.formats import FIELDS, LABELS, label_index
from aarlab.kits.kit import SPLITS, TaskKit
from aarlab.tasks.answer_key import PARTS, AnswerKey
from aarlab.tasks.features import encode_cached, row_features, row_texts
from aarlab.tasks.kit_guard import check_kit_has_no_gold
from aarlab.tasks.lm_build import (
    derived_splits,
    lm_builders,
    lm_encoder,
    lm_manifest,
    lm_reference,
    source_split,
)
from aarlab.tasks.paths import answer_key_dir, is_built, kit_dir
from aarlab.tasks.registry import Sizes, TaskSpec
from aarlab.tasks.splits import ALL_SPLITS, split_parts, split_rows
from aarlab.w2s.backends.lm_models import ResolvedLM
from aarlab.w2s.backends.registry import load_encoder
from aarlab.w2s.ceiling import Member
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.lm_fit import LMFit
from aarlab.w2s.reference import reference_runs
from aarlab.w2s.weak import TfidfTeacher

# The path helpers live in aarlab.tasks.paths; re-exported for callers that build tasks.
# The split helpers live in aarlab.tasks.splits (a derived LM task draws with them too).
__all__ = ["ALL_SPLITS", "BuildOptions", "answer_key_dir", "build_task", "is_built", "kit_dir",
           "split_parts", "split_rows", "write_task"]

# Rows per feature-cache entry: a split grown by whole blocks (a larger test set drawn from the
# same shuffled order) re-encodes only its new blocks.
ENCODE_BLOCK = 7000

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
    # Extra teacher seeds kept in the answer key only: replication runs on seeds no researcher saw.
    replication_seeds: int = 3
    # Serve the task even when its gap (ceiling - weak) interval does not lie above 0.
    force: bool = False
    # Kinds of the ceiling family searched (aarlab.w2s.ceiling); tiny test tasks use logreg only.
    ceiling_kinds: tuple[str, ...] = ("logreg", "mlp")
    # Language-model tasks (aarlab.tasks.lm_tasks): the weak teacher is this LM fine-tuned on
    # train_label (None: the TF-IDF teacher); ``lm_fit`` says how every LM is fine-tuned.
    weak_model: str | None = None
    lm_fit: LMFit | None = None


def build_task(
    spec: TaskSpec, settings: Settings, opts: BuildOptions = BuildOptions(),
    stage: StageFn = _silent_stage,
) -> tuple[TaskKit, AnswerKey]:
    sizes = opts.sizes or spec.sizes
    strong = opts.strong_model or spec.strong_model
    weak_lm_name = opts.weak_model or getattr(spec, "weak_model", None)
    lms: dict[str, ResolvedLM] = {}
    if weak_lm_name:  # an LM task: both models are causal LMs, located (or installed) first
        from aarlab.w2s.backends.lm_models import resolve_lm

        with stage(f"{spec.name}: locate {weak_lm_name} and {strong}", None):
            lms = {"weak": resolve_lm(weak_lm_name, settings.sources_dir),
                   "strong": resolve_lm(strong, settings.sources_dir)}
    # A task derived from another (an LM task) keeps its source's rows and test split.
    src = source_split(spec.source, settings) if getattr(spec, "source", "") else None
    with stage(f"{spec.name}: fetch and shape data", None):
        rows, provenance = spec.load(settings.sources_dir, src.build_seed if src else opts.seed)
    _validate_rows(spec, rows)
    if src is not None:
        splits, parts = derived_splits(rows, src, sizes, opts.seed)
    else:
        sizes = sizes.scaled(len(rows))
        splits = split_rows(rows, sizes, opts.seed)
        parts = split_parts(splits["test"], opts.seed)

    kit_final, key_final = kit_dir(settings, spec.name), answer_key_dir(settings, spec.name)
    kit_tmp, key_tmp = _fresh(kit_final.with_name("kit.partial")), _fresh(
        key_final.with_name(key_final.name + ".partial"))

    encoder = None
    feats: dict[str, np.ndarray] = {}
    for split in ALL_SPLITS:
        rows_ = splits[split]
        n_texts = len(row_texts(spec.format, rows_))
        with stage(f"{spec.name}: encode {split} with {strong}", n_texts) as advance:
            if encoder is None:
                encoder = (lm_encoder(lms["strong"]) if lms
                           else load_encoder(strong, settings.sources_dir))
            blocks = []
            for i in range(0, max(len(rows_), 1), ENCODE_BLOCK):
                texts = row_texts(spec.format, rows_[i:i + ENCODE_BLOCK])
                text_feats, _ = encode_cached(encoder, texts, settings.cache_dir, advance)
                blocks.append(row_features(spec.format, text_feats))
        feats[split] = np.concatenate(blocks)

    head = HeadConfig(kind=spec.student_head)  # type: ignore[arg-type]
    if lms and encoder is not None:  # drop the encoder's GBs before the LoRA fits load the LM
        encoder = SimpleNamespace(key=encoder.key, provenance=encoder.provenance)
        gc.collect()
    if lms:  # the features folder takes a plain name, never a path of this machine
        strong = lms["strong"].key.split("@")[0].replace("/", "--")
    manifest = {
        "name": spec.name,
        "format": spec.format,
        "description": spec.description,
        "labels": LABELS[spec.format],
        "strong_model": strong,
        "strong_model_key": encoder.key if encoder else None,
        # Package, file, sha256 and licence of every piece of the strong model's weights.
        "strong_model_provenance": getattr(encoder, "provenance", []),
        "weak_teacher": {"kind": "tfidf-logistic", "trained_on": "train_label"},
        "weak_seeds": opts.weak_seeds,
        "student_head": asdict(head),
        "build_seed": opts.seed,
        **({"source_split": src.record()} if src else {}),
        "provenance": provenance,
        "notice": spec.notice,
    }
    lm_kw: dict = {}
    if lms:
        fit = opts.lm_fit or LMFit()
        weak_seeds = getattr(spec, "weak_seeds", opts.weak_seeds)
        opts = replace(opts, weak_seeds=weak_seeds,
                       replication_seeds=getattr(spec, "replication_seeds", 0))
        manifest.update(lm_manifest(spec, lms, fit))
        manifest["weak_seeds"] = weak_seeds
        lm_kw = lm_builders(lms, fit, spec.format, splits, groups=_groups(splits["train_unlabel"]),
                            cv_seed=opts.seed, stage=stage, label=spec.name)
    # Heads are small: more threads than one only spin (10x slower on a loaded machine).
    torch.set_num_threads(settings.torch_threads)
    write_task(kit_tmp, key_tmp, spec.format, splits, feats, parts, manifest,
               weak_seeds=opts.weak_seeds, replication_seeds=opts.replication_seeds,
               force=opts.force, cv_seed=opts.seed, ceiling_kinds=opts.ceiling_kinds,
               stage=stage, label=spec.name, **lm_kw)
    _replace(key_tmp, key_final)
    _replace(kit_tmp, kit_final)
    return TaskKit(kit_final), AnswerKey(key_final, spec.format)


def write_task(
    kit_out: Path, key_out: Path, fmt: str, splits: dict[str, list[dict]],
    feats: dict[str, np.ndarray], parts: dict[str, list[str]], manifest: dict, *,
    weak_seeds: int, replication_seeds: int = 0, force: bool = False, cv_seed: int = 0,
    ceiling_member: Member | None = None, ceiling_kinds: tuple[str, ...] = ("logreg", "mlp"),
    stage: StageFn = _silent_stage, label: str = "",
    teacher_fn: Callable[[int], dict[str, np.ndarray]] | None = None,
    ceiling_fn: Callable[[list[int]], tuple[dict, np.ndarray]] | None = None,
) -> dict:
    """Write a kit and its answer key from labelled splits and their features; return reference.

    The weak teacher trains on gold ``train_label``; the kit gets only the teacher's outputs on
    ``train_unlabel`` and ``test``, those rows without labels, and their features. Every gold
    label (``train_label``'s rows and features included) goes to the answer key, with the
    reference runs and the gap. The kit guard checks the kit last; a leak raises before anything
    is moved into place. Shared by the builder and the re-draw.
    """
    strong = manifest["strong_model"]
    head = HeadConfig(**manifest["student_head"])
    n_classes = len(LABELS[fmt])
    y = {s: np.array([label_index(fmt, r["label"]) for r in splits[s]]) for s in ALL_SPLITS}

    for split in SPLITS:
        _write_jsonl(kit_out / f"{split}.jsonl",
                     [{k: v for k, v in r.items() if k != "label"} for r in splits[split]])
        _save(kit_out / "features" / strong / f"{split}.npy", feats[split])
    _write_jsonl(key_out / "train_label.jsonl", splits["train_label"])
    _save(key_out / "features" / strong / "train_label.npy", feats["train_label"])
    labels = {s: {r["id"]: r["label"] for r in splits[s]} for s in SPLITS}
    (key_out / "labels.json").write_text(json.dumps(labels))
    (key_out / "parts.json").write_text(json.dumps(parts))

    weak_test: list[np.ndarray] = []
    weak_pred: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    n_teachers = weak_seeds + replication_seeds
    with stage(f"{label}: weak teacher x{n_teachers} seeds", n_teachers) as advance:
        (kit_out / "weak").mkdir(parents=True, exist_ok=True)
        for seed in range(n_teachers):
            if teacher_fn is not None:  # an LM teacher (aarlab.w2s.lm_fit)
                probs = teacher_fn(seed)
            else:
                teacher = TfidfTeacher(fmt, seed).fit(splits["train_label"], y["train_label"])
                probs = {s: teacher.predict_proba(splits[s]) for s in SPLITS}
            if seed < weak_seeds:
                np.savez(kit_out / "weak" / f"seed{seed}.npz", **probs)
                weak_test.append(probs["test"])
                for s in SPLITS:
                    weak_pred[s].append(probs[s].argmax(1))
            else:
                # Teachers the kit never shows: fresh seeds for replication (lab-owner only).
                (key_out / "replication-weak").mkdir(exist_ok=True)
                np.savez(key_out / "replication-weak" / f"seed{seed}.npz", **probs)
            advance(1)

    test_ids = [r["id"] for r in splits["test"]]
    masks = {p: np.isin(test_ids, parts[p]) for p in PARTS}
    if ceiling_fn is not None:  # the strong LM fine-tuned on gold train_unlabel
        reference, preds = lm_reference(ceiling_fn, weak_test, y["test"], masks)
    else:
        with stage(f"{label}: ceiling family (cross-validated) x{weak_seeds} seeds", None):
            reference, preds = reference_runs(
                weak_test_probs=weak_test, x_unlabel=feats["train_unlabel"],
                y_unlabel=y["train_unlabel"], x_test=feats["test"], y_test=y["test"],
                parts=masks, head=head, n_classes=n_classes, symmetric=fmt == "pairwise",
                groups=_groups(splits["train_unlabel"]), cv_seed=cv_seed, member=ceiling_member,
                ceiling_kinds=ceiling_kinds,
            )
    reference["student_head"] = asdict(head)
    reference["gap_ok"] = bool(reference["gap"]["ok"])
    reference["forced"] = bool(force and not reference["gap_ok"])  # served only because forced
    reference["replication_seeds"] = list(range(weak_seeds, n_teachers))
    (key_out / "reference.json").write_text(json.dumps(reference, indent=1))
    np.savez(key_out / "reference_preds.npz", ids=np.array(test_ids), weak=preds["weak"],
             ceiling=preds["ceiling"], groups=_groups(splits["test"]))

    sizes = {s: len(splits[s]) for s in ALL_SPLITS}  # train_label: a count only
    (kit_out / "manifest.json").write_text(json.dumps({**manifest, "sizes": sizes}, indent=1))
    check_kit_has_no_gold(kit_out, {s: y[s] for s in SPLITS}, weak_pred)
    return reference


def _groups(rows: list[dict]) -> np.ndarray:
    """Consistency group index per row (a row without one is its own group)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(r.get("consistency_id", "\x00" + r["id"]), len(ids))
                     for r in rows], dtype=np.int64)


def _save(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(x, dtype=np.float32))


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
