"""The kit writer's guard: a kit that carries gold, in any form, is refused, naming the file."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from aarlab.tasks.kit_guard import KitLeakError, check_kit_has_no_gold


def _gold_and_weak(kit, key):
    gold = {s: key.labels(s, kit.ids(s)) for s in ("train_unlabel", "test")}
    weak = {s: [kit.weak_probs(s, k).argmax(1) for k in kit.seeds] for s in gold}
    return gold, weak


@pytest.fixture(params=["tweets", "snli-pref"])
def kit_copy(request, tiny_tasks, tmp_path):
    kit, key = tiny_tasks[request.param]
    copy = tmp_path / "kit"
    shutil.copytree(kit.dir, copy)
    return copy, *_gold_and_weak(kit, key)


def test_a_built_kit_passes(kit_copy):
    copy, gold, weak = kit_copy
    bars = check_kit_has_no_gold(copy, gold, weak)
    assert set(bars) == {"train_unlabel", "test"} and all(0.5 < b < 1.1 for b in bars.values())


def test_a_planted_gold_array_is_refused(kit_copy):
    copy, gold, weak = kit_copy
    np.save(copy / "weak" / "extra.npy", gold["test"])
    with pytest.raises(KitLeakError, match=r"weak/extra\.npy.*gold test labels"):
        check_kit_has_no_gold(copy, gold, weak)


def test_gold_hidden_in_a_teacher_file_or_a_feature_column_is_refused(kit_copy):
    copy, gold, weak = kit_copy
    # Gold as "probabilities" in a weak-teacher file, 5 % of rows flipped to look noisy.
    y = gold["train_unlabel"].copy()
    y[: len(y) // 20] = 1 - y[: len(y) // 20]
    with np.load(copy / "weak" / "seed0.npz") as z:
        arrays = dict(z)
    arrays["train_unlabel"] = np.eye(2, dtype=np.float32)[y]
    np.savez(copy / "weak" / "seed0.npz", **arrays)
    with pytest.raises(KitLeakError, match=r"weak/seed0\.npz:train_unlabel"):
        check_kit_has_no_gold(copy, gold, weak)

    shutil.rmtree(copy / "weak")  # a clean teacher again, then a gold column in the features
    (copy / "weak").mkdir()
    feats = next(copy.glob("features/*/test.npy"))
    x = np.load(feats)
    x[:, 7] = np.where(gold["test"] == 1, 0.3, -0.3)
    np.save(feats, x)
    with pytest.raises(KitLeakError, match=r"features/.*/test\.npy.*column 7"):
        check_kit_has_no_gold(copy, gold, weak)


@pytest.mark.parametrize("field", ["label", "gold_label", "Target"])
def test_a_label_field_in_a_row_is_refused(kit_copy, field):
    copy, gold, weak = kit_copy
    path = copy / "train_unlabel.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[3][field] = "A"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(KitLeakError, match=rf"train_unlabel\.jsonl:4.*{field}"):
        check_kit_has_no_gold(copy, gold, weak)


def test_answer_key_files_and_symlinks_are_refused(kit_copy, tiny_tweets):
    copy, gold, weak = kit_copy
    _, key = tiny_tweets
    shutil.copy(key.dir / "train_label.jsonl", copy / "train_label.jsonl")
    with pytest.raises(KitLeakError, match="train_label.jsonl: named like an answer-key file"):
        check_kit_has_no_gold(copy, gold, weak)
    (copy / "train_label.jsonl").unlink()
    os.symlink(key.dir / "labels.json", copy / "notes.txt")
    with pytest.raises(KitLeakError, match="notes.txt: not a plain file"):
        check_kit_has_no_gold(copy, gold, weak)


def test_the_builder_refuses_to_write_a_leaky_kit(settings, tmp_path, monkeypatch):
    """The build calls the guard before moving the kit into place: a leak leaves no kit."""
    from aarlab.config import Settings
    from aarlab.tasks import build
    from aarlab.tasks.registry import Sizes, get_task

    real_write = build._write_jsonl

    def leaky(path, rows):  # a builder bug: test rows keep their label
        if path.name == "test.jsonl":
            rows = [{**r, "label": "A"} for r in rows]
        real_write(path, rows)

    monkeypatch.setattr(build, "_write_jsonl", leaky)
    local = Settings(home=tmp_path / "home", sources_root=settings.sources_dir)
    opts = build.BuildOptions(sizes=Sizes(40, 60, 40), weak_seeds=2, ceiling_kinds=("logreg",))
    with pytest.raises(KitLeakError, match="test.jsonl"):
        build.build_task(get_task("snli-pref"), local, opts)
    assert not build.is_built(local, "snli-pref")
    assert not build.kit_dir(local, "snli-pref").exists()
