"""User tasks from a user's own jsonl files, registered so ``get_task`` finds them.

``aarlab task import DIR`` checks ``train_label.jsonl``, ``train_unlabel.jsonl`` and
``test.jsonl`` (kit row formats, every row with its gold ``label``), and copies the rows to
``AARLAB_HOME/user-tasks/<name>/rows.jsonl`` with a small ``task.json``. On import this module
registers every task found there; the build then splits, encodes and references them like any
other task (the user's own split sizes are kept, the rows re-split by the build seed): no label
reaches the kit, and a task whose gap (ceiling - weak) is not clearly above 0 is not served.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aarlab.config import Settings, get_settings
from aarlab.errors import AarlabError
from aarlab.kits.formats import FIELDS, LABELS
from aarlab.tasks.spec import TASKS, Sizes, TaskSpec, register

# The user gives all three splits labelled; the build puts every label in the answer key and
# only train_unlabel and test, without labels, in the kit.
SPLITS = ("train_label", "train_unlabel", "test")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
MAX_ERRORS = 20


class TaskImportError(AarlabError):
    pass


def user_tasks_dir(settings: Settings) -> Path:
    return settings.home / "user-tasks"


def read_split(path: Path, errors: list[str]) -> list[dict]:
    """Rows of one jsonl file; every problem is appended to ``errors`` as ``file:line: ...``."""
    rows = []
    if not path.is_file():
        errors.append(f"{path.name}: missing (expected one JSON object per line)")
        return rows
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                errors.append(f"{path.name}:{n}: not valid JSON ({e.msg})")
                continue
            if not isinstance(row, dict):
                errors.append(f"{path.name}:{n}: expected a JSON object, got "
                              f"{type(row).__name__}")
                continue
            rows.append({**row, "_line": n})
    return rows


def detect_format(rows: list[dict]) -> str | None:
    for fmt, fields in FIELDS.items():
        if rows and all(k in rows[0] for k in fields):
            return fmt
    return None


def check_rows(fmt: str, split: str, rows: list[dict], seen: set[str],
               errors: list[str]) -> None:
    need = ("id", *FIELDS[fmt], "label")
    for r in rows:
        where = f"{split}.jsonl:{r['_line']}"
        missing = [k for k in need if k not in r]
        if missing:
            errors.append(f"{where}: missing field(s) {', '.join(missing)} "
                          f"(a {fmt} row has {', '.join(need)})")
            continue
        if not isinstance(r["id"], str) or not r["id"]:
            errors.append(f"{where}: id: expected a non-empty string, got {r['id']!r}")
        elif r["id"] in seen:
            errors.append(f"{where}: id: {r['id']!r} appears twice")
        else:
            seen.add(r["id"])
        if r["label"] not in LABELS[fmt] or type(r["label"]) is not type(LABELS[fmt][0]):
            errors.append(f"{where}: label: expected one of {LABELS[fmt]}, got {r['label']!r}")
        for k in FIELDS[fmt]:
            if not isinstance(r[k], str) or not r[k].strip():
                errors.append(f"{where}: {k}: expected a non-empty string")


def import_task(src: Path, name: str | None, settings: Settings | None = None,
                description: str | None = None) -> TaskSpec:
    """Check the three files in ``src``, store the rows as a user task, register it."""
    settings = settings or get_settings()
    src = Path(src)
    if not src.is_dir():
        raise TaskImportError(f"DIR: {src} is not a directory",
                              hint="give a folder with train_label.jsonl, train_unlabel.jsonl, "
                                   "test.jsonl")
    name = name or src.name.lower()
    if not NAME.match(name):
        raise TaskImportError(f"name: {name!r} is not a task name",
                              hint="lower-case letters, digits and '-', at most 48 characters")
    if name in TASKS and not (user_tasks_dir(settings) / name).exists():
        raise TaskImportError(f"name: {name!r} is a built-in task", hint="pick another --name")
    errors: list[str] = []
    splits = {s: read_split(src / f"{s}.jsonl", errors) for s in SPLITS}
    fmt = detect_format(splits["train_label"] or splits["test"])
    if fmt is None and not errors:
        errors.append("train_label.jsonl:1: rows match no format (pairwise: prompt, first, "
                      "second; binary: question, choice)")
    if fmt:
        seen: set[str] = set()
        for s in SPLITS:
            check_rows(fmt, s, splits[s], seen, errors)
            if not splits[s] and not any(e.startswith(f"{s}.jsonl") for e in errors):
                errors.append(f"{s}.jsonl: no rows")
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise TaskImportError("malformed task files:\n  " + "\n  ".join(errors[:MAX_ERRORS])
                              + more)
    out = user_tasks_dir(settings) / name
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "rows.jsonl", "w", encoding="utf-8") as f:
        for s in SPLITS:
            for r in splits[s]:
                f.write(json.dumps({k: v for k, v in r.items() if k != "_line"},
                                   ensure_ascii=False) + "\n")
    meta = {"name": name, "format": fmt, "sizes": {s: len(splits[s]) for s in SPLITS},
            "description": description or f"user task imported from {src.name}/"}
    (out / "task.json").write_text(json.dumps(meta, indent=1))
    return _register(out)


def _register(folder: Path) -> TaskSpec:
    meta = json.loads((folder / "task.json").read_text())
    rows_path = folder / "rows.jsonl"

    def load(_sources: Path, _seed: int) -> tuple[list[dict], list[dict]]:
        with open(rows_path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return rows, [{"package": "user", "version": "-", "file": f"{meta['name']}/rows.jsonl",
                       "member": "", "sha256": "-", "licence": "the user's own data"}]

    sz = meta["sizes"]
    return register(TaskSpec(meta["name"], meta["format"], meta["description"], load,
                             default=False, notice="user task",
                             sizes=Sizes(sz["train_label"], sz["train_unlabel"], sz["test"])))


def load_user_tasks(settings: Settings | None = None) -> list[TaskSpec]:
    root = user_tasks_dir(settings or get_settings())
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if (folder / "task.json").is_file() and (folder / "rows.jsonl").is_file():
            try:
                out.append(_register(folder))
            except (ValueError, KeyError):
                continue  # a damaged user task must not break every other command
    return out


load_user_tasks()
