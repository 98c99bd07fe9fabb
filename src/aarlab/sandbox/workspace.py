"""The workspace on the host: who owns it, what its files may be, how much disk it takes.

A sandbox writes its workspace, so the lab treats every entry there as hostile: it walks the
tree from directory fds without following a symlink, and changes an entry only through an
``O_PATH`` fd of the entry it looked at. What a sandbox leaves on the host after ``scrub``:
no setuid or setgid bit, nothing writable or executable by others, no device node; the
workspace itself is mode 0700, owned by the sandbox's uid, so no other local user reaches in.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aarlab.sandbox.errors import SandboxError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Bits nothing written by a sandbox may keep on the host.
FORBIDDEN_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH | stat.S_IXOTH
MAX_DEPTH = 256


class WalkLimit(Exception):  # noqa: N818 - a reason to stop, not an error of the lab
    """The tree holds more entries, or is deeper, than the walk may look at."""


@dataclass
class Usage:
    bytes: int = 0
    files: int = 0


def _walk(root: Path, visit: Callable[[int, str, os.stat_result], None],
          max_entries: int) -> int:
    """Call ``visit(dir_fd, name, lstat)`` for each entry under ``root``; returns the count.

    Descends only into real directories (opened with O_NOFOLLOW from their parent's fd), so a
    symlink swapped in mid-walk leads nowhere. Open fds: one per level of depth.
    """
    top = os.open(root, _DIR_FLAGS)
    stack = [(top, os.scandir(top))]
    count = 0
    try:
        while stack:
            dfd, it = stack[-1]
            entry = next(it, None)
            if entry is None:
                it.close()
                os.close(dfd)
                stack.pop()
                continue
            count += 1
            if count > max_entries:
                raise WalkLimit(f"more than {max_entries} files")
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            visit(dfd, entry.name, st)
            if stat.S_ISDIR(st.st_mode):
                if len(stack) >= MAX_DEPTH:
                    raise WalkLimit(f"directories nested deeper than {MAX_DEPTH}")
                try:
                    sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dfd)
                except OSError:
                    continue  # gone, or swapped for a symlink: nothing of ours to walk
                stack.append((sub, os.scandir(sub)))
    finally:
        for dfd, it in stack:
            it.close()
            os.close(dfd)
    return count


def usage(root: Path, max_files: int) -> Usage:
    """Disk blocks and entries under ``root`` (hard links counted once; sparse files by blocks).

    Raises ``WalkLimit`` past ``max_files`` entries or ``MAX_DEPTH`` levels.
    """
    out, seen = Usage(), set()

    def visit(_dfd: int, _name: str, st: os.stat_result) -> None:
        out.files += 1  # every entry, as the walk's own limit counts them
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
        out.bytes += st.st_blocks * 512

    _walk(root, visit, max_files)
    return out


def _fix(dfd: int, name: str, st: os.stat_result, ids: tuple[int, int] | None) -> None:
    """Chown/chmod the entry ``name`` if it is still the one ``st`` describes."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or stat.S_ISLNK(now.st_mode):
            return  # swapped meanwhile: the next scrub sees the new one
        at = f"/proc/self/fd/{fd}"  # the inode itself: an O_PATH fd cannot be fchmod-ed
        if ids is not None and (now.st_uid, now.st_gid) != ids:
            os.chown(at, *ids)
        os.chmod(at, stat.S_IMODE(now.st_mode) & ~FORBIDDEN_BITS)
    finally:
        os.close(fd)


def scrub(root: Path, ids: tuple[int, int] | None, max_files: int) -> int:
    """Make everything under ``root`` harmless on the host; returns how many entries changed.

    Clears ``FORBIDDEN_BITS``, removes device nodes, and with ``ids`` gives every entry to
    that (uid, gid). Stops quietly at ``max_files`` entries: the 0700 workspace still keeps
    other users out of what is left.
    """
    changed = 0

    def visit(dfd: int, name: str, st: os.stat_result) -> None:
        nonlocal changed
        if stat.S_ISLNK(st.st_mode):  # a link's mode means nothing; its owner is fixed
            if ids is not None and (st.st_uid, st.st_gid) != ids:
                os.chown(name, *ids, dir_fd=dfd, follow_symlinks=False)
                changed += 1
            return
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            os.unlink(name, dir_fd=dfd)
            changed += 1
            return
        wrong_owner = ids is not None and (st.st_uid, st.st_gid) != ids
        if st.st_mode & FORBIDDEN_BITS or wrong_owner:
            _fix(dfd, name, st, ids)
            changed += 1

    with contextlib.suppress(WalkLimit):
        _walk(root, visit, max_files)
    return changed


def prepare(root: Path, ids: tuple[int, int] | None, max_files: int) -> None:
    """Make ``root`` a private workspace: a real directory, mode 0700, owned by ``ids``."""
    fd = os.open(root, _DIR_FLAGS)  # O_NOFOLLOW: a workspace that is a symlink is refused
    try:
        st = os.fstat(fd)
        if ids is not None and (st.st_uid, st.st_gid) != ids:
            os.fchown(fd, *ids)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    except OSError as e:
        raise SandboxError(f"workspace {root}: cannot make it private ({e.strerror})") from None
    finally:
        os.close(fd)
    scrub(root, ids, max_files)
