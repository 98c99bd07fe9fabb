"""Telemetry in: researchers post what they are doing; the lab and dashboard read it back."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from aarlab.lab.tables import LabEvent
from aarlab.server.deps import current_researcher, get_store
from aarlab.store.db import Store
from aarlab.store.identity import Researcher

router = APIRouter(prefix="/v1/lab", tags=["lab"])

EventKind = Literal["experiment", "idea", "note", "error", "status"]


class EventIn(BaseModel):
    kind: EventKind
    payload: dict = Field(default_factory=dict, description="Free-form, at most 16 KiB as JSON.")


class EventOut(BaseModel):
    id: int
    kind: str


@router.post("/events", response_model=EventOut, status_code=201)
def post_event(event: EventIn, me: Researcher = Depends(current_researcher),
               store: Store = Depends(get_store)) -> EventOut:
    if len(json.dumps(event.payload)) > 16384:
        raise HTTPException(413, detail="payload: at most 16 KiB of JSON")
    with store.session() as s:
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
