"""A researcher plants links in its workspace; the lab must read none of them, on any route.

The red team's attack (issue 15): inside a sandbox, make ``notebook.md`` a symlink to the answer
key's ``labels.json`` (or to ``/proc/self/environ``: the lab's admin token and API keys), then
fetch the dashboard's researcher page, which the lab rendered by ``open()``-ing that name. Here
the workspaces are planted directly on disk, every way we know (absolute and relative symlinks,
a hard link, a FIFO that would hang the lab, a symlinked directory), the secrets are in a real
``aarlab serve`` process's environment, and every GET route of both of its listeners is fetched
over HTTP as the public, a researcher and the admin. No answer-key byte and no secret may come
back, and the sandbox socket must not serve the dashboard at all. (Since issue 17 the dashboard
opens no workspace: a page shows only what the researcher published through the lab's API.)

``safe_files`` itself is attacked below the routes: it is the one helper every lab-side read of
a sandbox-writable path goes through.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from aarlab import safe_files
from aarlab.config import Settings
from aarlab.lab.tables import LabMember, LabRun
from aarlab.server.app import routers_for
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher

RUN = uuid.uuid4().hex[:12]
KEY_CANARY = f"ANSWERKEY-{RUN}"  # inside the planted answer key
API_KEY = f"sk-ant-api-canary-{RUN}"  # the lab's provider key, in the server's environment
OPENAI_KEY = f"sk-openai-canary-{RUN}"
ADMIN = f"admin-canary-{RUN}"
JSONL_CANARY = f"OUTSIDE-NOTES-{RUN}"  # a JSON-lines file outside the workspace
SECRETS = (KEY_CANARY, API_KEY, OPENAI_KEY, JSONL_CANARY)


# --- the helper itself ------------------------------------------------------------------------


@pytest.fixture
def box(tmp_path):
    """A workspace root, and a private file outside it."""
    root, outside = tmp_path / "ws", tmp_path / "answer-keys" / "x"
    root.mkdir()
    outside.mkdir(parents=True)
    (outside / "labels.json").write_text(json.dumps({"test": {"r1": "A"}, "tag": KEY_CANARY}))
    (root / "ok.md").write_text("fine\n")
    (root / "sub").mkdir()
    (root / "sub" / "n.txt").write_text("nested\n")
    return root, outside / "labels.json"


def test_a_plain_file_reads_and_a_tail_is_cut(box):
    root, _ = box
    assert safe_files.read_inside(root, "ok.md", 100) == b"fine\n"
    assert safe_files.read_inside(root, "sub/n.txt", 100) == b"nested\n"
    (root / "big").write_bytes(b"x" * 1000 + b"END")
    assert safe_files.tail_inside(root, "big", 3) == (b"END", True)
    with pytest.raises(safe_files.FileTooLarge, match="larger than 10 bytes"):
        safe_files.read_inside(root, "big", 10)
    with pytest.raises(FileNotFoundError):
        safe_files.read_inside(root, "missing", 10)


@pytest.mark.parametrize("plant, why", [
    (lambda root, key: (root / "n.md").symlink_to(key), "symlink"),
    (lambda root, key: (root / "n.md").symlink_to(os.path.relpath(key, root)), "symlink"),
    (lambda root, key: (root / "n.md").symlink_to("/proc/self/environ"), "symlink"),
    (lambda root, key: os.link(key, root / "n.md"), "hard links"),
    (lambda root, key: os.mkfifo(root / "n.md"), "not a regular file"),
    (lambda root, key: (root / "n.md").mkdir(), "directory"),
])
def test_links_fifos_and_directories_are_refused(box, plant, why):
    root, key = box
    plant(root, key)
    t0 = time.monotonic()
    with pytest.raises(safe_files.UnsafePath, match=why):
        safe_files.read_inside(root, "n.md", 1 << 20)
    with pytest.raises(safe_files.UnsafePath, match=why):
        safe_files.tail_inside(root, "n.md", 1 << 20)
    assert time.monotonic() - t0 < 5  # a FIFO is refused, never waited on


def test_the_sandbox_file_api_refuses_a_hard_link_like_safe_files(box):
    """``Sandbox.read_file`` (``sandbox.files.read_beneath``) reads for the lab process: a
    second name for a file from outside the workspace is refused there too."""
    from aarlab.sandbox.errors import SandboxPathError
    from aarlab.sandbox.files import read_beneath

    root, key = box
    os.link(key, root / "n.md")
    with pytest.raises(SandboxPathError, match="hard links"):
        read_beneath(root, ("n.md",), 1 << 20, "n.md")
    assert read_beneath(root, ("ok.md",), 100, "ok.md") == b"fine\n"


def test_a_symlinked_directory_anywhere_on_the_path_is_refused(box):
    root, key = box
    (root / "keys").symlink_to(key.parent, target_is_directory=True)
    with pytest.raises(safe_files.UnsafePath, match="symlink"):
        safe_files.read_inside(root, "keys/labels.json", 1 << 20)
    with pytest.raises(safe_files.UnsafePath, match="symlink"):
        safe_files.list_inside(root, "keys")
    # A root that is itself a symlink is refused too (a swapped workspace).
    (root.parent / "alias").symlink_to(root, target_is_directory=True)
    with pytest.raises(safe_files.UnsafePath, match="root"):
        safe_files.read_inside(root.parent / "alias", "ok.md", 100)


@pytest.mark.parametrize("rel", ["../answer-keys/x/labels.json", "/etc/passwd", "sub/../../x",
                                 "a\0b", "."])
def test_paths_that_leave_the_root_are_refused(box, rel):
    root, _ = box
    with pytest.raises(safe_files.UnsafePath):
        safe_files.read_inside(root, rel, 100)


def test_a_symlink_swapped_in_after_the_look_is_refused(box, monkeypatch):
    """The lstat sees a file, then the researcher swaps in a symlink: O_NOFOLLOW refuses it."""
    root, key = box
    real_open = os.open

    def swap_then_open(path, flags, *a, **kw):  # noqa: ANN001
        if path == "ok.md":
            (root / "ok.md").unlink()
            (root / "ok.md").symlink_to(key)
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(safe_files.os, "open", swap_then_open)
    with pytest.raises(safe_files.UnsafePath, match="symlink"):
        safe_files.read_inside(root, "ok.md", 1 << 20)


def test_listing_shows_links_as_links_and_never_follows_them(box):
    root, key = box
    (root / "link").symlink_to(key.parent, target_is_directory=True)
    os.mkfifo(root / "pipe")
    kinds = {e.name: e.kind for e in safe_files.list_inside(root)}
    assert kinds == {"ok.md": "file", "sub": "dir", "link": "symlink", "pipe": "other"}


# --- every route of a real server, against planted workspaces ---------------------------------


def _plant(ws: Path, variant: str, key: Path, notes: Path) -> None:
    ws.mkdir(parents=True)
    md, jl = ws / "notebook.md", ws / "notebook.jsonl"
    if variant == "abs-symlink":
        md.symlink_to(key)
        jl.symlink_to(notes)
    elif variant == "rel-symlink":  # as the red team did: the host layout from mountinfo
        md.symlink_to(os.path.relpath(key, ws))
        jl.symlink_to(os.path.relpath(notes, ws))
    elif variant == "environ":
        md.symlink_to("/proc/self/environ")
        jl.symlink_to("/proc/self/environ")
    elif variant == "hardlink":
        os.link(key, md)
        os.link(notes, jl)
    elif variant == "fifo":  # the lab's open() would block on it forever
        os.mkfifo(md)
        os.mkfifo(jl)
    elif variant == "dir-symlink":
        md.symlink_to(key.parent, target_is_directory=True)
        jl.symlink_to(notes.parent, target_is_directory=True)
    else:
        raise AssertionError(variant)


VARIANTS = ["abs-symlink", "rel-symlink", "environ", "hardlink", "fifo", "dir-symlink"]


class Served:
    """``aarlab serve`` as a child process whose environment holds the lab's secrets, over a
    store seeded with one researcher per planted workspace."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.settings = Settings(home=self.home, db_url=f"sqlite:///{root / 'lab.db'}",
                                 admin_token=ADMIN)
        key_dir = self.settings.answer_keys_dir / "x"
        key_dir.mkdir(parents=True)
        self.key = key_dir / "labels.json"
        self.key.write_text(json.dumps({"test": {f"row-{i}": "A" for i in range(50)},
                                        "split": KEY_CANARY}))
        self.notes = self.home / "private" / "notes.jsonl"
        self.notes.parent.mkdir(parents=True)
        self.notes.write_text(json.dumps({"why": JSONL_CANARY, "time": 1.0}) + "\n")
        store = Store(self.settings.database_url)
        store.create_all()
        self.tokens: dict[str, str] = {}
        with store.session() as s:
            lab = LabRun(task="x", status="running", config={})
            s.add(lab)
            s.flush()
            for variant in VARIANTS:
                r, token = add_researcher(s, variant)
                self.tokens[variant] = token
                ws = self.home / "labs" / "1" / "workspaces" / variant
                _plant(ws, variant, self.key, self.notes)
                s.add(LabMember(lab_id=lab.id, researcher_id=r.id, policy="search",
                                direction="d", workspace=str(ws)))
        store.engine.dispose()
        self.sock_dir = Path(tempfile.mkdtemp(prefix="ws-"))  # AF_UNIX paths: 107 bytes
        self.person, self.sandbox = self.sock_dir / "web.sock", self.sock_dir / "lab.sock"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AARLAB_")}
        env |= {"AARLAB_HOME": str(self.home), "AARLAB_DB_URL": self.settings.database_url,
                "AARLAB_ADMIN_TOKEN": ADMIN, "ANTHROPIC_API_KEY": API_KEY,
                "OPENAI_API_KEY": OPENAI_KEY}
        self.log = self.sock_dir / "server.log"  # a file: an unread pipe fills and hangs it
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aarlab.commands.serve", "--socket", str(self.person),
                 "--sandbox-socket", str(self.sandbox)],
                env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while not (self._up(self.person) and self._up(self.sandbox)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("server did not start: "
                            f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    @staticmethod
    def _up(sock: Path) -> bool:
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)),
                              base_url="http://lab", timeout=5) as c:
                return c.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, sock: Path, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)),
                            base_url="http://lab", headers=headers, timeout=15)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = Served(tmp_path_factory.mktemp("planted"))
    yield s
    s.stop()


def _leaks(text: str) -> list[str]:
    return [x for x in SECRETS + (ADMIN,) if x in text]


def _fill(path: str, name: str) -> str:
    """A concrete URL for a route's path template: the researcher, task x, ids that exist."""
    values = {"name": name, "task": "x", "ref": name, "snapshot_id": "0" * 64,
              "path": "notebook.md"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def _get_routes(role: str) -> list[str]:
    """Every GET path a listener of ``role`` serves (the app's own list, not ours)."""
    return sorted({r.path for router in routers_for(role) for r in router.routes
                   if isinstance(r, APIRoute) and "GET" in r.methods})


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_researcher_page_shows_no_planted_file(served, variant):
    for who in (None, ADMIN):
        with served.client(served.person, who) as c:
            t0 = time.monotonic()
            r = c.get(f"/researchers/{variant}")
            assert time.monotonic() - t0 < 10  # a FIFO did not hang the lab
        assert r.status_code == 200, r.text
        assert _leaks(r.text) == [] and "row-1" not in r.text
        # The page reads no workspace at all: it shows what the researcher published (nothing).
        assert "No notebook published yet." in r.text and variant in r.text


def test_no_get_route_of_either_listener_returns_a_secret(served):
    """Every GET route, filled in for every planted researcher, as the public, a researcher and
    the admin, on the person's listener and the sandbox's."""
    fetched = 0
    for sock, role in ((served.person, "all"), (served.sandbox, "researcher")):
        paths = _get_routes(role)
        assert any("researchers" in p for p in paths) == (role == "all")
        for variant in VARIANTS:
            for who in (None, served.tokens[variant], ADMIN):
                with served.client(sock, who) as c:
                    for path in paths:
                        r = c.get(_fill(path, variant))
                        fetched += 1
                        assert r.status_code < 500, (path, r.text[:300])
                        body = r.text + json.dumps(dict(r.headers))
                        # The admin's own token may come back to the admin (its login cookie).
                        leaks = [x for x in _leaks(body) if not (who == ADMIN and x == ADMIN)]
                        assert leaks == [], (role, path, who)
    assert fetched > 300


def test_the_sandbox_socket_serves_no_dashboard_and_no_admin_route(served):
    token = served.tokens["abs-symlink"]
    with served.client(served.sandbox, token) as c:
        for path in ("/", "/researchers", "/researchers/abs-symlink", "/audit", "/login",
                     "/leaderboard", "/forum", "/api/live", "/static/app.css", "/tasks"):
            assert c.get(path).status_code == 404, path
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/me").status_code == 200  # the researcher API is there
        assert c.get("/v1/forum/findings").status_code == 200
    # Not even the admin token opens an admin route there (a stolen one gains nothing).
    with served.client(served.sandbox, ADMIN) as c:
        assert c.get("/v1/admin/researchers").status_code == 404
        # (a request with a body and no researcher's token is refused before it is read)
        assert c.post("/v1/admin/researchers", json={"name": "eve"}).status_code == 401
        assert c.get("/v1/forum/findings").status_code == 401  # not a researcher either
    with served.client(served.person) as c:
        assert c.get("/").status_code == 200
        assert c.get("/researchers/abs-symlink").status_code == 200
    with served.client(served.person, ADMIN) as c:
        assert c.get("/v1/admin/researchers").status_code == 200


def test_a_fifo_does_not_stall_other_requests(served):
    """The lab serves everyone from one process: a planted FIFO must not take a worker."""
    out: list[int] = []

    def hit() -> None:
        with served.client(served.person) as c:
            out.append(c.get("/researchers/fifo").status_code)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert out == [200] * 4


def test_a_sandbox_cannot_hard_link_a_file_from_outside_its_workspace(tmp_path):
    """Why a hard link is refused only as defence in depth: bind mounts are separate mounts,
    so ``link()`` from the kit or the host's /usr into the workspace gives EXDEV."""
    from aarlab.sandbox import make_sandbox, sandbox_available
    from aarlab.sandbox.spec import SandboxSpec

    ok, why = sandbox_available()
    if not ok:
        pytest.skip(why)
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "manifest.json").write_text("{}")
    sb = make_sandbox(SandboxSpec(name="t", workspace=tmp_path / "ws", kit=kit),
                      settings=Settings(home=tmp_path / "home"))
    try:
        r = sb.exec(["bash", "-c", "ln /kit/manifest.json a; ln /usr/bin/env b; ls"])
    finally:
        sb.terminate()
    assert r.stderr.count("Invalid cross-device link") == 2
    assert list((tmp_path / "ws").iterdir()) == []
