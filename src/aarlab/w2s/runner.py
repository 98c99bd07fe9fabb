"""The experiment runner: a task kit + a method spec + seeds → test predictions per seed.

It reads only the kit (features, weak labels, public rows), never an answer key; scoring is a
separate step (``aarlab.tasks.scorer.Scorer``). Deterministic for a seed: every random choice
inside takes the seed (head initialisation and batch order, folds, k-means).

With ``signals=True`` each seed's diagnostics also carry the label-free selection signals of
``aarlab.w2s.signals`` (cross-fitted on train_unlabel, and on test), which researchers choose by.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from aarlab.errors import SpecError
from aarlab.kits.kit import TaskKit
from aarlab.w2s import signals as sig
from aarlab.w2s.heads import HeadConfig, xent_loss
from aarlab.w2s.methods.base import Context, Step, TrainSet
from aarlab.w2s.methods.vanilla import WeakSoft
from aarlab.w2s.spec import HeadSpec, MethodSpec, parse_spec
from aarlab.w2s.transductive import joined_features, transductive_context

# The splits a student sees: the kit holds no labelled split at all.
FEATURE_SPLITS = ("train_unlabel", "test")


class ExperimentResult(dict[int, np.ndarray]):
    """``{seed: predicted class indices on test}`` plus label-free diagnostics per seed."""

    def __init__(self, spec: MethodSpec):
        super().__init__()
        self.spec = spec
        self.diagnostics: dict[int, dict] = {}

    @property
    def seconds(self) -> float:
        return float(sum(d["seconds"] for d in self.diagnostics.values()))

    @property
    def signals(self) -> dict[str, float]:
        """Each label-free signal's mean over seeds (empty unless run with ``signals=True``)."""
        per_seed = [d["signals"] for d in self.diagnostics.values() if "signals" in d]
        return sig.summary(per_seed) if per_seed else {}


def run_experiment(
    kit: TaskKit,
    spec: MethodSpec | dict | str,
    seeds: Iterable[int] | None = None,
    *,
    on_seed: Callable[[int], None] | None = None,
    threads: int | None = 1,
    signals: bool = False,
    folds: int = 2,
) -> ExperimentResult:
    """Run ``spec`` on ``kit`` for each seed (default: every seed the kit has weak labels for).

    ``threads``: torch intra-op threads (heads are small; extra threads mostly spin). None
    leaves torch's setting alone. ``on_seed(seed)`` is called after each seed, for progress.
    ``signals``: also compute the label-free signals (``diagnostics[seed]["signals"]``,
    ``result.signals``); cross-fitting over ``folds`` folds costs ``folds`` extra runs of the
    spec on (folds−1)/folds of train_unlabel per seed.
    """
    spec = parse_spec(spec)
    seeds = list(kit.seeds if seeds is None else seeds)
    missing = [s for s in seeds if s not in kit.seeds]
    if missing or not seeds:
        raise SpecError(f"seeds: the kit has weak labels for seeds {kit.seeds}, got {seeds}")
    if threads:
        torch.set_num_threads(threads)
    head = spec.head.config(kit.manifest.get("student_head"))
    x = {s: kit.features(s) for s in FEATURE_SPLITS}
    new_context, cache = _student_backend(kit, spec, x, signals, folds)
    if spec.transductive:  # the test rows join train_unlabel (aarlab.w2s.transductive)
        x, new_context = joined_features(x), transductive_context
    shared: dict = {}  # seed-independent work (kNN graphs, PCA) is done once per experiment
    fold_rows: list[np.ndarray] = []
    fold_shared: list[dict] = []
    if signals:
        fold_rows = sig.crossfit_folds(new_context(kit, seeds[0], head, x=x, shared=shared)
                                       .groups("train_unlabel"), folds)
        fold_shared = [{} for _ in fold_rows]
    result = ExperimentResult(spec)
    for seed in seeds:
        t0 = time.perf_counter()
        hit = cache.get(seed) if cache else None
        if hit is not None:  # a LoRA run already done on this kit: free
            result[seed], result.diagnostics[seed] = hit
            if on_seed:
                on_seed(seed)
            continue
        ctx = new_context(kit, seed, head, x=x, shared=shared)
        ts, predict = _fit(ctx, spec.build())
        pred = predict(ctx, "test").argmax(1)
        diag = diagnostics(ctx, ts, pred)
        if signals:
            diag["signals"] = _signals(ctx, spec, pred, predict, fold_rows, fold_shared)
        diag["seconds"] = time.perf_counter() - t0
        if cache:  # say which student ran; its held-out signals still fit heads (cheap)
            diag["student"] = spec.student.kind
        result[seed] = pred
        result.diagnostics[seed] = diag
        if cache:
            cache.put(seed, pred, diag)
        if on_seed:
            on_seed(seed)
    return result


def _student_backend(kit: TaskKit, spec: MethodSpec, x: dict[str, np.ndarray], signals: bool,
                     folds: int) -> tuple[Callable[..., Context], Any]:
    """(context maker, run cache) for the spec's student: the head (no cache: seconds), or LoRA
    on the task's strong LM (``aarlab.w2s.lm_student``), cached by spec, seed and kit sha256."""
    if spec.student.kind == "head":
        return make_context, None
    from aarlab.w2s import lm_student

    return (lm_student.context_factory(kit, spec.student, x, make_context),
            lm_student.RunCache(kit, spec.canonical(), signals, folds))


def make_context(kit: TaskKit, seed: int, head: HeadConfig | None = None, *,
                 x: dict[str, np.ndarray] | None = None, shared: dict | None = None) -> Context:
    """The per-seed view of a kit that steps work on (features, this seed's weak labels)."""
    return Context(
        kit=kit, seed=seed,
        head=head or HeadSpec().config(kit.manifest.get("student_head")),
        x=x if x is not None else {s: kit.features(s) for s in FEATURE_SPLITS},
        weak={s: kit.weak_probs(s, seed) for s in ("train_unlabel", "test")},
        shared=shared if shared is not None else {},
    )


Predict = Callable[[Context, str], np.ndarray]


def _fit(ctx: Context, steps: list[Step]) -> tuple[TrainSet, Predict]:
    """Train the student as ``steps`` say; return its training set and ``predict(ctx, split)``
    (class probabilities after the post steps, on ``ctx.x[split]``)."""
    source = next((st for st in steps if st.stage == "labels"), WeakSoft())
    ts = source.labels(ctx)
    # The labels step may swap the rest (guarded's fallback, where its source was dropped).
    steps = source.rest(ctx, ts, [st for st in steps if st.stage != "labels"])
    by_stage: dict[str, list[Step]] = {}
    for st in steps:
        by_stage.setdefault(st.stage, []).append(st)
    for st in steps:
        ts = st.transform(ctx, ts)
    loss_fn = by_stage["loss"][0].loss(ctx) if "loss" in by_stage else xent_loss
    if "train" in by_stage:
        model = by_stage["train"][0].train(ctx, ts, loss_fn)
    else:
        model = ctx.fit(ts, loss_fn)

    def predict(view: Context, split: str) -> np.ndarray:
        probs = model.predict_proba(view.x[split])
        for st in by_stage.get("post", []):
            probs = st.post(view, model, split, probs)
        return probs

    return ts, predict


def _signals(ctx: Context, spec: MethodSpec, pred: np.ndarray, predict: Predict,
             fold_rows: list[np.ndarray], fold_shared: list[dict]) -> dict:
    """The label-free signals of one seed (see ``aarlab.w2s.signals``); all from the kit."""
    weak_test, weak_tu = ctx.weak["test"], ctx.weak["train_unlabel"]
    out: dict = {
        "confident_agree": sig.confident_agreement(pred, weak_test),
        "misfit": sig.misfit(pred, weak_test),
        "balance": sig.balance(pred, weak_test, ctx.n_classes),
        "swap_consistency": None,
    }
    held = np.zeros_like(weak_tu)
    fold_test: list[np.ndarray] = []  # each fold student's classes on the real test rows
    for view in sig.crossfit_contexts(ctx, fold_rows, fold_shared):
        _, predict_held = _fit(view, spec.build())
        held[view.rows["test"]] = predict_held(view, "test")
        fold_test.append(predict_held(ctx, "test").argmax(1))
    out["crossfit_stability"] = sig.stability(fold_test)
    out["smoothness"] = sig.smoothness(pred, ctx.x["test"], ctx.n_classes,
                                       ctx.format == "pairwise", cache=ctx.shared)
    out["heldout_agree"] = sig.agreement(held.argmax(1), weak_tu)
    out["heldout_balanced_agree"] = sig.balanced_agreement(held.argmax(1), weak_tu)
    out["heldout_loglik"] = sig.soft_loglik(held, weak_tu)
    conf = sig.confident_rows(weak_tu)
    out["heldout_confident_agree"] = sig.agreement(held.argmax(1)[conf], weak_tu[conf])
    if ctx.format == "pairwise":  # the same student, on every test pair with A and B swapped
        swapped = predict(sig.with_negated_test(ctx), "test").argmax(1)
        out["swap_consistency"] = sig.swap_consistency(pred, swapped)
    return out


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
