"""The language-model branch of a task build: LM teacher, LM ceiling, and what the kit says.

``build_task`` calls these when a task names a weak LM (``aarlab.tasks.lm_tasks``): the kit
still carries the strong LM's frozen features (every head method works unchanged) and the
teacher's soft labels, and its manifest records both models (key, sha256, provenance) and how
they were fine-tuned, so a LoRA student (``aarlab.w2s.lm_student``) can find the strong LM.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from aarlab.kits.formats import LABELS, label_index
from aarlab.kits.kit import SPLITS
from aarlab.w2s import lm_fit
from aarlab.w2s.backends.lm_models import ResolvedLM, encoder
from aarlab.w2s.reference import gap_summary, per_seed_accuracies


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
