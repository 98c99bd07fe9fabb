"""``/v1/tasks/{task}/kit``: a task's kit as one deterministic tar.gz, for researchers on other
nodes. Serves ``kit_dir`` only (see ``aarlab.tasks.kit_archive``); the answer key never leaves.
Refusals are ``AarlabError``s carrying their status, answered by the app's one handler.
"""

from __future__ import annotations

from typing import IO

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from aarlab.config import Settings
from aarlab.errors import AarlabError, TaskNotBuiltError, UnknownTaskError
from aarlab.server.deps import current_researcher, get_settings
from aarlab.server.streams import FileStream
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


class NoKitError(AarlabError):
    status = 404


class UnsafeKitError(AarlabError):
    status = 500  # the server's own kit is wrong: its admin rebuilds the task


def _archive(settings: Settings, task: str) -> KitArchive:
    """``kit_archive``, its refusals told as this API tells them: a researcher learns only
    that there is no kit by that name, not how the server is laid out or what it could build."""
    try:
        return kit_archive(settings, task)
    except (UnknownTaskError, TaskNotBuiltError):
        # The name is echoed through repr and cut short: it is caller-controlled.
        raise NoKitError(f"task: no kit for task {task[:80]!r}") from None
    except AarlabError as e:
        raise UnsafeKitError(e.message, e.hint) from None


@router.get("/tasks/{task}/kit/digest", response_model=KitDigest, responses=_ERRORS,
            summary="sha256 and size of the task's kit archive")
async def kit_digest(task: str, _: Researcher = Depends(current_researcher),
                     settings: Settings = Depends(get_settings)):
    a = await run_in_threadpool(_archive, settings, task)  # may pack: off the loop
    return KitDigest(task=task, sha256=a.sha256, bytes=a.bytes)


@router.get("/tasks/{task}/kit", response_class=StreamingResponse,
            responses={**_ERRORS, 200: {"content": {"application/gzip": {}},
                                        "description": "The kit as tar.gz; "
                                        "X-Aarlab-Kit-Sha256 is its sha256"}},
            summary="Download the task's kit (extract it with aarlab.archive)")
async def kit_download(task: str, _: Researcher = Depends(current_researcher),
                       settings: Settings = Depends(get_settings)):
    a, f = await run_in_threadpool(_open, settings, task)
    return FileStream(f, _CHUNK, media_type="application/gzip", headers={
        "Content-Length": str(a.bytes), "X-Aarlab-Kit-Sha256": a.sha256,
        "ETag": f'"{a.sha256}"',
        "Content-Disposition": f'attachment; filename="{task}-kit-{a.sha256[:12]}.tar.gz"'})


def _open(settings: Settings, task: str) -> tuple[KitArchive, IO[bytes]]:
    # Opened here, not when streaming starts, so a rebuild that prunes this archive cannot
    # break the response half way; a prune between packing and opening gets one more try.
    for attempt in (1, 2):
        a = _archive(settings, task)
        try:
            return a, open(a.path, "rb")  # noqa: SIM115 - closed by _chunks
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
