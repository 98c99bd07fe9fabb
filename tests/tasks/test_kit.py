"""The kit holds no gold label of any split, and the answer key lives outside the kit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aarlab.kits.kit import SPLITS
from aarlab.tasks.answer_key import PARTS


@pytest.mark.parametrize("name", ["tweets", "snli-pref"])
def test_kit_files_hold_no_label_of_any_split(tiny_tasks, name):
    kit, key = tiny_tasks[name]
    files = [p for p in kit.dir.rglob("*") if p.is_file()]
    jsonl = {p.name for p in files if p.suffix == ".jsonl"}
    assert jsonl == {f"{s}.jsonl" for s in SPLITS} == {"train_unlabel.jsonl", "test.jsonl"}
    assert not any("train_label" in p.name for p in files)  # rows, features: answer key only
    gold_ids = {r["id"] for r in key.train_label_rows()}
    for path in files:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            assert rows, path
            assert not any("label" in r for r in rows), f"{path} leaks labels"
            assert gold_ids.isdisjoint(r["id"] for r in rows)
        elif path.suffix == ".json":
            text = path.read_text()
            # The manifest may name the label *set*; it must not carry per-row labels.
            assert '"labels": {' not in text.replace(" ", "")
            for test_id in kit.ids("test")[:20]:
                assert test_id not in text
        elif path.suffix == ".npz":
            with np.load(path) as z:
                assert set(z.files) == {"train_unlabel", "test"}  # teacher probabilities only
    # The manifest keeps train_label as a count only.
    assert kit.manifest["sizes"]["train_label"] == len(gold_ids) > 0
    assert not hasattr(kit, "train_labels")
    with pytest.raises(ValueError, match="split must be one of"):
        kit.rows("train_label")


def test_answer_key_holds_the_teachers_gold_rows(tiny_snli):
    kit, key = tiny_snli
    rows = key.train_label_rows()
    assert {r["label"] for r in rows} == {"A", "B"}
    assert key.train_label_features(kit.strong_model).shape[0] == len(rows)
    # Replication teachers (seeds no kit shows) live in the answer key too.
    rep = key.reference["replication_seeds"]
    assert rep and set(rep).isdisjoint(kit.seeds)
    assert all((key.dir / "replication-weak" / f"seed{k}.npz").is_file() for k in rep)


@pytest.mark.parametrize("name", ["tweets", "snli-pref"])
def test_answer_key_is_outside_the_kit_and_unreferenced(tiny_tasks, name):
    kit, key = tiny_tasks[name]
    kit_root, key_root = kit.dir.resolve(), key.dir.resolve()
    assert not key_root.is_relative_to(kit_root)
    assert not kit_root.is_relative_to(key_root)
    for path in kit.dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            text = path.read_text()
            assert str(key_root) not in text and "answer-key" not in text


def test_answer_key_covers_test_and_splits_it_in_half(tiny_tweets):
    kit, key = tiny_tweets
    ids = kit.ids("test")
    feedback, final = (set(key.parts[p]) for p in PARTS)
    assert feedback.isdisjoint(final) and feedback | final == set(ids)
    assert abs(len(feedback) - len(final)) <= 2
    labels = key.labels("test", ids)
    assert set(labels) == {0, 1}
    # Stratified: both parts have both classes in about the same share.
    fb = key.labels("test", sorted(feedback)).mean()
    fi = key.labels("test", sorted(final)).mean()
    assert abs(fb - fi) < 0.05


def test_features_and_weak_labels_align_with_rows(tiny_snli):
    kit, _ = tiny_snli
    for split in SPLITS:
        assert kit.features(split).shape[0] == len(kit.rows(split))
    for seed in kit.seeds:
        probs = kit.weak_probs("test", seed)
        assert probs.shape == (len(kit.rows("test")), 2)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_pairwise_rows_and_features_are_antisymmetric(tiny_snli):
    kit, key = tiny_snli
    rows = key.train_label_rows()
    assert {r["label"] for r in rows} == {"A", "B"}
    assert all(r["first"] != r["second"] for r in rows)
    # Features are emb(first) - emb(second): not all zero, and centred near zero overall.
    x = kit.features("train_unlabel")
    assert np.abs(x).sum(1).min() > 0


def test_references_put_ceiling_above_weak(tiny_tasks):
    for kit, key in tiny_tasks.values():
        weak, ceiling = key.reference_estimate("weak"), key.reference_estimate("ceiling")
        assert weak.seeds == ceiling.seeds == len(kit.seeds)
        assert 0.5 < weak.mean < 1 and 0.5 < ceiling.mean <= 1
        ref = key.reference
        assert ref["ceiling_member"]["member"] in ref["ceiling_member"]["members"]
        assert ref["gap"]["ci95"][0] <= ref["gap"]["mean"] <= ref["gap"]["ci95"][1]
        assert ref["gap"]["mean"] == pytest.approx(ceiling.mean - weak.mean)


def test_reference_predictions_match_reference_accuracies(tiny_tweets):
    kit, key = tiny_tweets
    ids = kit.ids("test")
    truth = key.labels("test", ids)
    for which in ("weak", "ceiling"):
        preds = key.reference_preds(which, ids)
        assert preds.shape == (len(kit.seeds), len(ids))
        np.testing.assert_allclose((preds == truth).mean(1), key.reference[which]["test"])
    # The weak reference is the kit's own teacher argmax, seed by seed.
    np.testing.assert_array_equal(key.reference_preds("weak", ids)[0],
                                  kit.weak_probs("test", 0).argmax(1))
