"""The building blocks every method shares: a training set, a per-seed context, a step.

An experiment is a pipeline of steps, one idea each, run in stage order:

    labels  → select (zero or more) → loss → train → post

* ``labels``  makes the student's soft targets for ``train_unlabel`` (weak labels by default);
* ``select``  filters, reweights, relabels or augments the training set;
* ``loss``    gives the per-example loss ``(logits, targets, step_frac) -> loss`` (cross-entropy
  by default), in the style of openai/weak-to-strong's ``loss.py``;
* ``train``   fits the student head (one fit by default; self-training refits);
* ``post``    turns the trained head into test probabilities (plain forward pass by default).

A step only sees the kit's public data through :class:`Context`; nothing here can reach an
answer key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from aarlab.kits.kit import TaskKit
from aarlab.w2s.heads import Head, HeadConfig, LossFn, train_head, xent_loss

Stage = Literal["labels", "select", "loss", "train", "post"]
STAGES: tuple[Stage, ...] = ("labels", "select", "loss", "train", "post")


class Params(BaseModel):
    """A method's parameters. Subclasses declare fields with defaults and ranges (``Field``)."""

    # Strict: a search researcher mutating specs must get an error for "0.5" or True, not a
    # silent coercion; ints are still accepted where a float is expected.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass
class TrainSet:
    """The student's training data: features, soft targets and per-row weights (0 = dropped).

    ``weak`` keeps the weak teacher's probabilities row-aligned, so a later step can still ask
    how confident the teacher was after an earlier step relabelled or augmented the rows.
    ``group`` is each row's consistency group (or -1), also row-aligned.
    ``info`` collects label-free diagnostics that steps want reported (numbers only).
    """

    x: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    weak: np.ndarray
    group: np.ndarray
    info: dict = field(default_factory=dict)  # label-free diagnostics a step wants reported

    def __post_init__(self) -> None:
        n = len(self.x)
        for name in ("targets", "weights", "weak", "group"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TrainSet.{name} has {len(getattr(self, name))} rows, x has {n}")

    def with_(self, **changes: Any) -> TrainSet:
        return replace(self, **changes)


@dataclass
class Context:
    """What a step may see for one seed: the kit's public arrays and a cache shared by seeds."""

    kit: TaskKit
    seed: int
    head: HeadConfig
    x: dict[str, np.ndarray]  # "train_label", "train_unlabel", "test"
    weak: dict[str, np.ndarray]  # this seed's weak probabilities on "train_unlabel", "test"
    shared: dict = field(default_factory=dict)  # seed-independent results (e.g. a kNN graph)

    @property
    def format(self) -> str:
        return self.kit.format

    @property
    def n_classes(self) -> int:
        return self.kit.n_classes

    def groups(self, split: str) -> np.ndarray:
        """Consistency group index per row of ``split`` (-1 when a row has none)."""
        key = ("groups", split)
        if key not in self.shared:
            ids: dict[str, int] = {}
            self.shared[key] = np.array(
                [ids.setdefault(r["consistency_id"], len(ids)) if "consistency_id" in r else -1
                 for r in self.kit.rows(split)], dtype=np.int64)
        return self.shared[key]

    def answers(self, split: str) -> list[str]:
        """The answer a binary row proposes (``consistency_key``, else ``choice``)."""
        key = ("answers", split)
        if key not in self.shared:
            self.shared[key] = [str(r.get("consistency_key", r.get("choice", "")))
                                for r in self.kit.rows(split)]
        return self.shared[key]

    def fit(self, ts: TrainSet, loss_fn: LossFn = xent_loss, seed_offset: int = 0) -> Head:
        """Train a student head on the rows of ``ts`` that have positive weight."""
        keep = ts.weights > 0
        if not keep.any():
            raise ValueError("every training row was dropped; loosen the filter")
        w = ts.weights[keep]
        return train_head(ts.x[keep], ts.targets[keep], seed=self.seed + seed_offset,
                          cfg=self.head, loss_fn=loss_fn,
                          weights=None if np.all(w == 1) else w)


@dataclass
class FoldView(Context):
    """A context over rows ``train`` (as train_unlabel) and ``held`` (as test) of a parent
    context's train_unlabel. Groups and answers come from the parent, so views nest (the
    runner's cross-fitted signals and the ``guarded`` step both use it, and a guarded step runs
    inside a signal's view or a transductive context)."""

    parent_groups: np.ndarray | None = None
    parent_answers: list[str] | None = None
    rows: dict | None = None  # split -> row indices into the parent's train_unlabel

    def groups(self, split: str) -> np.ndarray:
        return self.parent_groups[self.rows[split]]

    def answers(self, split: str) -> list[str]:
        return [self.parent_answers[i] for i in self.rows[split]]


class Step:
    """One pipeline step. Subclasses set ``name``, ``stage``, ``cost``, ``Params`` and a hook.

    The class docstring's first line is the one-line description ``aarlab methods`` shows;
    the rest gives the formula and its source.
    """

    name: ClassVar[str]
    stage: ClassVar[Stage]
    cost: ClassVar[str] = "1 head fit"
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params | None = None):
        self.p = params if params is not None else self.Params()

    # labels stage
    def labels(self, ctx: Context) -> TrainSet:
        raise NotImplementedError

    # labels stage: the steps that follow, once the training set is made. A labels step that
    # decides per seed (guarded falling back to the teacher) may give the rest of the pipeline
    # in their place; any other step leaves them alone.
    def rest(self, ctx: Context, ts: TrainSet, steps: list[Step]) -> list[Step]:
        return steps

    # select stage (also available to steps of other stages, e.g. a post step that augments)
    def transform(self, ctx: Context, ts: TrainSet) -> TrainSet:
        return ts

    # loss stage
    def loss(self, ctx: Context) -> LossFn:
        return xent_loss

    # train stage
    def train(self, ctx: Context, ts: TrainSet, loss_fn: LossFn) -> Head:
        return ctx.fit(ts, loss_fn)

    # post stage
    def post(self, ctx: Context, head: Head, split: str, probs: np.ndarray) -> np.ndarray:
        return probs

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def weak_train_set(ctx: Context, targets: np.ndarray) -> TrainSet:
    """A training set over ``train_unlabel`` with the given targets and unit weights."""
    x = ctx.x["train_unlabel"]
    return TrainSet(x=x, targets=targets.astype(np.float32), weights=np.ones(len(x), np.float32),
                    weak=ctx.weak["train_unlabel"], group=ctx.groups("train_unlabel"))


def fingerprint(a: np.ndarray) -> str:
    """Content hash of an array, to key seed-independent caches by the data they came from."""
    return hashlib.blake2b(np.ascontiguousarray(a).view(np.uint8), digest_size=16).hexdigest()


def one_hot_argmax(p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(p, dtype=np.float32)
    out[np.arange(len(p)), p.argmax(1)] = 1.0
    return out
