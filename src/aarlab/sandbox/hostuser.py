"""The host uid a sandbox runs as: never root.

bubblewrap maps the researcher's uid inside (1000) to the uid that started bwrap. A lab running
as root would make every file a sandbox writes root-owned on the host (a ``chmod 4755`` there
is a setuid-root program for every local user). So a root lab drops to an unprivileged uid
between fork and exec of bwrap: one per sandbox name (a fork bomb or a full process table in one
sandbox never counts against another's per-uid limits), all in one group that alone may connect
to the lab socket. A lab that is not root needs nothing: its own uid is already unprivileged.
These ids have no passwd entry on purpose: no login, no home, nothing else owns them.
"""

from __future__ import annotations

import os
import zlib

SANDBOX_GID = 2_100_000_000
_UID_BASE = SANDBOX_GID + 1
_UID_SPAN = 1_000_000


def privileged() -> bool:
    """Whether this process is root, and so must not run a sandbox as itself."""
    return os.geteuid() == 0


def sandbox_ids(name: str) -> tuple[int, int] | None:
    """(uid, gid) the sandbox ``name`` runs as on the host, or None: as this process's user."""
    if not privileged():
        return None
    return _UID_BASE + zlib.crc32(name.encode()) % _UID_SPAN, SANDBOX_GID


def is_sandbox_uid(uid: int) -> bool:
    return _UID_BASE <= uid < _UID_BASE + _UID_SPAN
