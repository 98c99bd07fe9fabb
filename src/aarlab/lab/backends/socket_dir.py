"""Where a researcher's forwarding socket lives on a Ray node, and who cleans it up.

An actor's ``close()`` removes its directory, but an actor can die without closing: Ray kills
it (a crash, ``ray.kill``, the end of a lab) and brings it back with the same arguments. So the
directory is named after the researcher, not drawn at random: a restarted actor takes over the
one its predecessor left, and each claim also removes the directories of actors on this node
that died without coming back (their owner stamp names a process that no longer exists).

The directories sit under one per-user parent in the temporary directory (a Unix socket's path
is limited to 108 bytes, so it must stay short). ``/tmp`` is shared with every user, so the
parent is used only when it is a real directory that this user owns and nobody else can enter;
otherwise a fresh private directory is drawn, as before, and cleanup is left to ``close()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import stat
import tempfile
from pathlib import Path

_OWNER = "owner.json"


def claim_socket_dir(key: str) -> Path:
    """The socket directory of the researcher ``key`` (its token: hashed, never written)."""
    parent = _private_parent()
    if parent is None:
        return Path(tempfile.mkdtemp(prefix="aarlab-fwd-"))
    sweep_dead(parent)
    mine = parent / hashlib.sha256(key.encode()).hexdigest()[:16]
    with contextlib.suppress(FileExistsError):
        mine.mkdir(mode=0o700)
    (mine / _OWNER).write_text(json.dumps(_stamp(os.getpid())))
    return mine


def sweep_dead(parent: Path) -> list[Path]:
    """Remove the directories under ``parent`` whose owner died on this node; the removed."""
    here = _stamp(None)
    removed = []
    for child in parent.iterdir():
        if child.is_symlink() or not child.is_dir():
            continue
        try:
            owner = json.loads((child / _OWNER).read_text())
            pid = int(owner["pid"])
            same_node = owner["host"] == here["host"] and owner["pid_ns"] == here["pid_ns"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being set up right now, or not ours to judge: leave it
        if same_node and not _alive(pid):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _private_parent() -> Path | None:
    """``<tmp>/aarlab-fwd-<uid>``, or None when it is not a directory only this user can use."""
    parent = Path(tempfile.gettempdir()) / f"aarlab-fwd-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        parent.mkdir(mode=0o700)
    try:
        st = os.lstat(parent)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None  # a link, a file, another user's, or open to others: not a safe home
    return parent


def _stamp(pid: int | None) -> dict:
    """Who owns a directory: a pid means something only on its own host and pid namespace."""
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = ""
    return {"host": platform.node(), "pid_ns": pid_ns, "pid": pid}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process holds that pid now
    return True
