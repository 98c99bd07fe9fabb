"""Reading files under a root a sandbox can write, from the lab process, without leaving it.

Whatever a researcher can write is hostile input: it can make ``notebook.md`` a symlink to the
answer key or to ``/proc/self/environ`` (the lab's secrets), swap a directory for a symlink
while the lab looks, plant a FIFO that would block the lab's ``open()`` forever, or a hard
link. So the lab never opens such a path by name. ``open_inside`` walks from a directory fd of
the root one component at a time with ``O_NOFOLLOW`` (the ``openat`` pattern), looks at the
last component with ``lstat`` before opening it (never opening a FIFO or a device), checks the
fd it got is the regular file it looked at, has one link only, and still lies under the root,
and every read is capped. Every refusal is an ``UnsafePath`` naming the path and why.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from aarlab.errors import AarlabError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_HINT = "files a sandbox writes are read only as regular files, without following links"


class UnsafePath(AarlabError):
    """A path under a sandbox-writable root that the lab refuses to read."""


class FileTooLarge(UnsafePath):
    pass


def parts_of(rel: str | os.PathLike) -> tuple[str, ...]:
    """Components of a path relative to the root: no absolute path, no ``..``, no NUL."""
    text = os.fspath(rel)
    if "\0" in text:
        raise UnsafePath(f"path {text!r}: contains a NUL byte")
    p = PurePosixPath(text)
    if p.is_absolute():
        raise UnsafePath(f"path {text!r}: expected a path relative to the root", hint=_HINT)
    parts = tuple(x for x in p.parts if x != ".")
    if ".." in parts:
        raise UnsafePath(f"path {text!r}: '..' is not allowed", hint=_HINT)
    return parts


@contextmanager
def _dir_fd(root: Path, parts: tuple[str, ...], shown: str) -> Iterator[int]:
    """An fd of directory ``root/parts...``; no component (the root's last one included) may be
    a symlink."""
    try:
        fd = os.open(root, _DIR)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(f"{root}: the root is a symlink or not a directory",
                             hint=_HINT) from None
        raise
    try:
        for part in parts:
            try:
                nxt = os.open(part, _DIR, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(f"{shown!r}: goes through a symlink or a file",
                                     hint=_HINT) from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _under(fd: int, root: Path) -> bool:
    """Whether the kernel's own name for ``fd`` lies under ``root`` (True where /proc is
    missing: the walk above already kept to the root)."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True
    top = os.path.realpath(root)
    return real == top or real.startswith(top.rstrip("/") + "/")


@contextmanager
def open_inside(root: Path, rel: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file object of the regular file ``root/rel``, or ``UnsafePath``.

    Raises ``FileNotFoundError`` when there is no such entry, and ``UnsafePath`` for a symlink
    anywhere on the path, a FIFO, socket, device or directory, a file with more than one hard
    link, ``..`` or an absolute path.
    """
    root = Path(root)
    shown = os.fspath(rel)
    parts = parts_of(rel)
    if not parts:
        raise UnsafePath(f"path {shown!r}: names the root itself, not a file")
    with _dir_fd(root, parts[:-1], shown) as dfd:
        # lstat first: opening a FIFO blocks and opening a device can act on it.
        st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        _check(st, shown)
        try:
            fd = os.open(parts[-1], _FILE, dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.ELOOP:  # swapped for a symlink since the lstat
                raise UnsafePath(f"{shown!r}: is a symlink", hint=_HINT) from None
            raise
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise UnsafePath(f"{shown!r}: changed while it was being opened", hint=_HINT)
        _check(now, shown)
        if not _under(fd, root):
            raise UnsafePath(f"{shown!r}: resolves outside {root}", hint=_HINT)
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _check(st: os.stat_result, shown: str) -> None:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        raise UnsafePath(f"{shown!r}: is a symlink", hint=_HINT)
    if stat.S_ISDIR(mode):
        raise UnsafePath(f"{shown!r}: is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise UnsafePath(f"{shown!r}: is not a regular file (a FIFO, socket or device)",
                         hint=_HINT)
    if st.st_nlink != 1:
        # A hard link shares its inode with a file elsewhere: the name says nothing about it.
        raise UnsafePath(f"{shown!r}: has {st.st_nlink} hard links", hint=_HINT)


def read_inside(root: Path, rel: str | os.PathLike, max_bytes: int) -> bytes:
    """All of ``root/rel``; ``FileTooLarge`` past ``max_bytes`` (the file may grow while read:
    never more than that is held)."""
    with open_inside(root, rel) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"{os.fspath(rel)!r}: larger than {max_bytes} bytes")
    return data


def read_text_inside(root: Path, rel: str | os.PathLike, max_bytes: int) -> str:
    return read_inside(root, rel, max_bytes).decode("utf-8", errors="replace")


def tail_inside(root: Path, rel: str | os.PathLike, max_bytes: int) -> tuple[bytes, bool]:
    """The last ``max_bytes`` of ``root/rel`` and whether the file was longer."""
    with open_inside(root, rel) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - max_bytes))
        return f.read(max_bytes), size > max_bytes


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file", "dir", "symlink" or "other" (FIFO, socket, device)
    size: int


def list_inside(root: Path, rel: str | os.PathLike = ".", limit: int = 10_000) -> list[Entry]:
    """The entries of directory ``root/rel`` as they are: a symlink is listed as a symlink, never
    followed; at most ``limit`` entries, sorted by name."""
    shown = os.fspath(rel)
    with _dir_fd(Path(root), parts_of(rel), shown) as dfd:
        out = []
        with os.scandir(dfd) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                kind = ("symlink" if stat.S_ISLNK(st.st_mode) else
                        "dir" if stat.S_ISDIR(st.st_mode) else
                        "file" if stat.S_ISREG(st.st_mode) else "other")
                out.append(Entry(e.name, kind, st.st_size))
                if len(out) >= limit:
                    break
    return sorted(out, key=lambda x: x.name)
