"""``/v1/snapshots``: upload (multipart or raw body), list, describe, download, browse files.

The upload is read with a hard cap (``snapshot_max_bytes`` plus room for multipart framing)
before anything is parsed, so an endless body costs the server at most that much memory.
"""

from __future__ import annotations

import os
import threading

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from aarlab.archive import ArchiveLimits, inspect_archive, sha256_hex
from aarlab.config import Settings
from aarlab.forum import snapshots
from aarlab.forum.routes import viewer
from aarlab.forum.schemas import (
    SHA256,
    LinkIn,
    SnapshotDetail,
    SnapshotOut,
    UploadOut,
    one_line_text,
)
from aarlab.forum.service import ForumError, Viewer
from aarlab.forum.snapshots import QuotaError
from aarlab.forum.tables import Snapshot
from aarlab.server.deps import current_researcher, get_settings, get_store, writing_researcher
from aarlab.server.streams import FileStream
from aarlab.store.db import Store
from aarlab.store.identity import Researcher

router = APIRouter(prefix="/v1/snapshots", tags=["snapshots"])

_MULTIPART_SLACK = 64 * 1024
_upload_lock = threading.Lock()  # the quota check and the insert, for every researcher
# One archive inflated at a time per reader (an upload's check, a file read from inside an
# archive, up to 0.6 s of a core each for a legal 2 MB archive): one sandbox takes at most a
# core of the lab process, however many of its 8 requests in flight ask (the admin: key None).
_inflating: dict[int | None, threading.Lock] = {}
_inflating_guard = threading.Lock()


def _inflation_lock(researcher_id: int | None) -> threading.Lock:
    with _inflating_guard:
        return _inflating.setdefault(researcher_id, threading.Lock())


_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "description": "The archive (tar.gz or zip): as the raw body, or as the multipart "
                       "field `archive`.",
        "content": {
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["archive"],
                "properties": {"archive": {"type": "string", "format": "binary"}}}},
        },
    }
}
_ID = {"pattern": SHA256, "description": "sha256 of the archive."}


def blob_store(settings: Settings = Depends(get_settings)) -> snapshots.BlobStore:
    return snapshots.BlobStore(settings.snapshots_dir)


def limits(settings: Settings = Depends(get_settings)) -> ArchiveLimits:
    return ArchiveLimits.from_settings(settings)


@router.post("", response_model=UploadOut, status_code=status.HTTP_201_CREATED,
             openapi_extra=_UPLOAD_DOC,
             responses={200: {"model": UploadOut, "description": "Already stored."},
                        413: {"description": "Over snapshot_max_bytes."},
                        422: {"description": "Refused archive: the entry and the rule."}},
             summary="Upload a workspace archive; its id is the sha256 of its bytes")
async def upload(
    request: Request,
    response: Response,
    parent: str | None = Query(None, pattern=SHA256, description="Snapshot this one derives "
                               "from."),
    submission_id: int | None = Query(None, description="Your submission it produced."),
    label: str | None = Query(None, max_length=200),
    me: Researcher = Depends(writing_researcher),
    store: Store = Depends(get_store),
    blobs: snapshots.BlobStore = Depends(blob_store),
    lim: ArchiveLimits = Depends(limits),
    settings: Settings = Depends(get_settings),
) -> UploadOut:
    try:  # shown on pages and to other researchers' LLM contexts, like a finding's title
        one_line_text(label)
    except ValueError as e:
        raise ForumError(f"label: {e}") from None
    data = await _archive_bytes(request, lim.max_bytes)

    def work() -> UploadOut:
        # Inflating and checking a new archive is the costly part: it runs outside the lab-wide
        # lock (one researcher's uploads never queue another's), one at a time per researcher,
        # and not at all for bytes already stored. The quota check and the insert commit
        # together, under the lock.
        digest = sha256_hex(data)
        with store.session() as s:
            known = s.get(Snapshot, digest) is not None
        info = None
        if not known:
            with _inflation_lock(me.id):
                info = inspect_archive(data, lim)  # UnsafeArchiveError names the entry
        with _upload_lock, store.session() as s:
            snap, created = snapshots.upload(s, blobs, lim, me.id, data, parent, submission_id,
                                             label, settings.snapshot_quota_bytes, info,
                                             digest)
            return UploadOut(**snapshots.views(s, [snap])[0].model_dump(), created=created)

    out = await run_in_threadpool(work)  # hashing and inflating stay off the event loop
    if not out.created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get("", response_model=list[SnapshotOut], summary="List snapshots, newest first")
def list_snapshots(uploader: str | None = Query(None, max_length=64,
                                                description="Researcher name or id."),
                   submission_id: int | None = None,
                   limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
                   _who: Viewer = Depends(viewer),
                   store: Store = Depends(get_store)) -> list[SnapshotOut]:
    with store.session() as s:
        return snapshots.listing(s, uploader, submission_id, limit, offset)


@router.get("/{snapshot_id}", response_model=SnapshotDetail,
            summary="A snapshot and its file list")
def get_snapshot(snapshot_id: str = Path(**_ID), _who: Viewer = Depends(viewer),
                 store: Store = Depends(get_store)) -> SnapshotDetail:
    with store.session() as s:
        return snapshots.detail(s, snapshot_id)


@router.get("/{snapshot_id}/archive", response_class=Response,
            responses={200: {"content": {"application/gzip": {}, "application/zip": {}}}},
            summary="Download the archive (extract it with aarlab.archive)")
def download(snapshot_id: str = Path(**_ID), _who: Viewer = Depends(viewer),
             store: Store = Depends(get_store),
             blobs: snapshots.BlobStore = Depends(blob_store)) -> Response:
    with store.session() as s:
        snap = snapshots.get(s, snapshot_id)
    f = blobs.open_verified(snap.id)
    ext = "tar.gz" if snap.format == "tar.gz" else "zip"
    # Streamed from disk (aarlab.server.streams): a reader that stalls holds its request.
    return FileStream(f, media_type=_MEDIA[ext], headers={
        "Content-Length": str(os.fstat(f.fileno()).st_size),
        "Content-Disposition": f'attachment; filename="{snap.id[:12]}.{ext}"',
        "ETag": f'"{snap.id}"'})


@router.get("/{snapshot_id}/files/{path:path}", response_class=Response,
            summary="One file of a snapshot, read without extracting")
def file(snapshot_id: str = Path(**_ID), path: str = Path(max_length=1024),
         _who: Viewer = Depends(viewer), store: Store = Depends(get_store),
         blobs: snapshots.BlobStore = Depends(blob_store),
         lim: ArchiveLimits = Depends(limits)) -> Response:
    with _inflation_lock(_who.researcher_id), store.session() as s:
        data, _ = snapshots.member(s, blobs, lim, snapshot_id, path)
    try:
        data.decode("utf-8")
        media = "text/plain; charset=utf-8"
    except UnicodeDecodeError:
        media = "application/octet-stream"
    # Researcher-written content: never let a browser run or sniff it.
    return Response(data, media_type=media, headers={
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})


@router.post("/{snapshot_id}/links", response_model=SnapshotOut,
             summary="Declare that this snapshot produced one of your submissions")
def add_link(data: LinkIn, snapshot_id: str = Path(**_ID),
             me: Researcher = Depends(current_researcher),
             store: Store = Depends(get_store)) -> SnapshotOut:
    with store.session() as s:
        snapshots.link(s, me.id, snapshot_id, data.submission_id)
        return snapshots.views(s, [snapshots.get(s, snapshot_id)])[0]


_MEDIA = {"tar.gz": "application/gzip", "zip": "application/zip"}


async def _archive_bytes(request: Request, max_bytes: int) -> bytes:
    """The archive from a raw or multipart body, refusing past the cap while reading."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    cap = max_bytes + (_MULTIPART_SLACK if multipart else 0)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise _too_large(max_bytes)
    if not multipart:
        if not body:
            raise ForumError("body: expected a tar.gz or zip archive")
        return bytes(body)
    return await _multipart_archive(request, bytes(body), max_bytes)


async def _multipart_archive(request: Request, body: bytes, max_bytes: int) -> bytes:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    try:
        upload = form.get("archive")
        if upload is None or isinstance(upload, str):
            raise ForumError("archive: expected a multipart file field 'archive' holding the "
                             "tar.gz or zip")
        data = await upload.read()
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _too_large(max_bytes: int) -> ForumError:
    e = QuotaError(f"archive: over snapshot_max_bytes={max_bytes}")  # a 413, like the quota's
    e.headers = {"Connection": "close"}  # the rest of the body is not read
    return e
