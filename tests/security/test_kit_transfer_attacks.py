"""Attacks on kit transfer: task names that try to walk out of the kits directory, and a server
(or a path between it and the node) that sends a hostile archive.

The routes are hit over HTTP on a real server (uvicorn on a Unix socket, in this process), with
every file-system call of the process watched: a refused name must not open, list or even stat
anything under the answer keys.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import httpx
import pytest

from aarlab.archive import UnsafeArchiveError
from aarlab.client import LabClient, NotFound
from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.lab.kit_cache import fetch_kit
from aarlab.lab.server_thread import ServerThread
from aarlab.store.db import Store
from tarballs import targz, tfile, tspecial

ADMIN = "kit-attack-admin"
TASK = "snli-pref"

TRAVERSALS = [
    "..%2Fanswer-keys", "..%2F..%2Fanswer-keys%2Fsnli-pref", "..", "%2e%2e", "../x",
    "snli-pref%2F..%2F..%2Fanswer-keys%2Fsnli-pref", "SNLI-PREF", "Snli-pref", "a" * 65,
    "snli-pref%00", "snli-pref%20", "-snli", "_snli", ".snli-pref", "snli.pref",
    "%2Fetc%2Fpasswd", "snli-pref%5C..%5Canswer-keys",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_snli, settings):
    kit, key = tiny_snli
    root = tmp_path_factory.mktemp("kit-attacks")
    s = Settings(home=root / "home", sources_root=settings.sources_dir, admin_token=ADMIN,
                 db_url=f"sqlite:///{root / 'lab.db'}")
    shutil.copytree(kit.dir, s.kits_dir / TASK / "kit")
    shutil.copytree(key.dir, s.answer_keys_dir / TASK)
    sock_dir = Path(tempfile.mkdtemp(prefix="kit-"))  # AF_UNIX paths are capped at 107 bytes
    server = ServerThread(s, Store(s.database_url), sock_dir / "lab.sock",
                          dashboard_socket=sock_dir / "web.sock")
    server.start()
    http = httpx.Client(transport=httpx.HTTPTransport(uds=str(server.socket)),
                        base_url="http://lab")
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(server.dashboard_socket)),
                          base_url="http://lab") as person:  # the admin API is not on lab.sock
            r = person.post("/v1/admin/researchers", json={"name": "mallory"},
                            headers={"Authorization": f"Bearer {ADMIN}"})
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield s, http, server.socket
    finally:
        http.close()
        server.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture
def watch(monkeypatch, lab):
    """Every open/list/stat this process makes under the answer keys, as (call, path)."""
    keys = str(lab[0].answer_keys_dir.resolve())
    seen: list[tuple[str, str]] = []

    def wrap(owner, name: str) -> None:
        real = getattr(owner, name)

        def spy(path=".", *args, **kwargs):
            target = path if isinstance(path, str | bytes | os.PathLike) else None
            if target is not None:
                p = os.fsdecode(os.fspath(target))
                if os.path.abspath(p).startswith(keys):
                    seen.append((name, p))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(owner, name, spy)

    wrap(builtins, "open")
    wrap(io, "open")
    for name in ("open", "stat", "lstat", "scandir", "listdir"):
        wrap(os, name)
    # The spy itself works: reading the answer key is seen.
    (lab[0].answer_keys_dir / TASK / "labels.json").read_bytes()
    assert seen and seen[-1][1].endswith("labels.json")
    seen.clear()
    return seen


@pytest.mark.parametrize("name", TRAVERSALS)
def test_traversal_names_are_404_and_touch_no_answer_key(lab, watch, name):
    _, http, _ = lab
    for suffix in ("/kit", "/kit/digest"):
        r = http.get(f"/v1/tasks/{name}{suffix}")
        assert r.status_code == 404, (name, suffix, r.status_code)
        assert r.headers["content-type"] == "application/json"
        # Either no route matched, or the kit route refused the name and named it.
        detail = r.json()["detail"]
        assert detail == "Not Found" or detail.startswith("task: no kit for task "), detail
    assert watch == []


def test_client_quotes_names_and_a_valid_request_opens_no_answer_key(lab, watch, tmp_path):
    s, http, sock = lab
    with LabClient(socket=sock, token=http.headers["Authorization"].split()[1]) as c:
        for name in ("../answer-keys/snli-pref", "../../answer-keys", "snli-pref/../x"):
            with pytest.raises(NotFound):
                c.kit_digest(name)
        assert watch == []
        c.download_kit(TASK, tmp_path / "kit.tar.gz")
    # A real download checks that the task is built and that the kit lies apart from the answer
    # keys (stat calls); it never opens or lists anything there.
    assert watch and {call for call, _ in watch} <= {"stat", "lstat"}


def test_fetch_kit_refuses_bad_names_and_digests_before_downloading(tmp_path):
    class Hostile:
        def __init__(self, sha: str):
            self.sha, self.downloads = sha, 0

        def kit_digest(self, task: str) -> dict:
            return {"task": task, "sha256": self.sha, "bytes": 1}

        def download_kit(self, task: str, dest: Path) -> str:
            self.downloads += 1
            raise AssertionError("must not download")

    for name in ("../x", "..", "a/b", "A", ""):
        with pytest.raises(AarlabError, match="not a task name"):
            fetch_kit(Hostile("0" * 64), name, tmp_path / "cache")
    for sha in ("../../etc", "0" * 63, "G" * 64, None):
        client = Hostile(sha)
        with pytest.raises(AarlabError, match="not a sha256"):
            fetch_kit(client, TASK, tmp_path / "cache")
        assert client.downloads == 0
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("members", [
    [tfile("manifest.json", b"{}"), tfile("../escaped")],
    [tfile("manifest.json", b"{}"), tfile("/tmp/abs")],
    [tfile("manifest.json", b"{}"), tspecial("k", tarfile.SYMTYPE, "/")],
    [tfile("manifest.json", b"{}"), tspecial("h", tarfile.LNKTYPE, "/etc/passwd")],
    [tfile("manifest.json", b"\0" * (20 << 20))],  # a bomb past the ratio cap
], ids=["dotdot", "absolute", "symlink", "hardlink", "bomb"])
def test_a_hostile_archive_with_a_matching_digest_writes_nothing(tmp_path, members):
    """A compromised server can make the digest match; the extractor still refuses."""
    data = targz(*members)

    class Compromised:
        def kit_digest(self, task: str) -> dict:
            return {"task": task, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

        def download_kit(self, task: str, dest: Path) -> str:
            dest.write_bytes(data)
            return hashlib.sha256(data).hexdigest()

    cache = tmp_path / "node" / "cache"
    with pytest.raises(UnsafeArchiveError):
        fetch_kit(Compromised(), TASK, cache)
    assert list(cache.iterdir()) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "node"]
