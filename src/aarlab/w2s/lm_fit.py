"""Fine-tuned language models as the weak teacher and the ceiling (the original study's setup).

weak teacher  the small LM with LoRA adapters fit to gold ``train_label``, one fit per seed; its
              class probabilities on ``train_unlabel`` and ``test`` go into the kit
ceiling       the strong LM with LoRA fit to gold ``train_unlabel``: a small tuned family
              (``LM_LRS`` learning rates) chosen by ``folds``-fold cross-validation *inside*
              ``train_unlabel`` (never on test), then refit on all of it once per seed

Every fit goes through ``CausalLMClassifier`` (label-token log-probs, the same loss contract as
the heads). The family is kept small because each member costs ``folds`` LoRA fits: 2 rates x 2
folds at CPU sizes; a GPU user widens it with ``LMFit(lrs=..., folds=...)``.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedKFold

from aarlab.w2s.backends.causal_lm import CausalLMClassifier, CausalLMConfig, LoraSettings
from aarlab.w2s.heads import one_hot

LM_LRS = (1e-4, 3e-4)


@dataclass(frozen=True)
class LMFit:
    """How every LM in a build is fine-tuned (recorded in the manifest and the answer key)."""

    lrs: tuple[float, ...] = LM_LRS  # the ceiling family; the teacher uses lrs[-1]
    folds: int = 2
    epochs: int = 1
    batch_size: int = 8
    r: int = 8
    max_length: int = 256
    device: str = "auto"

    def config(self, folder: Path, lr: float, seed: int) -> CausalLMConfig:
        return CausalLMConfig(model=str(folder), lr=lr, epochs=self.epochs, seed=seed,
                              batch_size=self.batch_size, max_length=self.max_length,
                              lora=LoraSettings(r=self.r, alpha=2.0 * self.r),
                              device=self.device)  # type: ignore[arg-type]


_BASE: dict[str, tuple] = {}  # folder -> (model, tokenizer): a process loads each LM once


def classifier(folder: Path, cfg: CausalLMConfig) -> CausalLMClassifier:
    """A fresh LoRA classifier on the LM in ``folder`` (the base weights are read once per
    process and copied, so a family of fits does not re-read gigabytes from disk)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aarlab.w2s.backends.causal_lm import pick_device

    key = str(Path(folder).resolve())
    if key not in _BASE:
        dtype = torch.bfloat16 if pick_device(cfg.device).type == "cuda" else torch.float32
        _BASE.clear()  # one LM in memory at a time: teacher and student are used in turn
        _BASE[key] = (AutoModelForCausalLM.from_pretrained(key, dtype=dtype,
                                                           local_files_only=True),
                      AutoTokenizer.from_pretrained(key, local_files_only=True))
    model, tok = _BASE[key]
    gc.collect()  # an earlier fit's copy (peft modules hold reference cycles) goes first
    return CausalLMClassifier(copy.deepcopy(model), copy.deepcopy(tok), cfg)


Advance = Callable[[int], None]


def teacher_probs(folder: Path, fit: LMFit, fmt: str, train_rows: list[dict], y: np.ndarray,
                  predict: dict[str, list[dict]], seed: int, n_classes: int,
                  advance: Advance | None = None) -> dict[str, np.ndarray]:
    """The weak LM fit to gold (``train_rows``, ``y``) with this seed: probabilities per split."""
    clf = classifier(folder, fit.config(folder, fit.lrs[-1], seed))
    clf.fit(fmt, train_rows, one_hot(y, n_classes), progress=advance)
    return {s: clf.predict_proba(fmt, rows) for s, rows in predict.items()}


def ceiling(folder: Path, fit: LMFit, fmt: str, rows: list[dict], y: np.ndarray,
            test_rows: list[dict], seeds: list[int], n_classes: int, *,
            groups: np.ndarray | None = None, cv_seed: int = 0,
            advance: Advance | None = None) -> tuple[dict, np.ndarray]:
    """Choose the learning rate by CV inside (rows, y), refit per seed: (choice, (S, N) preds).

    ``choice`` has the shape of ``aarlab.w2s.ceiling.Choice.as_dict`` so reports read both.
    """
    if groups is not None and len(np.unique(groups)) >= fit.folds:
        splits = list(GroupKFold(fit.folds).split(rows, y, groups))
    else:
        splits = list(StratifiedKFold(fit.folds, shuffle=True, random_state=cv_seed)
                      .split(np.zeros(len(y)), y))
    cv: dict[str, dict] = {}
    for lr in fit.lrs:
        accs = []
        for f, (tr, va) in enumerate(splits):
            clf = classifier(folder, fit.config(folder, lr, cv_seed + f))
            clf.fit(fmt, [rows[i] for i in tr], one_hot(y[tr], n_classes), progress=advance)
            pred = clf.predict_proba(fmt, [rows[i] for i in va]).argmax(1)
            accs.append(float((pred == y[va]).mean()))
            del clf  # one copy of the LM at a time
        a = np.asarray(accs)
        cv[_name(lr)] = {"acc": float(a.mean()),
                         "se": float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0}
    best = max(fit.lrs, key=lambda lr: (cv[_name(lr)]["acc"], -fit.lrs.index(lr)))
    preds = []
    for s in seeds:
        clf = classifier(folder, fit.config(folder, best, s))
        clf.fit(fmt, rows, one_hot(y, n_classes), progress=advance)
        preds.append(clf.predict_proba(fmt, test_rows).argmax(1))
        del clf
    choice = {"member": _name(best), "kind": "lora", "value": best,
              "cv_acc": cv[_name(best)]["acc"], "folds": len(splits), "members": cv}
    return choice, np.stack(preds)


def _name(lr: float) -> str:
    return f"lora(lr={lr:g})"
