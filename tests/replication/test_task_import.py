"""``aarlab task import DIR``: malformed files are refused line by line; good ones register."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from aarlab.tasks.registry import TASKS, get_task
from aarlab.tasks.task_import import import_task, load_user_tasks


def _write(folder, name, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


def _rows(prefix, n, start=0):
    return [json.dumps({"id": f"{prefix}{i}", "question": f"q{i}", "choice": f"c{i}",
                        "label": i % 2 == 0}) for i in range(start, start + n)]


def test_malformed_jsonl_is_refused_with_line_numbers(tmp_path):
    d = tmp_path / "mine"
    _write(d, "train_label.jsonl", _rows("a", 3))
    _write(d, "train_unlabel.jsonl", [*_rows("b", 2), "{not json", json.dumps([1, 2])])
    _write(d, "test.jsonl", [*_rows("c", 1),
                             json.dumps({"id": "c9", "question": "q", "choice": "c",
                                         "label": "yes"}),
                             json.dumps({"id": "a0", "question": "q", "choice": "c",
                                         "label": True}),
                             json.dumps({"id": "c8", "question": "q", "label": False})])
    env = {**os.environ, "AARLAB_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "aarlab.cli", "task", "import", str(d)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    err = out.stderr
    assert "Traceback" not in err
    assert "train_unlabel.jsonl:3: not valid JSON" in err
    assert "train_unlabel.jsonl:4: expected a JSON object, got list" in err
    assert "test.jsonl:2: label: expected one of [False, True], got 'yes'" in err
    assert "test.jsonl:3: id: 'a0' appears twice" in err
    assert "test.jsonl:4: missing field(s) choice" in err
    assert not (tmp_path / "home" / "user-tasks" / "mine").exists()


def test_import_registers_a_user_task(tmp_path, settings):
    d = tmp_path / "my-task"
    _write(d, "train_label.jsonl", _rows("a", 4))
    _write(d, "train_unlabel.jsonl", _rows("b", 6))
    _write(d, "test.jsonl", _rows("c", 5))
    local = settings.model_copy(update={"home": tmp_path / "home"})
    spec = import_task(d, None, local)
    try:
        assert get_task("my-task") is spec and spec.format == "binary"
        assert (spec.sizes.train_label, spec.sizes.train_unlabel, spec.sizes.test) == (4, 6, 5)
        rows, prov = spec.load(tmp_path, 0)
        assert len(rows) == 15 and "_line" not in rows[0] and prov[0]["package"] == "user"
        TASKS.pop("my-task")
        assert [t.name for t in load_user_tasks(local)] == ["my-task"]  # found again on disk
    finally:
        TASKS.pop("my-task", None)


def test_an_imported_task_builds_a_kit_without_labels(tmp_path, settings):
    """Imported tasks follow the builder's path: every label in the answer key, none in the kit,
    the guard run, the gap recorded."""
    from aarlab.tasks.build import BuildOptions, build_task

    d = tmp_path / "imp"
    _write(d, "train_label.jsonl", _rows("a", 30))
    _write(d, "train_unlabel.jsonl", _rows("b", 60))
    _write(d, "test.jsonl", _rows("c", 40))
    local = settings.model_copy(update={"home": tmp_path / "home"})
    spec = import_task(d, None, local)
    try:
        kit, key = build_task(spec, local, BuildOptions(weak_seeds=2, ceiling_kinds=("logreg",)))
        assert sorted(p.name for p in kit.dir.glob("*.jsonl")) == ["test.jsonl",
                                                                   "train_unlabel.jsonl"]
        for p in kit.dir.glob("*.jsonl"):
            assert '"label"' not in p.read_text()
        gold_ids = {r["id"] for r in key.train_label_rows()}  # re-split by the build seed
        assert len(gold_ids) == 30 and gold_ids.isdisjoint(kit.ids("train_unlabel") +
                                                           kit.ids("test"))
        assert "ok" in key.reference["gap"] and key.reference["ceiling_member"]["member"]
    finally:
        TASKS.pop("imp", None)
