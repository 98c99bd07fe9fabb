"""Snapshot store: archives checked by ``aarlab.archive``, kept on disk by sha256.

A blob is written (temp file, fsync, rename) before its row commits, so a row never points at a
missing blob; a crash in between leaves an orphan blob that the next upload of the same bytes
reuses. Reads re-hash the blob, so a file changed on disk is refused rather than served.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aarlab.archive import (
    ArchiveInfo,
    ArchiveLimits,
    inspect_archive,
    read_member,
    sha256_hex,
)
from aarlab.atomic import write_atomic
from aarlab.clock import utcnow
from aarlab.forum.schemas import Author, SnapshotDetail, SnapshotFile, SnapshotOut
from aarlab.forum.service import ConflictError, ForumError, NotFoundError, own_submission
from aarlab.forum.tables import Snapshot, SnapshotHolder, SnapshotLink, holds_snapshot
from aarlab.scoring.tables import Submission
from aarlab.store.identity import Researcher


class QuotaError(ForumError):
    status = 413


class BlobStore:
    """Immutable blobs under ``root/<sha[:2]>/<sha>``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def put(self, sha: str, data: bytes) -> None:
        dest = self.path(sha)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, data)

    def open_verified(self, sha: str, chunk: int = 1 << 16) -> IO[bytes]:
        """The blob opened for reading (the caller closes it), its sha256 checked first in
        ``chunk``-sized reads: a route streams it from disk instead of holding it whole."""
        try:
            f = self.path(sha).open("rb")
        except FileNotFoundError as e:
            raise NotFoundError(f"snapshot {sha}: archive missing from the store") from e
        digest = hashlib.sha256()
        while block := f.read(chunk):
            digest.update(block)
        if digest.hexdigest() != sha:
            f.close()
            raise ForumError(f"snapshot {sha}: stored archive is corrupt")
        f.seek(0)
        return f

    def get(self, sha: str) -> bytes:
        try:
            data = self.path(sha).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"snapshot {sha}: archive missing from the store") from e
        if sha256_hex(data) != sha:
            raise ForumError(f"snapshot {sha}: stored archive is corrupt")
        return data


def upload(s: Session, blobs: BlobStore, limits: ArchiveLimits, uploader_id: int, data: bytes,
           parent_id: str | None = None, submission_id: int | None = None,
           label: str | None = None, quota_bytes: int | None = None,
           info: ArchiveInfo | None = None, sha256: str | None = None
           ) -> tuple[Snapshot, bool]:
    """Check and store an archive; returns (row, created). The same bytes twice are one row.

    ``quota_bytes``: what the uploader may store in all; new bytes past it are refused before
    any blob is written (bytes already stored cost nothing). The caller serialises uploads, so
    two at once cannot both pass the check. ``info``: ``inspect_archive(data)`` when the caller
    has it (it may inspect outside its lock); bytes already stored are not inspected again
    (their id is their sha256, and they passed when first stored); ``sha256``: their digest,
    when the caller has it (nothing here then scales with the archive's size but a new one).
    """
    if parent_id is not None and s.get(Snapshot, parent_id) is None:
        raise ForumError(f"parent: no snapshot {parent_id}")
    sub = own_submission(s, uploader_id, submission_id) if submission_id is not None else None
    digest = info.sha256 if info is not None else sha256 or sha256_hex(data)
    snap = s.get(Snapshot, digest)
    created = snap is None
    if created:
        if info is None:
            info = inspect_archive(data, limits)  # UnsafeArchiveError names the entry
        if quota_bytes is not None:
            _check_quota(s, uploader_id, info.size, quota_bytes)
        blobs.put(info.sha256, data)
        snap = Snapshot(id=info.sha256, uploader_id=uploader_id, parent_id=parent_id,
                        label=label, format=info.format, size=info.size,
                        n_files=len(info.files), unpacked_bytes=info.unpacked_bytes,
                        files=[[e.path, e.size] for e in info.files], created_at=utcnow())
        s.add(snap)
        try:
            s.flush()
        except IntegrityError as e:  # the same bytes committed by a concurrent upload
            raise ConflictError(f"snapshot {info.sha256} was uploaded meanwhile",
                                hint="retry; the upload will find it") from e
    elif not holds_snapshot(s, uploader_id, snap.id):
        s.add(SnapshotHolder(snapshot_id=snap.id, researcher_id=uploader_id))
        s.flush()
    if sub is not None:
        link(s, uploader_id, snap.id, sub.id)
    return snap, created


def _check_quota(s: Session, uploader_id: int, size: int, quota_bytes: int) -> None:
    used = s.scalar(select(func.coalesce(func.sum(Snapshot.size), 0))
                    .where(Snapshot.uploader_id == uploader_id)) or 0
    if used + size > quota_bytes:
        raise QuotaError(f"archive: {size} more bytes would take your snapshots to "
                         f"{used + size} bytes, over snapshot_quota_bytes={quota_bytes}",
                         hint="reuse an uploaded snapshot, or ask the lab for a larger quota")


def link(s: Session, researcher_id: int, snapshot_id: str, submission_id: int) -> None:
    """Record that ``snapshot_id`` (uploaded by the caller) produced ``submission_id`` (the
    caller's own)."""
    get(s, snapshot_id)
    if not holds_snapshot(s, researcher_id, snapshot_id):
        raise ForumError(f"snapshot_id: snapshot {snapshot_id} was not uploaded by you",
                         hint="upload the code that produced the submission (the same bytes "
                              "as another's snapshot are fine) and link that")
    sub = own_submission(s, researcher_id, submission_id)
    if sub.snapshot_id and sub.snapshot_id != snapshot_id:
        raise ForumError(f"submission_id: submission {sub.id} was made with snapshot "
                         f"{sub.snapshot_id}")
    existing = s.get(SnapshotLink, sub.id)
    if existing is not None and existing.snapshot_id != snapshot_id:
        raise ForumError(f"submission_id: submission {sub.id} is already linked to snapshot "
                         f"{existing.snapshot_id}")
    if existing is None:
        s.add(SnapshotLink(submission_id=sub.id, snapshot_id=snapshot_id,
                           researcher_id=researcher_id, created_at=utcnow()))
        s.flush()


def get(s: Session, snapshot_id: str) -> Snapshot:
    snap = s.get(Snapshot, snapshot_id)
    if snap is None:
        raise NotFoundError(f"no snapshot {snapshot_id}")
    return snap


def listing(s: Session, uploader: str | None = None, submission_id: int | None = None,
            limit: int = 50, offset: int = 0) -> list[SnapshotOut]:
    stmt = select(Snapshot).order_by(Snapshot.created_at.desc(), Snapshot.id)
    if uploader:
        stmt = stmt.join(Researcher, Researcher.id == Snapshot.uploader_id).where(
            Researcher.id == int(uploader) if uploader.isascii() and uploader.isdigit()
            else Researcher.name == uploader)
    if submission_id is not None:
        stmt = stmt.where(Snapshot.id.in_(_snapshots_of(submission_id)))
    return views(s, list(s.scalars(stmt.limit(limit).offset(offset))))


def detail(s: Session, snapshot_id: str) -> SnapshotDetail:
    snap = get(s, snapshot_id)
    head = views(s, [snap])[0]
    return SnapshotDetail(**head.model_dump(),
                          files=[SnapshotFile(path=p, size=n) for p, n in snap.files])


# The most of one file served whole: larger ones are for the archive download. Each read
# decompresses the archive up to the file, so without a cap 40 parallel reads of a 198 MB file
# of zeros (a 2 MB upload) held gigabytes in the lab process.
MEMBER_MAX_BYTES = 8 << 20


def member(s: Session, blobs: BlobStore, limits: ArchiveLimits, snapshot_id: str,
           path: str, prefix: int | None = None) -> tuple[bytes, int]:
    """(the file's bytes, its size): all of them, refused past ``MEMBER_MAX_BYTES``, or only
    the first ``prefix``."""
    snap = get(s, snapshot_id)
    size = next((n for p, n in snap.files if p == path), None)
    if size is None:
        raise NotFoundError(f"snapshot {snapshot_id} has no file {path!r}")
    if prefix is None and size > MEMBER_MAX_BYTES:
        raise QuotaError(f"path: {path!r} is {size} bytes; files over {MEMBER_MAX_BYTES} "
                         "bytes are served only in the archive",
                         hint=f"GET /v1/snapshots/{snapshot_id}/archive")
    return read_member(blobs.get(snap.id), path, limits, max_bytes=prefix), size


def views(s: Session, snaps: list[Snapshot]) -> list[SnapshotOut]:
    if not snaps:
        return []
    ids = [x.id for x in snaps]
    names = dict(s.execute(select(Researcher.id, Researcher.name)
                           .where(Researcher.id.in_({x.uploader_id for x in snaps}))).all())
    subs: dict[str, set[int]] = {i: set() for i in ids}
    for sid, sub_id in s.execute(select(Submission.snapshot_id, Submission.id)
                                 .where(Submission.snapshot_id.in_(ids))):
        subs[sid].add(sub_id)
    for sid, sub_id in s.execute(select(SnapshotLink.snapshot_id, SnapshotLink.submission_id)
                                 .where(SnapshotLink.snapshot_id.in_(ids))):
        subs[sid].add(sub_id)
    return [SnapshotOut(id=x.id, format=x.format, size=x.size, n_files=x.n_files,
                        unpacked_bytes=x.unpacked_bytes,
                        uploader=Author(id=x.uploader_id, name=names[x.uploader_id]),
                        parent_id=x.parent_id, label=x.label, created_at=x.created_at,
                        submission_ids=sorted(subs[x.id])) for x in snaps]


def _snapshots_of(submission_id: int):
    linked = select(SnapshotLink.snapshot_id).where(SnapshotLink.submission_id == submission_id)
    made = select(Submission.snapshot_id).where(Submission.id == submission_id,
                                                Submission.snapshot_id.is_not(None))
    return linked.union(made)
