"""Safe reading and extraction of workspace archives (tar.gz or zip). Every consumer uses this.

Archives come from researchers, so each one is treated as hostile until checked:

- the archive itself is at most ``max_bytes``; it holds at most ``max_files`` entries;
- every entry is a regular file or a directory: symlinks, hard links, devices, fifos, sparse
  and encrypted entries are refused;
- every name is relative, has no ``..`` component, no backslash trick, no control character,
  and no two entries land on the same path (or a file under another file);
- the bytes it unpacks to are bounded twice: by ``max_unpacked_bytes`` and by a compression
  ratio (``max_ratio`` x packed size, with a 1 MiB floor so that small text archives pass), and
  the bound is enforced on bytes actually decompressed, not on sizes the headers claim;
- zip entries whose data overlap (the non-recursive zip bomb) are refused.

Extraction never calls ``tarfile``/``zipfile`` extract helpers: it validates the whole archive
first, then writes each file itself into an empty target with ``O_EXCL | O_NOFOLLOW``.
A refused archive raises ``UnsafeArchiveError`` naming the entry and the rule it broke.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from aarlab.config import Settings
from aarlab.errors import AarlabError

_RATIO_FLOOR = 1 << 20  # below 1 MiB unpacked, any ratio is fine (a small text file zips 100x)
_CHUNK = 1 << 16
_MAX_NAME = 1024
# C0, DEL, C1 and the bidi controls: a name must read as what it is (no "run\u202Eyp.txt").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchiveError(AarlabError):
    """The archive breaks a safety rule or a limit; the message names the entry and the rule."""

    status = 422  # over HTTP: the sender's archive is refused


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = 20_000_000
    max_files: int = 2_000
    max_unpacked_bytes: int = 200_000_000
    max_ratio: float = 100.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(settings.snapshot_max_bytes, settings.snapshot_max_files,
                   settings.snapshot_max_unpacked_bytes, settings.snapshot_max_ratio)

    def unpacked_budget(self, packed: int) -> int:
        """Most bytes an archive of ``packed`` bytes may unpack to."""
        return min(self.max_unpacked_bytes, max(_RATIO_FLOOR, int(self.max_ratio * packed)))


@dataclass(frozen=True)
class Entry:
    path: str  # normalised, relative, "/"-separated
    size: int
    is_dir: bool = False
    executable: bool = False


@dataclass(frozen=True)
class ArchiveInfo:
    sha256: str
    format: str  # "tar.gz" or "zip"
    size: int
    entries: tuple[Entry, ...] = field(default_factory=tuple)

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.entries if not e.is_dir]

    @property
    def unpacked_bytes(self) -> int:
        return sum(e.size for e in self.entries)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def detect_format(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        return "tar.gz"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    raise UnsafeArchiveError("archive: not a tar.gz or zip file",
                             hint="upload `tar czf ws.tar.gz DIR` or a .zip")


def inspect_archive(data: bytes, limits: ArchiveLimits | None = None) -> ArchiveInfo:
    """Check every rule without writing anything; return the archive's id and file list."""
    limits = limits or ArchiveLimits()
    fmt = _check_size(data, limits)
    reader = _TarReader(data, limits) if fmt == "tar.gz" else _ZipReader(data, limits)
    entries = reader.entries()
    # The tar pass has read every byte; for zip, read them too so that a header that lies
    # about its size or CRC is caught before a consumer trusts the listing.
    if fmt == "zip":
        for _entry, chunks in reader.contents(entries):
            for _ in chunks:
                pass
    return ArchiveInfo(sha256_hex(data), fmt, len(data), tuple(entries))


def extract_archive(data: bytes | Path, target: Path,
                    limits: ArchiveLimits | None = None) -> ArchiveInfo:
    """Validate ``data`` fully, then write it under ``target`` (absent or an empty directory).

    Nothing is written when the archive is refused. If writing fails half way (a disk error, a
    file that appeared in ``target`` meanwhile), what was written is removed and the error kept.
    """
    limits = limits or ArchiveLimits()
    if isinstance(data, Path):
        data = _read_bounded(data, limits.max_bytes)
    info = inspect_archive(data, limits)
    target = Path(target)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UnsafeArchiveError(f"extraction target {target} is not a directory")
    if target.exists() and any(target.iterdir()):
        raise UnsafeArchiveError(f"extraction target {target} is not empty",
                                 hint="extract into a fresh directory")
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        reader = _TarReader(data, limits) if info.format == "tar.gz" else _ZipReader(data, limits)
        for entry, chunks in reader.contents(list(info.entries)):
            _write_entry(root, entry, chunks)
    except BaseException:
        _empty_dir(root)
        raise
    return info


def read_member(data: bytes, path: str, limits: ArchiveLimits | None = None,
                max_bytes: int | None = None) -> bytes:
    """One file's bytes (its first ``max_bytes`` only, when given: a page showing a prefix
    never holds a 200 MB member), for browsing a snapshot without extracting it."""
    limits = limits or ArchiveLimits()
    fmt = _check_size(data, limits)
    reader = _TarReader(data, limits) if fmt == "tar.gz" else _ZipReader(data, limits)
    entries = reader.entries()
    wanted = [e for e in entries if e.path == path and not e.is_dir]
    if not wanted:
        raise UnsafeArchiveError(f"archive has no file {path!r}")
    for _entry, chunks in reader.contents(wanted):
        out = bytearray()
        for chunk in chunks:
            out += chunk
            if max_bytes is not None and len(out) >= max_bytes:
                return bytes(out[:max_bytes])
        return bytes(out)
    raise AssertionError("unreachable")


# --- readers -------------------------------------------------------------------------------


class _Reader(Protocol):
    def entries(self) -> list[Entry]: ...

    def contents(self, wanted: list[Entry]) -> Iterator[tuple[Entry, Iterator[bytes]]]: ...


class _Budget:
    """Counts bytes actually decompressed and refuses past the archive's allowance."""

    def __init__(self, data: bytes, limits: ArchiveLimits, slack: int = 0):
        self.allowed = limits.unpacked_budget(len(data)) + slack
        self.limits, self.packed, self.used = limits, len(data), 0

    def take(self, n: int, name: str) -> None:
        self.used += n
        if self.used > self.allowed:
            raise _bomb(name, self.used, self.packed, self.limits)


def _bomb(name: str, unpacked: int, packed: int, limits: ArchiveLimits) -> UnsafeArchiveError:
    if unpacked > limits.max_unpacked_bytes:
        return UnsafeArchiveError(
            f"archive entry {name!r}: archive unpacks to more than max_unpacked_bytes="
            f"{limits.max_unpacked_bytes}", hint="leave data and checkpoints out of snapshots")
    return UnsafeArchiveError(
        f"archive entry {name!r}: compression ratio above max_ratio={limits.max_ratio:g} "
        f"({unpacked} bytes from {packed}); refusing a likely zip bomb")


class _CappedStream(io.RawIOBase):
    """A decompressed stream that stops with an error once the budget is spent."""

    def __init__(self, raw: IO[bytes], budget: _Budget):
        self.raw, self.budget, self.current = raw, budget, "<header>"

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # noqa: ANN001
        chunk = self.raw.read(len(buf))
        self.budget.take(len(chunk), self.current)
        buf[: len(chunk)] = chunk
        return len(chunk)


class _TarReader:
    def __init__(self, data: bytes, limits: ArchiveLimits):
        self.data, self.limits = data, limits

    def _members(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        # Headers, pax records and the end-of-archive padding are decompressed too.
        budget = _Budget(self.data, self.limits, slack=(self.limits.max_files + 16) * 2048)
        stream = _CappedStream(gzip.GzipFile(fileobj=io.BytesIO(self.data)), budget)
        try:
            with tarfile.open(fileobj=io.BufferedReader(stream, _CHUNK), mode="r|") as tf:
                for count, member in enumerate(tf, 1):
                    if count > self.limits.max_files:
                        raise _too_many(self.limits)
                    stream.current = member.name
                    yield tf, member
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise UnsafeArchiveError(f"archive: corrupt tar.gz ({e})") from e

    def entries(self) -> list[Entry]:
        names = _NameSet()
        out = []
        for _tf, m in self._members():
            kind = _tar_kind(m)
            if kind != "file" and kind != "dir":
                raise UnsafeArchiveError(f"archive entry {m.name!r}: {kind} entries are refused",
                                         hint="snapshots hold regular files and directories")
            entry = names.add(m.name, m.size if kind == "file" else 0, kind == "dir",
                              bool(m.mode & 0o111))
            if entry is not None:
                out.append(entry)
        return _checked_total(out, self.data, self.limits)

    def contents(self, wanted: list[Entry]) -> Iterator[tuple[Entry, Iterator[bytes]]]:
        by_path = {e.path: e for e in wanted}
        for tf, m in self._members():
            path = _normalise(m.name)
            entry = by_path.get(path) if path else None
            if entry is None or _tar_kind(m) != ("dir" if entry.is_dir else "file"):
                continue
            f = None if entry.is_dir else tf.extractfile(m)
            yield entry, _chunks(f, entry)


def _tar_kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hard link"
    if m.ischr() or m.isblk():
        return "device"
    if m.isfifo():
        return "fifo"
    if m.issparse():
        return "sparse"
    if m.isdir():
        return "dir"
    if m.isreg():
        return "file"
    return f"type {m.type!r}"


class _ZipReader:
    def __init__(self, data: bytes, limits: ArchiveLimits):
        self.data, self.limits = data, limits
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise UnsafeArchiveError(f"archive: corrupt zip ({e})") from e

    def entries(self) -> list[Entry]:
        infos = self.zf.infolist()
        if len(infos) > self.limits.max_files:
            raise _too_many(self.limits)
        names = _NameSet()
        out = []
        for info in infos:
            kind = _zip_kind(info)
            if kind not in ("file", "dir"):
                raise UnsafeArchiveError(f"archive entry {info.filename!r}: {kind} entries are "
                                         "refused", hint="snapshots hold regular files and "
                                         "directories")
            if info.flag_bits & 0x1:
                raise UnsafeArchiveError(f"archive entry {info.filename!r}: encrypted entries "
                                         "are refused")
            mode = info.external_attr >> 16
            entry = names.add(info.filename, info.file_size if kind == "file" else 0,
                              kind == "dir", bool(mode & 0o111))
            if entry is not None:
                out.append(entry)
        _check_overlap(infos)
        return _checked_total(out, self.data, self.limits)

    def contents(self, wanted: list[Entry]) -> Iterator[tuple[Entry, Iterator[bytes]]]:
        by_path = {e.path: e for e in wanted}
        budget = _Budget(self.data, self.limits)
        for info in self.zf.infolist():
            path = _normalise(info.filename)
            entry = by_path.get(path) if path else None
            if entry is None or (_zip_kind(info) == "dir") != entry.is_dir:
                continue
            if entry.is_dir:
                yield entry, iter(())
                continue
            yield entry, _zip_chunks(self.zf, info, entry, budget)


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # unix mode bits are only meaningful from unix
        if stat.S_ISLNK(mode):
            return "symlink"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            return "device"
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return "fifo"
        if stat.S_ISDIR(mode):
            return "dir"
    return "dir" if info.filename.endswith("/") else "file"


def _check_overlap(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries sharing compressed bytes: a few KB can then claim terabytes."""
    spans = sorted((i.header_offset, i.header_offset + 30 + i.compress_size, i.filename)
                   for i in infos)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise UnsafeArchiveError(f"archive entries {a!r} and {b!r} overlap; refusing a "
                                     "likely zip bomb")


def _zip_chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo, entry: Entry,
                budget: _Budget) -> Iterator[bytes]:
    try:
        with zf.open(info) as f:
            while chunk := f.read(_CHUNK):
                budget.take(len(chunk), entry.path)
                yield chunk
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as e:
        raise UnsafeArchiveError(f"archive entry {entry.path!r}: corrupt data ({e})") from e


def _chunks(f: IO[bytes] | None, entry: Entry) -> Iterator[bytes]:
    if f is None:
        return
    got = 0
    while chunk := f.read(_CHUNK):
        got += len(chunk)
        yield chunk
    if got != entry.size:
        raise UnsafeArchiveError(f"archive entry {entry.path!r}: truncated data")


# --- names ---------------------------------------------------------------------------------


def _normalise(name: str) -> str:
    """The relative posix path an entry name means, or "" for the archive root ("./")."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


class _NameSet:
    """Validates names and refuses two entries on one path or a file used as a directory."""

    def __init__(self):
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def add(self, name: str, size: int, is_dir: bool, executable: bool) -> Entry | None:
        _check_name(name)
        path = _normalise(name)
        if not path:
            return None  # "./" itself
        parents = [str(p) for p in PurePosixPath(path).parents][:-1]
        for parent in parents:
            if parent in self.files:
                raise UnsafeArchiveError(f"archive entry {name!r}: {parent!r} is a file, not a "
                                         "directory")
        if path in self.files or (not is_dir and path in self.dirs):
            raise UnsafeArchiveError(f"archive entry {name!r}: duplicate path {path!r}")
        if is_dir:
            self.dirs.add(path)
        else:
            self.files.add(path)
        self.dirs.update(parents)
        if size < 0:
            raise UnsafeArchiveError(f"archive entry {name!r}: negative size")
        return Entry(path, size, is_dir, executable and not is_dir)


def _check_name(name: str) -> None:
    if not name:
        raise UnsafeArchiveError("archive entry with an empty name")
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME:
        raise UnsafeArchiveError(f"archive entry {name[:60]!r}...: name longer than {_MAX_NAME}")
    if _CONTROL.search(name):
        raise UnsafeArchiveError(f"archive entry {name!r}: control characters in name "
                                 "(C0, C1 or bidi)")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise UnsafeArchiveError(f"archive entry {name!r}: absolute paths are refused",
                                 hint="archive paths relative to the workspace")
    if ".." in unified.split("/"):
        raise UnsafeArchiveError(f"archive entry {name!r}: '..' components are refused",
                                 hint="archive paths relative to the workspace")
    if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in unified.split("/")):
        raise UnsafeArchiveError(f"archive entry {name!r}: a path component is over 255 bytes")


# --- limits and writing --------------------------------------------------------------------


def _check_size(data: bytes, limits: ArchiveLimits) -> str:
    if len(data) > limits.max_bytes:
        raise UnsafeArchiveError(f"archive: {len(data)} bytes is over max_bytes="
                                 f"{limits.max_bytes}", hint="leave data and checkpoints out")
    return detect_format(data)


def _too_many(limits: ArchiveLimits) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"archive: more than max_files={limits.max_files} entries",
                              hint="leave caches and virtualenvs out of snapshots")


def _checked_total(entries: list[Entry], data: bytes, limits: ArchiveLimits) -> list[Entry]:
    total = sum(e.size for e in entries)
    if total > limits.unpacked_budget(len(data)):
        biggest = max(entries, key=lambda e: e.size)
        raise _bomb(biggest.path, total, len(data), limits)
    return entries


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeArchiveError(f"archive {path.name}: over max_bytes={max_bytes}")
    return data


def _write_entry(root: Path, entry: Entry, chunks: Iterator[bytes]) -> None:
    dest = root.joinpath(*entry.path.split("/"))
    if entry.is_dir:
        dest.mkdir(mode=0o755, parents=True, exist_ok=True)
        _inside(root, dest)
        return
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    _inside(root, dest.parent)  # a directory swapped for a symlink meanwhile stops here
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(dest, flags, 0o755 if entry.executable else 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            written += len(chunk)
            if written > entry.size:
                raise UnsafeArchiveError(f"archive entry {entry.path!r}: more data than its "
                                         "header declares")
            out.write(chunk)
    if written != entry.size:
        raise UnsafeArchiveError(f"archive entry {entry.path!r}: truncated data")


def _inside(root: Path, path: Path) -> None:
    real = path.resolve()
    if real != root and root not in real.parents:
        raise UnsafeArchiveError(f"archive: {path} resolves outside the extraction target")


def _empty_dir(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# ---- writing: the one packer -----------------------------------------------------------------

AddFile = Callable[[str, IO[bytes], int, int], None]


@contextmanager
def tar_writer(sink: IO[bytes], compresslevel: int = 9) -> Iterator[AddFile]:
    """Write a deterministic .tar.gz onto ``sink``; yields ``add(name, file, size, mode)``.

    Deterministic (times, owners and the gzip header zeroed; names as the caller orders them) so
    the same files give the same bytes, hence the same sha256 (snapshot ids, kit archives).
    """
    with (gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=compresslevel,
                        mtime=0) as gz,
          tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf):
        def add(name: str, f: IO[bytes], size: int, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = size, 0, mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, f)  # reads exactly ``size`` bytes; a file shrunk meanwhile raises

        yield add
