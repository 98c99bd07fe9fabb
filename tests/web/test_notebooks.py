"""Notebooks reach the dashboard only through the lab's API (issue 17).

A researcher publishes its notebook over HTTP (``PUT /v1/lab/me/notebooks/{name}``) to a real
server over a real SQLite file; the lab checks it and keeps it in the store; the researcher page
shows the store's copy. Hostile notebooks (oversized, binary, markup, bad JSON lines, changed in
a loop) are refused or escaped; an LLM member's planted symlink is refused by the lab-side
publisher. Nothing in ``aarlab.web`` opens a workspace.
"""

from __future__ import annotations

import ast
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import select
from webseed import ADMIN, ADMIN_H, LiveServer

import aarlab.web
from aarlab.client import LabClient
from aarlab.client.lab import NOTEBOOK_MAX_BYTES, newest_part
from aarlab.lab import notebooks
from aarlab.lab.members import NotebookPublisher
from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.researchers.search.notebook import Notebook, publish
from aarlab.server.app import create_app
from aarlab.store.db import Store

CANARY = f"WORKSPACE-ONLY-{uuid.uuid4().hex[:10]}"  # in a workspace file, never published


class Lab:
    def __init__(self, url: str, http: httpx.Client, store: Store, root: Path):
        self.url, self.http, self.store, self.root = url, http, store, root
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, int] = {}

    def join(self, name: str) -> Path:
        r = self.http.post("/v1/admin/researchers", json={"name": name}, headers=ADMIN_H)
        assert r.status_code == 201, r.text
        self.tokens[name], self.ids[name] = r.json()["token"], r.json()["id"]
        ws = self.root / "workspaces" / name
        ws.mkdir(parents=True)
        # The workspace holds something else: the page must never show it.
        (ws / "notebook.md").write_text(f"# {CANARY}\n")
        (ws / "notebook.jsonl").write_text(json.dumps({"why": CANARY}) + "\n")
        with self.store.session() as s:
            run = s.scalar(select(LabRun)) or LabRun(task="tweets", status="running", config={})
            s.add(run)
            s.flush()
            s.add(LabMember(lab_id=run.id, researcher_id=r.json()["id"], policy="search",
                            direction="d", workspace=str(ws)))
        return ws

    def put(self, who: str, name: str, data: bytes, token: str | None = None) -> httpx.Response:
        return self.http.put(f"/v1/lab/me/notebooks/{name}", content=data, headers={
            "Authorization": f"Bearer {token or self.tokens[who]}"})

    def page(self, who: str) -> str:
        r = self.http.get(f"/researchers/{who}")
        assert r.status_code == 200, r.text
        return r.text

    def stored(self, who: str) -> dict[str, str]:
        with self.store.session() as s:
            return {k: v.text for k, v in notebooks.latest(s, self.ids[who]).items()}


@pytest.fixture
def lab(settings, tmp_path):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN})
    store = Store(s.database_url)
    with LiveServer(create_app(s, store)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        yield Lab(server.url, http, store, tmp_path)
    store.engine.dispose()


def test_the_page_shows_the_notebook_published_through_the_api(lab):
    lab.join("eve")
    assert "No notebook published yet." in lab.page("eve") and CANARY not in lab.page("eve")
    with LabClient(base_url=lab.url, token=lab.tokens["eve"]) as client:
        lines = b"".join(json.dumps({"why": f"idea {k}", "score": 0.5 + k / 10,
                                     "time": time.time()}).encode() + b"\n" for k in range(3))
        assert client.publish_notebook("notebook.jsonl", lines) == {
            "name": "notebook.jsonl", "bytes": len(lines), "changed": True}
        assert client.publish_notebook("notebook.md", "# plan\n\nbaseline first\n")["changed"]
        assert not client.publish_notebook("notebook.md", "# plan\n\nbaseline first\n")["changed"]
    page = lab.page("eve")
    assert page.index("idea 2") < page.index("idea 1") < page.index("idea 0")  # newest first
    assert "score 0.7000" in page and "published" in page
    assert CANARY not in page  # the workspace's own files were never read


def test_the_search_researchers_publisher_sends_its_files_newest_part(lab):
    ws = lab.join("sam")
    nb = Notebook(ws / "notebook.jsonl")
    nb.path.unlink()
    pad = "x" * 2000
    for k in range(200):  # ~400 KB: more than the lab keeps
        nb.append({"why": f"round {k}", "pad": pad})
    with open(nb.path, "a") as f:
        f.write('{"why": "cut by a ki')  # a kill mid-line: dropped, not refused
    with LabClient(base_url=lab.url, token=lab.tokens["sam"]) as client:
        publish(client, [nb.path])
    kept = lab.stored("sam")["notebook.jsonl"]
    assert len(kept.encode()) <= NOTEBOOK_MAX_BYTES
    whys = [json.loads(line)["why"] for line in kept.splitlines()]
    assert whys[-1] == "round 199" and whys == [f"round {k}" for k in
                                                 range(200 - len(whys), 200)]
    assert "round 199" in lab.page("sam") and "cut by a ki" not in lab.page("sam")


@pytest.mark.parametrize("name, data, status, says", [
    ("notebook.md", b"x" * (NOTEBOOK_MAX_BYTES + 1), 413, "at most 262144 bytes"),
    ("notebook.md", b"ok\xff\xfe\x00binary", 422, "expected UTF-8 text"),
    ("notebook.md", b"ok\x00\x01\x02", 422, "control character U+0000"),
    ("notebook.md", b"\x1b[2J\x1b]0;pwned\x07", 422, "control character U+001B"),
    ("notebook.jsonl", b'{"why": "fine"}\nnot json <script>\n', 422, "line 2: expected one JSON"),
    ("notebook.jsonl", b'["a list"]\n', 422, "line 1: expected a JSON object, got list"),
    ("notebook.jsonl", b'{"score": NaN}\n', 422, "line 1: expected one JSON object"),
    ("notebook.jsonl", b"[" * 100_000, 422, "line 1: expected one JSON object"),
    ("labels.json", b"x", 404, "name: expected one of notebook.md, notebook.jsonl"),
    ("notes.html", b"x", 404, "name: expected one of"),
])
def test_hostile_notebooks_are_refused_naming_why_and_echoing_nothing(lab, name, data, status,
                                                                        says):
    lab.join("mal")
    r = lab.put("mal", name, data)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert says in detail and "Traceback" not in r.text
    assert "<script>" not in detail and "pwned" not in detail  # described, never echoed
    assert lab.stored("mal") == {}
    assert "No notebook published yet." in lab.page("mal")


def test_without_a_researcher_token_nothing_is_kept(lab):
    lab.join("eve")
    assert lab.put("eve", "notebook.md", b"hi", token="not-a-token").status_code == 401
    assert lab.put("eve", "notebook.md", b"hi", token=ADMIN).status_code == 401
    assert lab.stored("eve") == {}


def test_markup_in_a_notebook_is_shown_as_text(lab):
    lab.join("xss")
    md = b"# notes\n<script>window.__pwned=1</script><img src=x onerror=alert(1)>\n"
    jl = json.dumps({"why": "<script>alert(2)</script>", "error": "<b>bold</b>",
                     "submission_id": "1\" onmouseover=\"alert(3)"}).encode() + b"\n"
    assert lab.put("xss", "notebook.md", md).status_code == 200
    assert lab.put("xss", "notebook.jsonl", jl).status_code == 200
    page = lab.page("xss")
    for raw in ("<script>window.__pwned", "<script>alert(2)", "<img src=x", "<b>bold",
                "onmouseover=\"alert"):
        assert raw not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page and "&lt;b&gt;bold" in page


def test_jsonl_is_kept_as_the_lab_serialises_it_not_as_sent(lab):
    lab.join("fmt")
    sent = b'{ "z" : 1,\t"a":"\\u00e9" }\r\n\n{"b": [1, 2]}'
    assert lab.put("fmt", "notebook.jsonl", sent).status_code == 200
    assert lab.stored("fmt")["notebook.jsonl"] == '{"a": "\\u00e9", "z": 1}\n{"b": [1, 2]}\n'


def test_a_planted_symlink_in_an_llm_workspace_is_refused_by_the_lab_side_publisher(
        lab, settings, tmp_path):
    """The LLM member's notebook is read through the sandbox contract, which follows no link:
    the answer key a researcher points ``notebook.md`` at never reaches the store or a page."""
    from aarlab.sandbox import make_sandbox
    from aarlab.sandbox.spec import SandboxSpec

    ws = lab.join("llm")
    secret = tmp_path / "answer-key.json"
    secret.write_text(json.dumps({"labels": CANARY}))
    kit = tmp_path / "kit"
    kit.mkdir()
    sandbox = make_sandbox(SandboxSpec(name="llm", workspace=ws, kit=kit),
                           allow_unsandboxed=True, settings=settings)
    member = SimpleNamespace(name="llm", researcher_id=lab.ids["llm"], sandbox=sandbox)
    try:
        (ws / "notebook.md").write_text("# my notes\n")
        pub = NotebookPublisher(lab.store, member, every=3600)
        pub.publish()
        assert lab.stored("llm") == {"notebook.md": "# my notes\n"}
        (ws / "notebook.md").unlink()
        (ws / "notebook.md").symlink_to(secret)
        pub.publish()
        pub.publish()  # told once, not once per tick
        (ws / "notebook.md").unlink()
        (ws / "notebook.md").write_bytes(b"\x00\x01 binary")
        pub.publish()
    finally:
        sandbox.terminate()
    assert lab.stored("llm") == {"notebook.md": "# my notes\n"}  # the last good copy stays
    with lab.store.session() as s:
        told = [e.payload["text"] for e in s.scalars(select(LabEvent).where(
            LabEvent.researcher_id == lab.ids["llm"], LabEvent.kind == "error"))]
    assert len(told) == 2 and "symlink" in told[0] and "control character" in told[1]
    page = lab.page("llm")
    assert CANARY not in page and "# my notes" in page and "not published" in page


def test_the_llm_members_last_notebook_is_published_when_its_loop_ends(lab, settings, tmp_path):
    from aarlab.sandbox import make_sandbox
    from aarlab.sandbox.spec import SandboxSpec

    ws = lab.join("last")
    kit = tmp_path / "kit"
    kit.mkdir()
    sandbox = make_sandbox(SandboxSpec(name="last", workspace=ws, kit=kit),
                           allow_unsandboxed=True, settings=settings)
    member = SimpleNamespace(name="last", researcher_id=lab.ids["last"], sandbox=sandbox)
    try:
        with NotebookPublisher(lab.store, member, every=3600) as pub:
            (ws / "notebook.md").write_text("first\n")
            pub.publish()
            (ws / "notebook.md").write_text("first\nlast words\n")  # a moment later
    finally:
        sandbox.terminate()
    assert lab.stored("last") == {"notebook.md": "first\nlast words\n"}


def test_newest_part_starts_on_a_whole_line():
    data = "é\n".encode() * 10 + b"last\n"
    assert newest_part(data, len(data)) == data
    cut = newest_part(data, 9)
    assert cut.decode("utf-8").endswith("last\n") and cut.startswith(("é".encode(), b"last"))


def test_the_dashboard_package_opens_no_workspace():
    """``aarlab.web`` imports neither ``safe_files`` nor the sandbox's file access, never
    touches a member's ``workspace`` column, and reads files only where the lab alone writes
    them (its own static files, and the answer key's ``baselines.json``)."""
    root = Path(aarlab.web.__file__).parent
    readers = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)] + [tree]:
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    names = {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
                elif isinstance(node, ast.Import):
                    names = {a.name for a in node.names}
                else:
                    names = set()
                assert not any("safe_files" in n or n.startswith("aarlab.sandbox.files")
                               for n in names), (path.name, names)
                if isinstance(node, ast.Attribute):
                    assert node.attr != "workspace", (path.name, node.lineno)
                    if node.attr in ("read_text", "read_bytes", "open") and fn is not tree:
                        readers.add((path.name, fn.name))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                        and node.func.id == "open" and fn is not tree:
                    readers.add((path.name, fn.name))
    assert readers == {("queries.py", "references"), ("routes.py", "static")}
    for template in (root / "templates").glob("*.html"):
        assert "workspace" not in template.read_text(), template.name
