"""Seal an answer key for an attack test: move it away and make every read under its root fail.

Tests run as root, which chmod cannot stop, so the key is renamed and file access (``open``,
``Path.read_text``, ``np.load``) is intercepted instead. The context yields the list of paths
that were tried; a test asserts it stays empty.
"""

from __future__ import annotations

import builtins
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def sealed_answer_key(key_dir: Path, monkeypatch, root: Path | None = None) -> Iterator[list[str]]:
    """``root``: what counts as the answer key (default ``key_dir``; e.g. every key's parent)."""
    root = Path(root or key_dir).resolve()
    touched: list[str] = []

    def guard(path) -> None:
        try:
            p = Path(path).resolve()
        except TypeError:
            return  # file descriptors and the like
        if p == root or root in p.parents:
            touched.append(str(p))
            raise PermissionError(f"answer key read: {p}")

    real_open, real_read_text, real_load = builtins.open, Path.read_text, np.load
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (guard(f), real_open(f, *a, **k))[1])
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (guard(self),
                                                                 real_read_text(self, *a, **k))[1])
    monkeypatch.setattr(np, "load", lambda f, *a, **k: (guard(f), real_load(f, *a, **k))[1])
    hidden = Path(key_dir).with_name(Path(key_dir).name + ".hidden")
    shutil.move(key_dir, hidden)
    try:
        yield touched
    finally:
        shutil.move(hidden, key_dir)
