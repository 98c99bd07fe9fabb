"""Private by default: what the lab writes is the lab's own (umask 077), and so are the answer
keys, the store and AARLAB_HOME itself, including ones an older version left world-readable.

Sandboxes are not local users: they run as uids of their own that see only what is mounted
for them (see ``aarlab.sandbox.bwrap``), which is made readable to the sandbox group alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from aarlab.config import Settings, get_settings

PRIVATE_UMASK = 0o077


def _sqlite_path(settings: Settings) -> Path | None:
    url = settings.database_url
    if url.startswith("sqlite") and "///" in url:
        db = url.split("///", 1)[1].split("?", 1)[0]
        if db and db != ":memory:":
            return Path(db)
    return None


def _chmod_tree(top: Path) -> None:
    """Dirs 0700, files 0600 (executables 0700) under ``top``, never following a symlink."""
    if not top.is_dir() or top.is_symlink():
        return
    for _, dirnames, filenames, dfd in os.fwalk(top, follow_symlinks=False):
        for name in [".", *dirnames, *filenames]:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                continue
            keep_x = stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR
            want = 0o700 if keep_x else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                os.chmod(name, want, dir_fd=dfd)


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)


def lock_down(settings: Settings | None = None) -> None:
    """Set umask 077 for this process and make the lab's private places private.

    Called when the ``aarlab`` command starts. Answer keys: every dir 0700, every file 0600.
    The SQLite store and its journal files: 0600. AARLAB_HOME: 0700 (no other local user
    reaches in; sandboxes are handed their mounts by the lab).
    """
    os.umask(PRIVATE_UMASK)
    if settings is None:
        try:
            settings = get_settings()
        except ValueError:  # a bad AARLAB_* value: the command itself reports it, by name
            return
    home = settings.home
    if home.is_dir() and not home.is_symlink():
        _chmod(home, 0o700)
    _chmod_tree(settings.answer_keys_dir)
    db = _sqlite_path(settings)
    if db is not None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            _chmod(db.with_name(db.name + suffix), 0o600)
