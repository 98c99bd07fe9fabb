"""``/v1/tasks/{task}/kit``: a task's kit as one deterministic tar.gz, for researchers on other
nodes. Serves ``kit_dir`` only (see ``aarlab.tasks.kit_archive``); the answer key never leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from aarlab.config import Settings
from aarlab.errors import AarlabError, TaskNotBuiltError, UnknownTaskError
from aarlab.server.deps import current_researcher, get_settings
from aarlab.store.identity import Researcher
from aarlab.tasks.kit_archive import KitArchive, kit_archive

router = APIRouter(prefix="/v1", tags=["tasks"])

_CHUNK = 1 << 20
_ERRORS = {401: {"description": "Unknown or revoked token"},
           404: {"description": "Unknown or unbuilt task: the message names it"},
           500: {"description": "The kit on the server is unsafe to pack (rebuild the task)"}}


class KitDigest(BaseModel):
    task: str
    sha256: str
    bytes: int


def _error(task: str, e: AarlabError) -> JSONResponse:
    if isinstance(e, UnknownTaskError | TaskNotBuiltError):
        # The name is echoed through repr and cut short: it is caller-controlled.
        return JSONResponse({"detail": f"task: no kit for task {task[:80]!r}"}, status_code=404)
    return JSONResponse({"detail": str(e)}, status_code=500)


@router.get("/tasks/{task}/kit/digest", response_model=KitDigest, responses=_ERRORS,
            summary="sha256 and size of the task's kit archive")
async def kit_digest(task: str, _: Researcher = Depends(current_researcher),
                     settings: Settings = Depends(get_settings)):
    try:
        a = await run_in_threadpool(kit_archive, settings, task)  # may pack: off the loop
    except AarlabError as e:
        return _error(task, e)
    return KitDigest(task=task, sha256=a.sha256, bytes=a.bytes)


@router.get("/tasks/{task}/kit", response_class=StreamingResponse,
            responses={**_ERRORS, 200: {"content": {"application/gzip": {}},
                                        "description": "The kit as tar.gz; "
                                        "X-Aarlab-Kit-Sha256 is its sha256"}},
            summary="Download the task's kit (extract it with aarlab.archive)")
async def kit_download(task: str, _: Researcher = Depends(current_researcher),
                       settings: Settings = Depends(get_settings)):
    try:
        a, f = await run_in_threadpool(_open, settings, task)
    except AarlabError as e:
        return _error(task, e)
    return StreamingResponse(_chunks(f), media_type="application/gzip", headers={
        "Content-Length": str(a.bytes), "X-Aarlab-Kit-Sha256": a.sha256,
        "ETag": f'"{a.sha256}"',
        "Content-Disposition": f'attachment; filename="{task}-kit-{a.sha256[:12]}.tar.gz"'})


def _open(settings: Settings, task: str) -> tuple[KitArchive, IO[bytes]]:
    # Opened here, not when streaming starts, so a rebuild that prunes this archive cannot
    # break the response half way; a prune between packing and opening gets one more try.
    for attempt in (1, 2):
        a = kit_archive(settings, task)
        try:
            return a, open(a.path, "rb")  # noqa: SIM115 - closed by _chunks
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    with f:
        while chunk := f.read(_CHUNK):
            yield chunk
