"""The experiment runner: a task kit + a method spec + seeds → test predictions per seed.

It reads only the kit (features, weak labels, public rows), never an answer key; scoring is a
separate step (``aarlab.tasks.scorer.Scorer``). Deterministic for a seed: every random choice
inside takes the seed (head initialisation and batch order, folds, k-means).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import torch

from aarlab.errors import SpecError
from aarlab.tasks.kit import SPLITS, TaskKit
from aarlab.w2s.heads import HeadConfig, xent_loss
from aarlab.w2s.methods.base import Context, Step, TrainSet
from aarlab.w2s.methods.vanilla import WeakSoft
from aarlab.w2s.spec import HeadSpec, MethodSpec, parse_spec


class ExperimentResult(dict[int, np.ndarray]):
    """``{seed: predicted class indices on test}`` plus label-free diagnostics per seed."""

    def __init__(self, spec: MethodSpec):
        super().__init__()
        self.spec = spec
        self.diagnostics: dict[int, dict] = {}

    @property
    def seconds(self) -> float:
        return float(sum(d["seconds"] for d in self.diagnostics.values()))


def run_experiment(
    kit: TaskKit,
    spec: MethodSpec | dict | str,
    seeds: Iterable[int] | None = None,
    *,
    on_seed: Callable[[int], None] | None = None,
    threads: int | None = 1,
) -> ExperimentResult:
    """Run ``spec`` on ``kit`` for each seed (default: every seed the kit has weak labels for).

    ``threads``: torch intra-op threads (heads are small; extra threads mostly spin). None
    leaves torch's setting alone. ``on_seed(seed)`` is called after each seed, for progress.
    """
    spec = parse_spec(spec)
    seeds = list(kit.seeds if seeds is None else seeds)
    missing = [s for s in seeds if s not in kit.seeds]
    if missing or not seeds:
        raise SpecError(f"seeds: the kit has weak labels for seeds {kit.seeds}, got {seeds}")
    if threads:
        torch.set_num_threads(threads)
    head = spec.head.config(kit.manifest.get("student_head"))
    x = {s: kit.features(s) for s in SPLITS}
    shared: dict = {}  # seed-independent work (kNN graphs, PCA) is done once per experiment
    result = ExperimentResult(spec)
    for seed in seeds:
        t0 = time.perf_counter()
        ctx = make_context(kit, seed, head, x=x, shared=shared)
        pred, diag = _run_one(ctx, spec.build())
        diag["seconds"] = time.perf_counter() - t0
        result[seed] = pred
        result.diagnostics[seed] = diag
        if on_seed:
            on_seed(seed)
    return result


def make_context(kit: TaskKit, seed: int, head: HeadConfig | None = None, *,
                 x: dict[str, np.ndarray] | None = None, shared: dict | None = None) -> Context:
    """The per-seed view of a kit that steps work on (features, this seed's weak labels)."""
    return Context(
        kit=kit, seed=seed,
        head=head or HeadSpec().config(kit.manifest.get("student_head")),
        x=x if x is not None else {s: kit.features(s) for s in SPLITS},
        weak={s: kit.weak_probs(s, seed) for s in ("train_unlabel", "test")},
        shared=shared if shared is not None else {},
    )


def _run_one(ctx: Context, steps: list[Step]) -> tuple[np.ndarray, dict]:
    by_stage: dict[str, list[Step]] = {}
    for st in steps:
        by_stage.setdefault(st.stage, []).append(st)
    source = by_stage.get("labels", [WeakSoft()])[0]
    ts = source.labels(ctx)
    for st in steps:
        if st.stage != "labels":
            ts = st.transform(ctx, ts)
    loss_fn = by_stage["loss"][0].loss(ctx) if "loss" in by_stage else xent_loss
    if "train" in by_stage:
        model = by_stage["train"][0].train(ctx, ts, loss_fn)
    else:
        model = ctx.fit(ts, loss_fn)
    def predict(split: str) -> np.ndarray:
        probs = model.predict_proba(ctx.x[split])
        for st in by_stage.get("post", []):
            probs = st.post(ctx, model, split, probs)
        return probs.argmax(1)

    pred = predict("test")
    diag = diagnostics(ctx, ts, pred)
    # The kit's one labelled set (the weak teacher's training data) is a fair validation set
    # for the student, which never trains on it: researchers select methods with it.
    diag["train_label_acc"] = float((predict("train_label") == ctx.kit.train_labels()).mean())
    return pred, diag


def diagnostics(ctx: Context, ts: TrainSet, pred: np.ndarray) -> dict:
    """Numbers a researcher may see: nothing here depends on a gold label."""
    kept = ts.weights > 0
    return {
        "agree_weak_test": float((pred == ctx.weak["test"].argmax(1)).mean()),
        "train_rows": int(len(ts.x)),
        "kept": float(kept.mean()),
        "relabelled": float((ts.targets.argmax(1) != ts.weak.argmax(1))[kept].mean())
        if kept.any() else 0.0,
        "pred_share": (np.bincount(pred, minlength=ctx.n_classes) / len(pred)).tolist(),
        **ts.info,
    }
