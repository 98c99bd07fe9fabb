"""A lab's server as the red-team tests attack it: the real ASGI app on a SQLite file of the
test's own, an admin who registers researchers, and a lab run whose members they are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from aarlab.lab.tables import LabMember, LabRun
from aarlab.server.app import create_app
from aarlab.store.db import Store
from aarlab.store.identity import Researcher

ADMIN = "redteam-admin"


@contextmanager
def served_lab(settings, tmp_path) -> Iterator[tuple]:
    """(settings, store, client); the Ladder's safety factor is 1 so tiny tasks release."""
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN, "ladder_safety": 1.0,
                                    "snapshots_root": tmp_path / "snapshots"})
    store = Store(s.database_url)
    with TestClient(create_app(s, store), base_url="http://lab") as c:
        yield s, store, c


def register(c: TestClient, name: str) -> dict[str, str]:
    """A new researcher's auth header."""
    r = c.post("/v1/admin/researchers", json={"name": name},
               headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def lab_of(store: Store, names: list[str], task: str = "tweets") -> int:
    """A lab run on ``task`` whose members are the researchers ``names``; its id."""
    with store.session() as s:
        run = LabRun(task=task, config={})
        s.add(run)
        s.flush()
        for n in names:
            rid = s.scalar(select(Researcher.id).where(Researcher.name == n))
            s.add(LabMember(lab_id=run.id, researcher_id=rid, direction="any", workspace="/x"))
        return run.id


def submit(c: TestClient, h: dict, kit, pred, method: str, task: str = "tweets", **extra):
    """POST class indices ``pred`` on ``kit``'s test rows as a submission; the response."""
    ids, labels = kit.ids("test"), kit.label_names
    return c.post(f"/v1/tasks/{task}/submissions", headers=h, json={
        "predictions": {i: labels[int(k)] for i, k in zip(ids, pred, strict=True)},
        "method": method, **extra})


def ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


def noisy(truth: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """``truth`` with ``rows`` random rows flipped (binary)."""
    pred = truth.copy()
    flip = np.random.default_rng(seed).choice(len(pred), rows, replace=False)
    pred[flip] = 1 - pred[flip]
    return pred
