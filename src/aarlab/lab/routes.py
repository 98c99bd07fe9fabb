"""Telemetry and notebooks in: researchers post what they are doing and publish their notebooks;
the lab and the dashboard read them back from the store (never from a workspace)."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import Text, cast, func, select
from starlette.concurrency import run_in_threadpool

from aarlab.client.lab import NOTEBOOK_MAX_BYTES
from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.lab import notebooks
from aarlab.lab.tables import LabEvent
from aarlab.server.deps import current_researcher, get_settings, get_store, writing_researcher
from aarlab.store.db import Store
from aarlab.store.identity import Researcher

router = APIRouter(prefix="/v1/lab", tags=["lab"])

EventKind = Literal["experiment", "idea", "note", "error", "status"]


class EventTooLarge(AarlabError):
    status = 413


class EventNotJSON(AarlabError):
    status = 422


class EventIn(BaseModel):
    kind: EventKind
    payload: dict = Field(default_factory=dict, description="Free-form, at most 16 KiB as JSON.")


class EventOut(BaseModel):
    id: int
    kind: str


_MAX_INT = 2 ** 53


def _has_huge_int(v: object) -> bool:
    # A loop, not recursion: a payload nested a few hundred deep raised RecursionError (a 500).
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, int) and not isinstance(x, bool) and abs(x) > _MAX_INT:
            return True
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


@router.post("/events", response_model=EventOut, status_code=201)
def post_event(event: EventIn, me: Researcher = Depends(writing_researcher),
               store: Store = Depends(get_store),
               settings: Settings = Depends(get_settings)) -> EventOut:
    try:
        # Python's parser takes NaN and Infinity; JSON (and Postgres's json type) does not.
        text = json.dumps(event.payload, allow_nan=False)
    except ValueError:
        raise EventNotJSON("payload: expected JSON numbers; NaN and Infinity are not JSON",
                           hint="send null or a string for a value that is not a number"
                           ) from None
    if len(text) > 16384:
        raise EventTooLarge("payload: at most 16 KiB of JSON")
    if _has_huge_int(event.payload):
        # 10**400 is valid JSON and finite, but no float: a reader's float() or isfinite()
        # raised on it and stopped the lab's final report (its audit and replication).
        raise EventNotJSON(f"payload: integers must lie within ±{_MAX_INT} (a float's exact "
                           "range)", hint="send a float or a string for a larger number")
    with store.session() as s:
        used = s.scalar(select(func.coalesce(func.sum(func.length(cast(LabEvent.payload, Text))),
                                             0)).where(LabEvent.researcher_id == me.id)) or 0
        if used + len(text) > settings.text_quota_chars:
            raise EventTooLarge(f"payload: you have stored {used} characters of telemetry; "
                                f"the most one researcher may is {settings.text_quota_chars} "
                                "(text_quota_chars)", hint="post smaller or fewer events")
        row = LabEvent(researcher_id=me.id, kind=event.kind, payload=event.payload)
        s.add(row)
        s.flush()
        return EventOut(id=row.id, kind=row.kind)


@router.get("/me/experiments")
def my_experiment_count(me: Researcher = Depends(current_researcher),
                        store: Store = Depends(get_store)) -> dict:
    with store.session() as s:
        n = s.scalar(select(func.count()).select_from(LabEvent).where(
            LabEvent.researcher_id == me.id, LabEvent.kind == "experiment"))
    return {"experiments": n}


class NotebookOut(BaseModel):
    name: str
    bytes: int
    changed: bool


@router.put("/me/notebooks/{name}", response_model=NotebookOut,
            responses={413: {"description": "Larger than the cap: publish the newest part"},
                       422: {"description": "Not UTF-8 text, or a .jsonl line that is not a "
                                            "JSON object"},
                       429: {"description": "Over the researcher's writes_per_minute (see "
                                            "Retry-After)"}},
            summary="Publish my notebook (the body is its text): the dashboard shows this copy")
async def put_notebook(request: Request, name: str = PathParam(max_length=32),
                       me: Researcher = Depends(writing_researcher),
                       store: Store = Depends(get_store)) -> NotebookOut:
    notebooks.check_name(name)
    body = bytearray()
    async for chunk in request.stream():  # stop reading at the cap, whatever the body says
        body += chunk
        if len(body) > NOTEBOOK_MAX_BYTES:
            raise notebooks.NotebookTooLarge(f"{name}: at most {NOTEBOOK_MAX_BYTES} "
                                             "bytes; publish its newest part")
    return NotebookOut(**await run_in_threadpool(notebooks.publish, store, me.id, name,
                                                  bytes(body)))
