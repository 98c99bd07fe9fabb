"""Second red-team pass on notebooks (issue 17's route): a notebook is hostile input that the
lab keeps and the dashboard renders. Over HTTP to the real app on a real SQLite file.

- A notebook entry's ``time`` far out of range (1e15, -1e12, 1e300) made the researcher's page a
  500 or a 422 JSON body: a researcher could blank the one page where the lab owner reads its
  timeline, probes and transcript.
- ``1e400`` parsed to ``inf`` and was kept as ``Infinity``, which is not JSON.
- C1 control characters (U+0080..U+009F, e.g. U+009B, a terminal's CSI) and bidirectional
  overrides (U+202E: "Trojan Source" spoofing) passed the "no control characters" check.
- A notebook's ``submission_id`` went raw into an ``href`` (``../login?...``): links are made
  only from integers.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from aarlab.lab import notebooks
from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.server.app import create_app
from aarlab.store.db import Store

ADMIN = "nb-redteam-admin"


class Lab:
    def __init__(self, client: TestClient, store: Store):
        self.c, self.store = client, store

    def join(self, name: str) -> dict:
        r = self.c.post("/v1/admin/researchers", json={"name": name},
                        headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        with self.store.session() as s:
            run = s.scalar(select(LabRun)) or LabRun(task="tweets", status="running", config={})
            s.add(run)
            s.flush()
            s.add(LabMember(lab_id=run.id, researcher_id=rid, policy="search", direction="d",
                            workspace="/nowhere"))
            s.add(LabEvent(researcher_id=rid, kind="note", payload={"text": "TIMELINE-MARK"}))
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def put(self, who: dict, name: str, data: bytes):
        return self.c.put(f"/v1/lab/me/notebooks/{name}", content=data, headers=who)

    def stored(self) -> list[str]:
        with self.store.session() as s:
            return [r.text for r in s.scalars(select(notebooks.LabNotebook))]


@pytest.fixture
def lab(settings, tmp_path):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN})
    store = Store(s.database_url)
    with TestClient(create_app(s, store), base_url="http://lab",
                    raise_server_exceptions=False) as c:
        yield Lab(c, store)
    store.engine.dispose()


@pytest.mark.parametrize("when", ["1e15", "-1e12", "1e300", "-1e300", "1e19"])
def test_a_notebook_time_out_of_range_does_not_blank_the_researchers_page(lab, when):
    who = lab.join("mal")
    line = f'{{"why": "ENTRY-MARK", "time": {when}}}\n'.encode()
    assert lab.put(who, "notebook.jsonl", line).status_code == 200
    for viewer in ({}, {"cookie": ""}):
        page = lab.c.get("/researchers/mal", headers=viewer)
        assert page.status_code == 200, page.text[:300]
        assert "ENTRY-MARK" in page.text and "TIMELINE-MARK" in page.text
    lab.c.get(f"/login?token={ADMIN}")  # the admin's view (transcript, probes) too
    page = lab.c.get("/researchers/mal")
    assert page.status_code == 200 and "TIMELINE-MARK" in page.text


@pytest.mark.parametrize("number", ["1e400", "-1e400", "[1, 2e999]"])
def test_a_number_json_cannot_hold_is_refused_not_kept_as_infinity(lab, number):
    who = lab.join("inf")
    r = lab.put(who, "notebook.jsonl", f'{{"score": {number}}}\n'.encode())
    assert r.status_code == 422, r.text
    assert "line 1" in r.json()["detail"] and "finite" in r.json()["detail"]
    assert lab.stored() == []


@pytest.mark.parametrize("char", ["\u0085", "\u009b", "\u202a", "\u202e", "\u2066", "\u2069"])
@pytest.mark.parametrize("name", ["notebook.md", "notebook.jsonl"])
def test_c1_controls_and_bidi_overrides_are_refused(lab, char, name):
    who = lab.join("bidi")
    text = f"score 0.1{char}9.0 erocs\n"
    data = (json.dumps({"why": text}, ensure_ascii=False) + "\n") if name.endswith("l") else text
    r = lab.put(who, name, data.encode())
    assert r.status_code == 422, r.text
    assert f"U+{ord(char):04X}" in r.json()["detail"]
    assert lab.stored() == []


def test_escaped_controls_inside_json_strings_are_refused_too(lab):
    """``\\u202e`` written as an escape passes a byte check but not the parsed text's."""
    who = lab.join("esc")
    r = lab.put(who, "notebook.jsonl", b'{"why": "a\\u202eb"}\n')
    assert r.status_code == 422 and "U+202E" in r.json()["detail"]
    r = lab.put(who, "notebook.jsonl", b'{"\\u009b": "key"}\n')
    assert r.status_code == 422 and "U+009B" in r.json()["detail"]
    r = lab.put(who, "notebook.jsonl", b'{"why": ["ok", {"deep": "\\u001b[2J"}]}\n')
    assert r.status_code == 422 and "U+001B" in r.json()["detail"]
    # a message's CRLF and tabs are text
    assert lab.put(who, "notebook.jsonl", b'{"error": "a\\r\\nb\\tc"}\n').status_code == 200
    assert lab.stored() == ['{"error": "a\\r\\nb\\tc"}\n']


def test_a_notebook_links_only_to_submissions_by_integer_id(lab):
    who = lab.join("link")
    lines = [{"why": "raw", "submission_id": "../login?next=//evil.example"},
             {"why": "js", "submission_id": "javascript:alert(1)"},
             {"why": "float", "submission_id": 1.5},
             {"why": "ok", "submission_id": 7}]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    assert lab.put(who, "notebook.jsonl", data).status_code == 200
    page = lab.c.get("/researchers/link").text
    assert 'href="/submissions/7"' in page
    assert 'href="/submissions/..' not in page and 'href="/submissions/javascript' not in page
    assert 'href="/submissions/1.5"' not in page


def test_ordinary_text_still_passes(lab):
    """Tabs, newlines, accents, CJK and emoji are text, not controls."""
    who = lab.join("ok")
    md = "# plan\tnext\nnaïve 日本語 🙂 — “quotes”\n"
    assert lab.put(who, "notebook.md", md.encode()).status_code == 200
    time.sleep(0.01)
    assert lab.stored() == [md]
