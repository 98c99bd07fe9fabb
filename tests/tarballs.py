"""Tar.gz archives built in memory, for the tests that upload, extract or attack them."""

from __future__ import annotations

import io
import tarfile


def tfile(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    """A regular-file member."""
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def tspecial(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    """A member with no data: a link, a device, a fifo."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def targz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar.gz of exactly these members, in this order (hostile ones included)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def targz_files(files: dict[str, bytes | str]) -> bytes:
    """A tar.gz of regular files from ``{path: contents}`` (text is UTF-8 encoded)."""
    return targz(*(tfile(name, data.encode() if isinstance(data, str) else data)
                           for name, data in files.items()))
