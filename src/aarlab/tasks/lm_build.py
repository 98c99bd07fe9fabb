"""The language-model branch of a task build: its split, LM teacher, LM ceiling, the manifest.

``build_task`` calls these when a task names a weak LM (``aarlab.tasks.lm_tasks``): the kit
still carries the strong LM's frozen features (every head method works unchanged) and the
teacher's soft labels, and its manifest records both models (key, sha256, provenance) and how
they were fine-tuned, so a LoRA student (``aarlab.w2s.lm_student``) can find the strong LM.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.kits.formats import LABELS, label_index
from aarlab.kits.kit import SPLITS, TaskKit
from aarlab.tasks.answer_key import PARTS, AnswerKey
from aarlab.tasks.paths import answer_key_dir, is_built, kit_dir
from aarlab.tasks.spec import TASKS, Sizes
from aarlab.tasks.splits import split_parts, split_rows
from aarlab.w2s import lm_fit
from aarlab.w2s.backends.lm_models import ResolvedLM, encoder
from aarlab.w2s.reference import gap_summary, per_seed_accuracies

DEFAULT_SEED = 0  # the builder's default build seed (``BuildOptions.seed``)


@dataclass(frozen=True)
class SourceSplit:
    """The test split of a derived task's source: its built answer key's, or (not built yet)
    the one `aarlab task build SOURCE` would draw (seed 0, its own sizes)."""

    task: str
    build_seed: int  # the source's rows are loaded with it (it fixes e.g. a pair's A/B order)
    parts: dict[str, list[str]] | None  # feedback/final ids; None: draw the source's default
    sizes: Sizes

    def record(self) -> dict:
        return {"task": self.task, "build_seed": self.build_seed,
                "from": "its answer key" if self.parts else "its default build (not built)"}


def source_split(source: str, settings: Settings) -> SourceSplit:
    if is_built(settings, source):
        kit = TaskKit(kit_dir(settings, source))
        parts = AnswerKey(answer_key_dir(settings, source), kit.format).parts
        return SourceSplit(source, int(kit.manifest.get("build_seed", 0)),
                           {p: list(parts[p]) for p in PARTS}, TASKS[source].sizes)
    return SourceSplit(source, DEFAULT_SEED, None, TASKS[source].sizes)


def derived_splits(rows: list[dict], src: SourceSplit, sizes: Sizes,
                   seed: int) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """Splits and parts of a task derived from ``src``'s rows.

    A derived task keeps its source's test split, so no row is final in one task of a lab and
    feedback (or training data) in another: its test rows are drawn from the source's test
    rows, each keeping its part (as many from each part as the source's own proportion), and
    its training splits only from rows outside the source's test set.
    """
    parts = src.parts
    if parts is None:
        drawn = split_rows(rows, src.sizes.scaled(len(rows)), src.build_seed)["test"]
        parts = split_parts(drawn, src.build_seed)
    part_of = {i: p for p in PARTS for i in parts[p]}
    have = {r["id"] for r in rows}
    lost = [i for i in part_of if i not in have]
    if lost:
        raise AarlabError(f"{src.task}: {len(lost)} of its test rows are not in its data any "
                          f"more, e.g. {lost[:3]}", hint=f"rebuild {src.task} first")
    by_part = {p: [r for r in rows if part_of.get(r["id"]) == p] for p in PARTS}
    n_test = sum(map(len, by_part.values()))
    if sizes.test > n_test:
        raise AarlabError(f"--sizes: TEST must be at most {n_test} here: a task derived from "
                          f"{src.task} tests on {src.task}'s test rows only, got {sizes.test}")
    want = {"feedback": round(sizes.test * len(by_part["feedback"]) / n_test)}
    want["final"] = sizes.test - want["feedback"]
    chosen = {r["id"] for p in PARTS
              for r in split_rows(by_part[p], Sizes(0, 0, want[p]), seed)["test"]}
    # Test rows in a shuffled order of whole groups, so the order says nothing of the parts.
    test = [r for r in split_rows(by_part["feedback"] + by_part["final"],
                                  Sizes(0, 0, n_test), seed)["test"] if r["id"] in chosen]
    rest = [r for r in rows if r["id"] not in part_of]
    if sizes.train_label + sizes.train_unlabel > len(rest):
        raise AarlabError(f"--sizes: LABEL + UNLABEL must be at most {len(rest)} here (the rows "
                          f"outside {src.task}'s test set), got "
                          f"{sizes.train_label + sizes.train_unlabel}")
    splits = split_rows(rest, Sizes(sizes.train_label, sizes.train_unlabel, 0), seed)
    splits["test"] = test
    return splits, {p: [r["id"] for r in test if part_of[r["id"]] == p] for p in PARTS}


def lm_encoder(lm: ResolvedLM):
    return encoder(lm)


def lm_manifest(spec, lms: dict[str, ResolvedLM], fit: lm_fit.LMFit) -> dict:
    """Manifest fields of an LM task: both models' records, how they were tuned, the cost."""
    return {
        "weak_teacher": {"kind": "lora-lm", "trained_on": "train_label",
                         "model": lms["weak"].record(), "lr": fit.lrs[-1]},
        "student_lm": lms["strong"].record(),
        "lm_fit": {**asdict(fit), "ceiling": (
            f"LoRA on gold train_unlabel, learning rate chosen from {list(fit.lrs)} by "
            f"{fit.folds}-fold cross-validation inside train_unlabel, refit once per seed; "
            "a small family, kept affordable on a CPU")},
        "source_task": getattr(spec, "source", None),
    }


def lm_builders(lms: dict[str, ResolvedLM], fit: lm_fit.LMFit, fmt: str,
                splits: dict[str, list[dict]], *, groups: np.ndarray, cv_seed: int,
                stage, label: str) -> dict:
    """``teacher_fn`` and ``ceiling_fn`` for ``write_task``."""
    n_classes = len(LABELS[fmt])
    y = {s: np.array([label_index(fmt, r["label"]) for r in splits[s]])
         for s in ("train_label", *SPLITS)}
    public = {s: [{k: v for k, v in r.items() if k != "label"} for r in splits[s]]
              for s in ("train_label", *SPLITS)}

    costs: dict[str, float] = {"teacher_s": 0.0}

    def teacher_fn(seed: int) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        out = lm_fit.teacher_probs(lms["weak"].path, fit, fmt, public["train_label"],
                                   y["train_label"], {s: public[s] for s in SPLITS}, seed,
                                   n_classes)
        costs["teacher_s"] += time.perf_counter() - t0
        return out

    def ceiling_fn(seeds: list[int]) -> tuple[dict, np.ndarray]:
        n_fits = len(fit.lrs) * fit.folds + len(seeds)
        t0 = time.perf_counter()
        with stage(f"{label}: LM ceiling, {n_fits} LoRA fits of {lms['strong'].name}", None):
            choice, preds = lm_fit.ceiling(lms["strong"].path, fit, fmt, public["train_unlabel"],
                                           y["train_unlabel"], public["test"], seeds, n_classes,
                                           groups=groups, cv_seed=cv_seed)
        # What each step cost on this machine (README and `task show` report it).
        choice["costs"] = {**costs, "ceiling_s": time.perf_counter() - t0}
        return choice, preds

    return {"teacher_fn": teacher_fn, "ceiling_fn": ceiling_fn}


def lm_reference(ceiling_fn, weak_test: list[np.ndarray], y_test: np.ndarray,
                 masks: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """The reference runs of ``aarlab.w2s.reference`` with the LM ceiling."""
    choice, ceiling_preds = ceiling_fn(list(range(len(weak_test))))
    preds = {"weak": np.stack([p.argmax(1) for p in weak_test]), "ceiling": ceiling_preds}
    reference: dict = per_seed_accuracies(preds, y_test, masks)
    reference["ceiling_member"] = choice
    reference["gap"] = gap_summary(y_test, preds, masks)
    return reference, preds
