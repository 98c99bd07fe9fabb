"""Guarded label source: use an aggressive label source only where held-out evidence supports
its departures from the teacher; otherwise fall back to the teacher's soft labels (weak_soft).

A label source that overrules the teacher (noisy_em's kNN prior, label propagation, a PCA
direction) is right when its evidence carries the concept and badly wrong when it does not: on
snli-pref the signed kNN graph over pair differences carries the label (noisy_em: PGR +0.56), on
tweets cosine neighbours share topic, not sentiment (noisy_em: PGR −0.74). The guard asks the
kit, per seed, which case it is in:

    folds A, B of train_unlabel (consistency groups kept whole; fixed across seeds)
    q_A  = source.labels(A only)               ω = the teacher's soft labels
    s_q  = student fit to q_A;  s_ω = student fit to ω_A
    drop = bagree(s_ω(B), ω_B) − bagree(s_q(B), ω_B)      pooled over both directions
    bagree = agreement averaged per class of ω_B (balanced; see ``heldout_drop``)
    keep the source's labels  iff  drop ≤ tolerance + z · SE(drop)

SE(drop) is the standard error of that class-weighted mean of the paired per-row differences
1[s_ω(i) = ω_i] − 1[s_q(i) = ω_i]: a source is dropped only when its loss of agreement is
beyond the tolerance by more than the noise of one seed's estimate (a fixed cut-off alone fell
back on 2 of 3 fresh teacher seeds of snli-pref, where noisy_em holds up on average).

Why this tells the two cases apart. A student trained on the teacher copies the teacher's
*systematic* errors, so its held-out agreement with the teacher is high whether or not it is
accurate; a student trained on a better label source loses agreement only on the teacher's
errors it fixes, which on held-out rows are mostly errors the teacher's noise spreads thinly
(agreement barely moves: −0.002 for noisy_em on snli-pref). A source that follows some other
structure of the strong features (topic, a bimodal direction) departs from the teacher on rows
where the teacher is right as well, and loses agreement roughly in proportion to the accuracy it
loses (≈ (2·acc_teacher − 1) per point of accuracy). The source is run on fold A alone, so its
labels for A cannot have seen B's weak labels (a kNN source would otherwise leak them through
neighbours and look better than it is). This is the cross-fitted `heldout_agree` signal of
``aarlab.w2s.signals``, used as a relative test against the teacher's own student, not as a
ranking (as a ranking it carries nothing: README, "Selecting without gold labels").

A select step whose probe of the strong features relabels or drops the teacher's labels
(``probe_relabel``, ``probe_filter``, ``confident_learning``) makes the same bet and is guarded
the same way, applied to the teacher's soft labels: `probe_relabel + consistency` (snli-pref
0.69) fell below copying the teacher on reviews and vader-tweets, and behind the guard it kept
0.69 on snli-pref and fell back to the teacher on every other task (README, issue 18).

Where the source is dropped, the spec's other steps train on the teacher's labels. Steps that
suit a source's labels (the plain loss on noisy_em's near-clean labels) need not suit the
teacher's noisy ones, so ``fallback`` may give other steps for that case: they replace every
step after this one on a seed whose source was dropped (``rest``), and leave the spec alone
where the source is kept. On snli-pref transductive noisy_em with the plain loss reaches final
PGR 0.945, with logconf 0.842; on tweets, reviews and the VADER corpora, where the guard falls
back, logconf beats the plain loss on the teacher's labels (methods README, "Transductive
specs"). With ``fallback: [logconf]`` one spec gets both.

Only kit data is read (features, weak probabilities, consistency groups): no gold label.
Idea: a "do no harm" fallback, as in safe semi-supervised learning (Li & Zhou 2015, "Towards
Making Unlabeled Data Never Hurt"), with the cross-fitted teacher agreement as the safety test.
The default tolerance was fitted leave-one-task-out in ``bench/guard_loto.py``.
Cost: the source once on all rows and once per fold, plus 2 × folds student fits per seed.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from aarlab.w2s.methods import METHODS, register
from aarlab.w2s.methods.base import (
    STAGES,
    Context,
    FoldView,
    Params,
    Step,
    TrainSet,
    fingerprint,
    weak_train_set,
)

# Label sources, and select steps in which a probe of the strong features overrules (relabels) or
# drops the teacher's labels: the same bet on the strong features' structure, which travelled as
# badly (probe_relabel alone: reviews -0.50, vader-tweets -0.54 final PGR; methods README).
SourceName = Literal["noisy_em", "label_prop", "strong_prior", "paired_direction",
                     "probe_relabel", "probe_filter", "confident_learning"]
SOURCES: tuple[str, ...] = get_args(SourceName)


class GuardParams(Params):
    source: SourceName = Field(
        "noisy_em", description="label source (or probe-based select step) to guard")
    source_params: dict[str, bool | int | float | str] = Field(
        default_factory=dict,
        description="the source's own parameters, as in its step (its defaults where unset)")
    tolerance: float = Field(0.01, ge=0.0, le=1.0,
                             description="largest held-out teacher-agreement drop kept")
    z: float = Field(2.0, ge=0.0, le=10.0,
                     description="standard errors of the drop allowed beyond the tolerance")
    folds: int = Field(2, ge=2, le=5, description="cross-fitting folds of train_unlabel")
    fallback: list[dict[str, Any]] | None = Field(
        None, description="steps (select, loss, train, post) that replace the spec's other "
        "steps where the source is dropped, e.g. [{\"method\": \"logconf\"}]; unset: the "
        "spec's own steps, on the teacher's labels")

    @field_validator("fallback")
    @classmethod
    def _steps_after_labels(cls, v: list[dict] | None) -> list[dict] | None:
        # Normalised (stage order, only the parameters set away from their defaults) so one
        # fallback has one spelling, and checked here so a mistake names this field.
        if v is None:
            return None
        out, seen = [], {}
        for i, step in enumerate(v):
            method = step.get("method")
            if set(step) - {"method", "params"} or not isinstance(method, str) or \
                    not isinstance(step.get("params", {}), dict):
                raise ValueError(f"item {i}: expected {{\"method\": name, \"params\": {{...}}}}, "
                                 f"got {step!r}")
            if method not in METHODS:
                raise ValueError(f"item {i}: unknown method {method!r}")
            step_cls = METHODS[method]
            if step_cls.stage == "labels":
                raise ValueError(f"item {i}: {method!r} is a labels step; where the source is "
                                 "dropped the labels are the teacher's")
            if step_cls.stage in ("loss", "train") and step_cls.stage in seen:
                raise ValueError(f"item {i}: {method!r} is a {step_cls.stage} step, but "
                                 f"{seen[step_cls.stage]!r} already is one")
            seen[step_cls.stage] = method
            try:
                params = step_cls.Params.model_validate(step.get("params", {}))
            except ValidationError as e:
                raise ValueError(f"item {i}: expected parameters of {method} "
                                 f"({_problems(e)})") from None
            own = {k: x for k, x in params.model_dump().items()
                   if x != step_cls.Params.model_fields[k].get_default(call_default_factory=True)}
            out.append((STAGES.index(step_cls.stage), i,
                        {"method": method, **({"params": own} if own else {})}))
        return [step for _, _, step in sorted(out)]

    @field_validator("source_params")
    @classmethod
    def _fit_the_source(cls, v: dict, info: ValidationInfo) -> dict:
        # Checked here so a spec error names this field, not a crash in the middle of a run.
        source = info.data.get("source")
        if source is None:  # the source itself was refused; that error is reported
            return v
        try:
            METHODS[source].Params.model_validate(v)
        except ValidationError as e:
            raise ValueError(f"expected parameters of {source} ({_problems(e)})") from None
        return v

    def source_step(self) -> Step:
        cls = METHODS[self.source]
        return cls(cls.Params.model_validate(self.source_params))

    def fallback_steps(self) -> list[Step]:
        out = []
        for s in self.fallback or []:
            cls = METHODS[s["method"]]
            out.append(cls(cls.Params.model_validate(s.get("params", {}))))
        return out


def _problems(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}"
                     for err in e.errors())


def fold_views(ctx: Context, n_folds: int) -> list[FoldView]:
    """One view per fold (held = the fold), with per-fold caches kept across seeds."""
    from aarlab.w2s.signals import crossfit_contexts, crossfit_folds  # signals imports methods

    folds = crossfit_folds(ctx.groups("train_unlabel"), n_folds)
    caches = ctx.shared.setdefault(("guard folds", fingerprint(ctx.x["train_unlabel"]), n_folds),
                                   [{} for _ in folds])
    return crossfit_contexts(ctx, folds, caches)


def source_labels(source: Step, ctx: Context) -> TrainSet:
    """The training set ``source`` makes on ``ctx``: a labels step's own, or a select step
    applied to the teacher's soft labels (what it gets behind the default labels step)."""
    if source.stage == "labels":
        return source.labels(ctx)
    return source.transform(ctx, weak_train_set(ctx, ctx.weak["train_unlabel"]))


def heldout_drop(ctx: Context, source: Step, n_folds: int = 2) -> dict[str, float]:
    """Held-out *balanced* agreement with the teacher of students fit to ω and to the source's
    labels: ``drop`` (ω minus source), its standard error ``se``, and both agreements.

    Balanced: each held-out row counts 1 / (K · n_c), n_c the held-out rows the teacher puts in
    class c, so every class the teacher uses weighs the same. With plain agreement a student
    that collapses to the majority class keeps nearly all of its agreement on an imbalanced task
    (vader-tweets, ~80 % positive weak labels: noisy_em predicted every row positive, its plain
    agreement fell 0.013–0.018 and the guard kept it, final PGR −0.81); its balanced agreement is
    1/K. On a balanced task (pairwise tasks by A/B symmetry) both are the same, so the tolerance
    fitted on plain agreement still applies.
    """
    diffs, classes, agree_w, agree_q = [], [], [], []
    for view in fold_views(ctx, n_folds):
        held_weak = view.weak["test"].argmax(1)
        hit = {}
        for name, ts in (("w", weak_train_set(view, view.weak["train_unlabel"])),
                         ("q", source_labels(source, view))):
            hit[name] = view.fit(ts).predict_proba(view.x["test"]).argmax(1) == held_weak
        diffs.append(hit["w"].astype(float) - hit["q"])
        classes.append(held_weak)
        agree_w.append(hit["w"])
        agree_q.append(hit["q"])
    d, c = np.concatenate(diffs), np.concatenate(classes)
    present, counts = np.unique(c, return_counts=True)
    weight = {k: 1.0 / (len(present) * n) for k, n in zip(present, counts, strict=True)}
    w = np.array([weight[k] for k in c])
    drop = float(np.sum(w * d))
    # Var of a sum of per-class means: sum_c (1/K)^2 var_c(d) / n_c.
    var = sum(np.var(d[c == k], ddof=1) / n if n > 1 else 0.0
              for k, n in zip(present, counts, strict=True)) / len(present) ** 2
    return {"drop": drop, "se": float(np.sqrt(var)),
            "agree_teacher": float(np.sum(w * np.concatenate(agree_w))),
            "agree_source": float(np.sum(w * np.concatenate(agree_q)))}


def decide(drop: float, tolerance: float, se: float = 0.0, z: float = 0.0) -> bool:
    """Keep the source's labels? Pure, so the bench applies exactly the library's rule."""
    return drop <= tolerance + z * se


@register
class Guarded(Step):
    """A label source (noisy_em), kept only if held-out teacher agreement holds; else weak_soft."""

    name = "guarded"
    stage = "labels"
    cost = "the source 1 + folds times, + 2 x folds head fits"
    Params = GuardParams

    def labels(self, ctx: Context) -> TrainSet:
        source = self.p.source_step()
        h = heldout_drop(ctx, source, self.p.folds)
        keep = decide(h["drop"], self.p.tolerance, h["se"], self.p.z)
        ts = source_labels(source, ctx) if keep else \
            weak_train_set(ctx, ctx.weak["train_unlabel"])
        ts.info["guard"] = {"source": self.p.source, "kept": bool(keep),
                            **{k: round(v, 5) for k, v in h.items()}}
        return ts

    def rest(self, ctx: Context, ts: TrainSet, steps: list[Step]) -> list[Step]:
        """The fallback's steps in place of the spec's, where the source was dropped."""
        if ts.info["guard"]["kept"] or self.p.fallback is None:
            return steps
        ts.info["guard"]["fallback"] = True
        return self.p.fallback_steps()
