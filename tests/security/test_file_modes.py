"""The lab's private files are private on the host: answer keys, the store, AARLAB_HOME.

Through the real ``aarlab`` entry point in a fresh process: a home an older version left
world-readable is locked down, and what the process writes afterwards is its own (umask 077).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path


def mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def test_the_cli_locks_down_answer_keys_store_and_home(tmp_path):
    home = tmp_path / "home"
    key = home / "answer-keys" / "tweets" / "labels.json"
    key.parent.mkdir(parents=True)
    key.write_text(json.dumps({"test": {"r1": "positive"}}))
    db = home / "aarlab.db"
    sqlite3.connect(db).close()
    for p in (home, key.parent.parent, key.parent):
        p.chmod(0o755)
    for p in (key, db):
        p.chmod(0o644)
    (home / "tasks").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AARLAB_")}
    env["AARLAB_HOME"] = str(home)
    code = ("import sys; sys.argv = ['aarlab', '--help']\n"
            "from aarlab.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"open({str(home / 'tasks' / 'new.json')!r}, 'w').write('{{}}')\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert mode(home) == 0o700
    assert mode(key.parent.parent) == mode(key.parent) == 0o700
    assert mode(key) == mode(db) == 0o600
    assert mode(home / "tasks" / "new.json") == 0o600  # umask 077 for the lab process
    assert json.loads(key.read_text()) == {"test": {"r1": "positive"}}  # contents untouched


def test_lock_down_refuses_to_follow_symlinks(tmp_path, monkeypatch):
    from aarlab.config import Settings
    from aarlab.file_modes import lock_down

    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "keep.txt"
    target.write_text("x")
    target.chmod(0o644)
    keys = tmp_path / "home" / "answer-keys"
    keys.mkdir(parents=True)
    (keys / "link").symlink_to(target)
    old = os.umask(0o022)
    try:
        lock_down(Settings(home=tmp_path / "home"))
    finally:
        os.umask(old)
    assert mode(target) == 0o644 and mode(keys) == 0o700
