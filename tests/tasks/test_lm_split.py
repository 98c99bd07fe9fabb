"""A task derived from another (``task build SRC --as NAME``) keeps its source's test split: its
test rows are source test rows in the same part, and no source test row trains it. Otherwise a
row final in one task of a lab could be feedback (or a teacher's training row) in another."""

from __future__ import annotations

import json
import random

import pytest

from aarlab.errors import AarlabError
from aarlab.tasks.answer_key import PARTS
from aarlab.tasks.build import split_parts, split_rows
from aarlab.tasks.lm_build import derived_splits, source_split
from aarlab.tasks.lm_tasks import LMTaskSpec
from aarlab.tasks.registry import Sizes, TaskSpec, get_task, register
from aarlab.tasks.spec import TASKS

SOURCE_SIZES = Sizes(40, 80, 100)
WORDS = ["apple", "stone", "river", "candle", "maple", "copper", "violet", "harbor"]


def synthetic_rows(sources, seed):
    """360 binary rows; every third question has two rows (a consistency group)."""
    rng = random.Random(7)
    rows = []
    for i in range(360):
        word = rng.choice(WORDS)
        row = {"id": f"r{i}", "question": f"Is {word} a fruit? ({i // 2})", "choice": word,
               "label": word in ("apple", "maple")}
        if i % 6 < 2:
            row["consistency_id"] = f"g{i // 6}"
        rows.append(row)
    return rows, []


@pytest.fixture
def home(settings, tmp_path):
    """Settings of an empty home; the synthetic source task registered (not built)."""
    register(TaskSpec("split-src", "binary", "synthetic source", synthetic_rows, default=False,
                      sizes=SOURCE_SIZES))
    yield settings.model_copy(update={"home": tmp_path / "home", "answer_key_root": None,
                                      "sources_root": settings.sources_dir})
    TASKS.pop("split-src", None)
    TASKS.pop("split-derived", None)


def source_parts(rows, seed=0):
    """What `task build split-src --seed SEED` draws."""
    test = split_rows(rows, SOURCE_SIZES, seed)["test"]
    return split_parts(test, seed)


def check_kept(splits, parts, src_parts, rows):
    part_of = {i: p for p in PARTS for i in src_parts[p]}
    for p in PARTS:
        assert parts[p] and all(part_of.get(i) == p for i in parts[p]), p
    assert sorted(r["id"] for r in splits["test"]) == sorted(parts["feedback"] + parts["final"])
    for s in ("train_label", "train_unlabel"):
        assert not [r["id"] for r in splits[s] if r["id"] in part_of], s
    group = {r["id"]: r.get("consistency_id", r["id"]) for r in rows}
    where: dict[str, set] = {}
    for s, members in splits.items():
        for r in members:
            where.setdefault(group[r["id"]], set()).add(s)
    assert all(len(w) == 1 for w in where.values()), "a consistency group was split"


def test_a_derived_split_keeps_the_sources_test_rows_and_parts(home):
    rows, _ = synthetic_rows(None, 0)
    src_parts = source_parts(rows)
    sizes = Sizes(100, 150, 60)
    # Premise: drawing the derived task afresh (what builds did) puts source test rows, final
    # ones included, into its training splits.
    naive = split_rows(rows, sizes, 0)
    src_test = set(src_parts["feedback"] + src_parts["final"])
    assert {r["id"] for r in naive["train_label"] + naive["train_unlabel"]} & src_test

    src = source_split("split-src", home)
    assert src.parts is None and src.build_seed == 0  # not built: its default split is drawn
    splits, parts = derived_splits(rows, src, sizes, seed=3)
    check_kept(splits, parts, src_parts, rows)
    assert len(splits["train_label"]) >= 100 and len(splits["train_unlabel"]) >= 150
    assert 60 <= len(splits["test"]) <= 62  # groups are kept whole
    assert abs(len(parts["feedback"]) - len(parts["final"])) <= 4
    # the test order is a shuffle of whole groups, not the feedback rows first
    first = [r["id"] in parts["feedback"] for r in splits["test"]]
    assert first != sorted(first, reverse=True)
    again = derived_splits(rows, src, sizes, seed=3)
    assert again == (splits, parts)


def test_a_derived_task_built_end_to_end_keeps_its_sources_split(home):
    """`build_task` on a derived spec (TF-IDF teacher here: the split does not depend on the
    teacher): the written kit and answer key hold the source's test split."""
    from aarlab.tasks.build import BuildOptions, build_task

    spec = LMTaskSpec(**{**TASKS["split-src"].__dict__, "name": "split-derived",
                         "sizes": Sizes(100, 150, 60)}, source="split-src")
    register(spec)
    kit, key = build_task(spec, home, BuildOptions(seed=3, weak_seeds=2, replication_seeds=0,
                                                   force=True, ceiling_kinds=("logreg",)))
    rows, _ = synthetic_rows(None, 0)
    src_parts = source_parts(rows)
    splits = {s: kit.rows(s) for s in ("train_unlabel", "test")}
    splits["train_label"] = key.train_label_rows()
    check_kept(splits, key.parts, src_parts, rows)
    assert kit.manifest["source_split"]["task"] == "split-src"


def test_a_built_sources_answer_key_is_the_split_kept(settings, tiny_snli):
    """A built source's own parts are the ones kept (here the tiny snli-pref build)."""
    kit, key = tiny_snli
    src = source_split("snli-pref", settings)
    assert src.parts == {p: key.parts[p] for p in PARTS}
    assert src.build_seed == kit.manifest["build_seed"]
    rows, _ = get_task("snli-pref").load(settings.sources_dir, src.build_seed)
    splits, parts = derived_splits(rows, src, Sizes(30, 60, 40), seed=5)
    check_kept(splits, parts, key.parts, rows)
    # same rows, same A/B order: a kept test row is the source's row, label and all
    gold = json.loads((key.dir / "labels.json").read_text())["test"]
    assert all(r["label"] == gold[r["id"]] for r in splits["test"])


def test_sizes_beyond_the_sources_split_are_refused_by_name(home):
    rows, _ = synthetic_rows(None, 0)
    src = source_split("split-src", home)
    with pytest.raises(AarlabError, match=r"--sizes: TEST must be at most 10\d"):
        derived_splits(rows, src, Sizes(40, 80, 200), seed=0)
    with pytest.raises(AarlabError, match=r"--sizes: LABEL \+ UNLABEL must be at most 2\d\d"):
        derived_splits(rows, src, Sizes(100, 200, 50), seed=0)
