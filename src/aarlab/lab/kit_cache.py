"""One verified copy of a task's kit per node, for researchers that run away from the server.

Two ways in, never a copy of the answer key:

- ``fetch_kit``: through the server's API (``GET /v1/tasks/{task}/kit``), checked against the
  sha256 the server announces and unpacked with the project's safe extractor;
- ``copy_kit``: from a shared filesystem (an fsspec URL or a plain path to a kit directory),
  refusing anything that is, holds, or lies inside an answer key.

Both build the copy in a hidden temporary directory of ``cache_root`` and rename it into place,
so a reader sees a whole kit or none; when two processes on a node race, the loser's copy is
dropped and the winner's used. Entries are keyed by content (the archive's sha256, or the
shared kit's URL, manifest and listing), so a rebuilt kit lands in a fresh entry.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol

from aarlab.archive import ArchiveLimits, extract_archive
from aarlab.config import Settings, get_settings
from aarlab.errors import AarlabError
from aarlab.tasks.kit_archive import ANSWER_KEY_FILES, check_task_name

# Kits are tens of MB and a few hundred files; these bound a hostile or broken transfer, and
# the ratio cap still stops a compression bomb.
KIT_LIMITS = ArchiveLimits(max_bytes=512 << 20, max_files=5_000, max_unpacked_bytes=2 << 30,
                           max_ratio=100.0)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class KitClient(Protocol):
    """What ``fetch_kit`` needs of a ``LabClient``."""

    def kit_digest(self, task: str) -> dict: ...

    def download_kit(self, task: str, dest: Path) -> str: ...


def fetch_kit(client: KitClient, task: str, cache_root: Path) -> Path:
    """The kit directory of ``task`` on this node, downloaded and verified if not cached yet."""
    check_task_name(task)  # the name becomes a directory name below
    info = client.kit_digest(task)
    sha = info.get("sha256") if isinstance(info, dict) else None
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise AarlabError(f"kit {task!r}: the server's digest is not a sha256: {sha!r}")
    cache_root = Path(cache_root)
    final = cache_root / f"{task}-{sha[:16]}"
    if (final / "kit" / "manifest.json").is_file():
        return final / "kit"
    cache_root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_root, prefix=f".{task}-", suffix=".tar.gz")
    os.close(fd)
    staging: Path | None = None
    try:
        client.download_kit(task, Path(tmp))
        # Hash the very bytes that get extracted: nothing can change between check and use.
        data = _read_capped(Path(tmp), KIT_LIMITS.max_bytes, task)
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise AarlabError(f"kit {task!r}: downloaded archive has sha256 {got}, the server "
                              f"announced {sha}; refusing it",
                              hint="retry; the kit may have been rebuilt during the download")
        staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{task}-"))
        extract_archive(data, staging / "kit", KIT_LIMITS)
        if not (staging / "kit" / "manifest.json").is_file():
            raise AarlabError(f"kit {task!r}: the server's archive has no manifest.json",
                              hint="rebuild the task on the server")
        return _install(staging, final)
    finally:
        Path(tmp).unlink(missing_ok=True)
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def copy_kit(url: str, cache_root: Path, settings: Settings | None = None) -> Path:
    """Copy the kit directory at ``url`` (fsspec URL or plain path) into ``cache_root``.

    Refuses a directory without manifest.json, one holding answer-key files or symlinks, and a
    local path inside (or containing) ``settings.answer_keys_dir``.
    """
    import fsspec  # only the shared-filesystem path needs it

    settings = settings or get_settings()
    fs, root = fsspec.core.url_to_fs(str(url))
    root = root.rstrip("/") or "/"
    if _is_local(fs):
        _check_not_answer_keys(url, Path(root), settings)
    manifest = f"{root}/manifest.json"
    if not fs.isfile(manifest):
        raise AarlabError(f"kit {url}: no manifest.json there", hint="point at a task's kit "
                          "directory, e.g. HOME/tasks/<task>/kit")
    files = _listing(fs, root, url)
    h = hashlib.sha256(f"{url}\0".encode())
    with fs.open(manifest, "rb") as f:
        h.update(f.read(KIT_LIMITS.max_bytes))
    for rel, size in files:
        h.update(f"\0{rel}\0{size}".encode())
    cache_root = Path(cache_root)
    final = cache_root / f"shared-{h.hexdigest()[:16]}"
    if (final / "kit" / "manifest.json").is_file():
        return final / "kit"
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=".shared-"))
    try:
        for rel, size in files:
            _copy_file(fs, f"{root}/{rel}", staging / "kit" / rel, size, url)
        return _install(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------------


def _install(staging: Path, final: Path) -> Path:
    """Rename ``staging`` to ``final`` atomically; if another process got there first, use its."""
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the kit from other users of the node
    try:
        os.rename(staging, final)
    except OSError as e:
        if (final / "kit" / "manifest.json").is_file():
            return final / "kit"
        raise AarlabError(f"kit cache {final} exists but holds no kit",
                          hint="delete that directory and retry") from e
    return final / "kit"


def _read_capped(path: Path, limit: int, task: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise AarlabError(f"kit {task!r}: archive over {limit} bytes; refusing it")
    return data


def _is_local(fs) -> bool:  # noqa: ANN001 - an fsspec filesystem
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def _check_not_answer_keys(url: str, path: Path, settings: Settings) -> None:
    real, keys = path.resolve(), settings.answer_keys_dir.resolve()
    if real == keys or keys in real.parents or real in keys.parents:
        raise AarlabError(f"kit {url}: {real} overlaps the answer keys at {keys}; refusing to "
                          "copy it", hint="point at a task's kit directory, never the answer key")


def _listing(fs, root: str, url: str) -> list[tuple[str, int]]:  # noqa: ANN001
    """Sorted (relative name, size) of every file under ``root``, refusing what a kit never has."""
    found = fs.find(root, withdirs=True, detail=True)
    out = []
    for path, info in sorted(found.items()):
        if path.rstrip("/") == root.rstrip("/"):
            continue  # withdirs lists the root itself
        rel = path[len(root):].lstrip("/") if path.startswith(root) else None
        parts = PurePosixPath(rel).parts if rel else ()
        if not rel or any(p in ("", ".", "..") for p in parts):
            raise AarlabError(f"kit {url}: unexpected entry {path!r} in its listing")
        if info.get("islink"):
            raise AarlabError(f"kit {url}: {rel} is a symlink; refusing to copy it",
                              hint="a kit holds regular files only")
        if info.get("type") == "directory":
            continue
        if info.get("type") != "file":
            raise AarlabError(f"kit {url}: {rel} is not a regular file")
        if parts[-1] in ANSWER_KEY_FILES:
            raise AarlabError(f"kit {url}: {rel} is an answer-key file; refusing to copy it",
                              hint="point at a task's kit directory, never the answer key")
        out.append((rel, int(info.get("size") or 0)))
    if len(out) > KIT_LIMITS.max_files:
        raise AarlabError(f"kit {url}: more than {KIT_LIMITS.max_files} files")
    total = sum(size for _, size in out)
    if total > KIT_LIMITS.max_unpacked_bytes:
        raise AarlabError(f"kit {url}: {total} bytes is over {KIT_LIMITS.max_unpacked_bytes}")
    return out


def _copy_file(fs, src: str, dest: Path, size: int, url: str) -> None:  # noqa: ANN001
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with fs.open(src, "rb") as f, open(dest, "xb") as out:
        while chunk := f.read(_CHUNK):
            written += len(chunk)
            if written > size:
                break
            out.write(chunk)
    if written != size:
        raise AarlabError(f"kit {url}: {src} changed while it was copied",
                          hint="retry once the kit is no longer being rebuilt")
