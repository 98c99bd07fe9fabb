"""A task's kit packed as one deterministic tar.gz, for nodes that cannot read this machine's disk.

The archive is what ``GET /v1/tasks/{task}/kit`` serves and what ``aarlab.lab.kit_cache``
unpacks on a node. Its bytes depend only on the kit's file names and contents (sorted names,
mtime/uid/gid 0, mode 0644, gzip mtime 0), so its sha256 is the kit's identity: stable across
server restarts and rebuilds that change nothing.

Only regular files under ``kit_dir(settings, task)`` go in. A symlink (it could point at the
answer key), a special file, or a file named like an answer key's is refused rather than
skipped: such a kit is broken and must be rebuilt, not half-served.

Archives are cached under ``HOME/cache/kit-archives``, keyed by a fingerprint of the kit
(manifest.json bytes plus every file's name, size and mtime), so a rebuilt kit gets a fresh one.
No torch here: the server imports this.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from aarlab.archive import AddFile, tar_writer
from aarlab.atomic import write_atomic
from aarlab.config import Settings
from aarlab.errors import AarlabError, TaskNotBuiltError, UnknownTaskError
from aarlab.tasks.paths import TASK_NAME, is_built, kit_dir

# Files of an answer key (aarlab.tasks.answer_key, baselines); never part of a kit. The gold
# train_label rows and the per-seed reference predictions are among them.
ANSWER_KEY_FILES = frozenset({"labels.json", "parts.json", "reference.json", "baselines.json",
                              "train_label.jsonl", "reference_preds.npz"})

_CHUNK = 1 << 20
_lock = threading.Lock()  # one packer per process; another process racing us is harmless


@dataclass(frozen=True)
class KitArchive:
    path: Path
    sha256: str
    bytes: int


def check_task_name(task: str) -> None:
    if not isinstance(task, str) or not TASK_NAME.match(task):
        shown = task[:80] if isinstance(task, str) else task
        raise UnknownTaskError(f"task: {shown!r} is not a task name",
                               hint="task names match [a-z0-9][a-z0-9_-]{0,63}")


def kit_archive(settings: Settings, task: str) -> KitArchive:
    """The cached archive of ``task``'s kit, packed first if the kit changed since last time."""
    check_task_name(task)
    if settings.served_tasks is not None and task not in settings.served_tasks:
        raise UnknownTaskError(f"task {task!r} is not a task of this lab")
    if not is_built(settings, task):
        raise TaskNotBuiltError(f"task {task!r} is not built on this server",
                                hint=f"run `aarlab task build {task}`")
    root = kit_dir(settings, task)
    files = kit_files(settings, root)
    key = _fingerprint(root, files)
    cache = settings.cache_dir / "kit-archives"
    archive, meta = cache / f"{task}-{key}.tar.gz", cache / f"{task}-{key}.json"
    with _lock:
        found = _cached(archive, meta)
        if found is not None:
            return found
        cache.mkdir(parents=True, exist_ok=True)
        sha, size = _pack(root, files, archive)
        write_atomic(meta, json.dumps({"task": task, "sha256": sha, "bytes": size}).encode())
        _prune(cache, task, keep={archive.name, meta.name})
        return KitArchive(archive, sha, size)


def kit_files(settings: Settings, root: Path) -> list[str]:
    """Sorted "/"-separated names of the kit's files; refuses anything but regular files."""
    if root.is_symlink() or not root.is_dir():
        raise AarlabError(f"kit {root} is not a directory", hint="rebuild the task")
    keys = settings.answer_keys_dir.resolve()
    real = root.resolve()
    if real == keys or keys in real.parents or real in keys.parents:
        raise AarlabError(f"kit {root} overlaps the answer keys at {keys}",
                          hint="kits and answer keys must live apart; rebuild the task")
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                raise AarlabError(f"kit {root}: {rel} is a symlink; refusing to pack it",
                                  hint="a kit holds regular files only; rebuild the task")
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise AarlabError(f"kit {root}: {rel} is not a regular file",
                                  hint="rebuild the task")
            if name in ANSWER_KEY_FILES:
                raise AarlabError(f"kit {root}: {rel} is an answer-key file; refusing to pack it",
                                  hint="rebuild the task")
            out.append(rel)
    return sorted(out)


def _fingerprint(root: Path, files: list[str]) -> str:
    h = hashlib.sha256((root / "manifest.json").read_bytes())
    for rel in files:
        st = os.lstat(root / rel)
        h.update(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _cached(archive: Path, meta: Path) -> KitArchive | None:
    try:
        info = json.loads(meta.read_text())
        size = archive.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("bytes") != size:
        return None  # a torn or foreign cache entry: pack again
    return KitArchive(archive, str(info["sha256"]), size)


class _HashingWriter:
    """File sink that hashes and counts what passes through (gzip writes into it)."""

    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, b) -> int:
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


def _pack(root: Path, files: list[str], dest: Path) -> tuple[str, int]:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _HashingWriter(raw)
            with tar_writer(sink, compresslevel=6) as add:
                for rel in files:
                    _add(add, root, rel)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sink.h.hexdigest(), sink.n


def _add(add: AddFile, root: Path, rel: str) -> None:
    # O_NOFOLLOW: a file swapped for a symlink after the walk is refused here, not followed.
    fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise AarlabError(f"kit {root}: {rel} is not a regular file", hint="rebuild the task")
        add(rel, f, st.st_size, 0o644)


def _prune(cache: Path, task: str, keep: set[str]) -> None:
    """Drop archives of earlier builds of ``task`` (a download in flight keeps its open file)."""
    for p in cache.glob(f"{task}-*"):
        stem = p.name[len(task) + 1:].split(".")[0]
        if p.name not in keep and re.fullmatch(r"[0-9a-f]{24}", stem):
            p.unlink(missing_ok=True)
