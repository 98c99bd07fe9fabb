"""Reading and writing a workspace from the host without ever leaving it.

A researcher controls its workspace: it can plant a symlink to the answer key, or swap a
directory for a symlink while the lab is looking. So the lab never opens a workspace path by
name: it walks from the workspace's directory fd one component at a time with ``O_NOFOLLOW``
(the ``openat`` pattern), so no symlink anywhere on the path is followed, and it refuses FIFOs
and devices, which could block or misbehave on open.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from aarlab.sandbox.errors import SandboxLimitError, SandboxPathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def relative_parts(path: str, inside_root: str) -> tuple[str, ...]:
    """Split ``path`` (relative, or absolute under ``inside_root``) into safe components."""
    p = PurePosixPath(path)
    if p.is_absolute():
        try:
            p = p.relative_to(inside_root)
        except ValueError:
            raise SandboxPathError(f"path {path!r} is outside the workspace",
                                   hint=f"use a relative path or one under {inside_root}") from None
    parts = tuple(x for x in p.parts if x != ".")
    if ".." in parts:
        raise SandboxPathError(f"path {path!r} contains '..'", hint="paths stay in the workspace")
    if not parts:
        raise SandboxPathError(f"path {path!r} names the workspace itself, not a file")
    return parts


@contextmanager
def _open_dir(root: Path, parts: tuple[str, ...], create: bool, shown: str,
              owner: tuple[int, int] | None = None):
    """Yield an fd of directory ``root/parts...``, following no symlink; optionally create it."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            made = False
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                    made = True
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SandboxPathError(
                        f"path {shown!r} goes through a symlink or a file",
                        hint="symlinks in the workspace are not followed") from None
                raise
            os.close(fd)
            fd = nxt
            if made and owner is not None:
                os.fchown(fd, *owner)
        yield fd
    finally:
        os.close(fd)


def read_beneath(root: Path, parts: tuple[str, ...], limit: int, shown: str) -> bytes:
    with _open_dir(root, parts[:-1], create=False, shown=shown) as dfd:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise SandboxPathError(f"{shown!r} is a symlink",
                                       hint="symlinks in the workspace are not followed") from None
            if e.errno == errno.ENOENT:
                raise FileNotFoundError(errno.ENOENT, "no such file in the workspace",
                                        shown) from None
            raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", shown)
        if not stat.S_ISREG(st.st_mode):
            raise SandboxPathError(f"{shown!r} is not a regular file")
        if st.st_nlink != 1:  # a second name may be a file from outside (as in safe_files)
            raise SandboxPathError(f"{shown!r} has {st.st_nlink} hard links",
                                   hint="hard links in the workspace are not read")
        data = f.read(limit + 1)  # the file may grow after fstat; never hold more than limit
    if len(data) > limit:
        raise SandboxLimitError(f"{shown!r} is larger than {limit} bytes",
                                hint="read it in parts from inside the sandbox")
    return data


def write_beneath(root: Path, parts: tuple[str, ...], data: bytes, limit: int,
                  shown: str, owner: tuple[int, int] | None = None) -> None:
    """Write atomically; with ``owner``, new files and directories are given to that uid/gid
    (the sandbox's own, so that it can change what the lab wrote for it)."""
    if len(data) > limit:
        raise SandboxLimitError(f"contents for {shown!r} are {len(data)} bytes, over {limit}")
    name = parts[-1]
    with _open_dir(root, parts[:-1], create=True, shown=shown, owner=owner) as dfd:
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644, dir_fd=dfd)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            # rename replaces a planted symlink itself, never the file it points to
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dfd)
            raise
