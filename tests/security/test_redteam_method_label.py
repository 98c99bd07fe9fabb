"""A submission's ``method`` is researcher-typed text that lab-owner tools print and write:
the lab report's headline table (``| lab (best by released feedback score: `METHOD`, ...) |
PGR | ...``), the suite pick in ``aarlab run``'s summary (a rich table on the owner's terminal),
``bench/replicate.py``'s plain ``print`` and the replication report. Before, any text of up to
500 characters was kept, so a sandbox could

- forge report lines with a newline (``\\n\\n**a win** across the suite``),
- forge the headline table's numbers with ``|`` (GFM drops the excess cells, so the real PGR
  columns fall off the end and the researcher's own stand in their place), or close the code
  span with a backtick,
- write terminal escapes to the owner's terminal (ESC ] 52: set the clipboard; ESC [ 2J; the
  C1 CSI), or reorder what is shown with bidirectional overrides.

The API now refuses such a label (422 naming ``method``) and keeps nothing: no submission row,
no budget spent. Over HTTP to the real app on a real SQLite file.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from aarlab.scoring.tables import Submission
from aarlab.server.app import create_app
from aarlab.store.db import Store

ADMIN = "method-redteam-admin"
HOSTILE = [
    "noisy_em\n\n**a win** across the suite (interval above 0)",
    "x` | 0.990 [0.980, 1.000] | 0.100 | yes |",
    "weak_soft|forged",
    "logconf`",
    "ok\x1b]52;c;cm0gLXJmIH4=\x07",
    "ok\x1b[2Jcleared",
    "ok\u009b2J",
    "ok\r  win (interval above 0)  yes",
    "gce\u202e)7.0=q(",
    "tab\there",
]


@pytest.fixture
def lab(settings, tmp_path, tiny_tweets):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN})
    store = Store(s.database_url)
    with TestClient(create_app(s, store, role="all"), base_url="http://lab") as c:
        r = c.post("/v1/admin/researchers", json={"name": "mallory"},
                   headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 201, r.text
        yield c, {"Authorization": f"Bearer {r.json()['token']}"}, store, tiny_tweets[0]
    store.engine.dispose()


def _body(kit, method: str) -> dict:
    labels = kit.label_names
    return {"predictions": {i: labels[k % 2] for k, i in enumerate(kit.ids("test"))},
            "method": method}


@pytest.mark.parametrize("method", HOSTILE)
def test_a_method_label_that_could_forge_a_report_or_a_terminal_is_refused(lab, method):
    c, me, store, kit = lab
    before = c.get("/v1/me", headers=me).json()
    r = c.post("/v1/tasks/tweets/submissions", headers=me, json=_body(kit, method))
    assert r.status_code == 422, r.text
    detail = str(r.json()["detail"])
    assert "method" in detail and "Traceback" not in r.text
    assert "expected one line of text" in detail
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 0
    assert c.get("/v1/me", headers=me).json() == before  # no budget spent


@pytest.mark.parametrize("method", [
    "weak_soft", "noisy_em+gce(q=0.7)", '{"method": "guarded", "source": "noisy_em"}',
    "LoRA student, lr 1e-4 — naïve vote of 3 seeds (5 % held out)",
])
def test_ordinary_method_labels_still_pass(lab, method):
    c, me, store, kit = lab
    r = c.post("/v1/tasks/tweets/submissions", headers=me, json=_body(kit, method))
    assert r.status_code == 200, r.text
    with store.session() as s:
        assert s.scalar(select(Submission.method)) == method
