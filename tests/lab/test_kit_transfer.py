"""Task kits reaching other nodes: over the server's API (a deterministic, verified archive) or
from a shared filesystem, and never a byte of the answer key.

The API tests talk HTTP over a Unix socket to a real server (``ServerThread``, uvicorn) holding
a copy of the tiny snli-pref task; tests that change a kit use their own copy.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from aarlab.client import LabClient, NotFound
from aarlab.config import Settings
from aarlab.errors import AarlabError, TaskNotBuiltError
from aarlab.lab.kit_cache import copy_kit, fetch_kit
from aarlab.lab.server_thread import ServerThread
from aarlab.server.app import create_app
from aarlab.store.db import Store
from aarlab.tasks.kit_archive import kit_archive
from aarlab.tasks.paths import answer_key_dir, kit_dir

ADMIN = "kit-test-admin"
TASK = "snli-pref"
CANARY = "answer-key-canary-7f3a9c"


def home_with_task(root: Path, tiny_snli, sources: Path) -> Settings:
    """A fresh AARLAB_HOME holding a copy of the tiny snli-pref task, plus a canary file in its
    answer key that must never show up in anything a kit transfer produces."""
    kit, key = tiny_snli
    home = root / "home"
    shutil.copytree(kit.dir, home / "tasks" / TASK / "kit")
    shutil.copytree(key.dir, home / "answer-keys" / TASK)
    (home / "answer-keys" / TASK / "canary.txt").write_text(CANARY)
    return Settings(home=home, sources_root=sources, admin_token=ADMIN,
                    db_url=f"sqlite:///{root / 'lab.db'}")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def register(http: httpx.Client | TestClient, name: str) -> dict[str, str]:
    r = http.post("/v1/admin/researchers", json={"name": name},
                  headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@dataclass
class Lab:
    settings: Settings
    socket: Path
    token: str

    def client(self, token: str | None = None) -> LabClient:
        return LabClient(socket=self.socket, token=self.token if token is None else token)

    def raw(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)),
                            base_url="http://lab")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_snli, settings):
    s = home_with_task(tmp_path_factory.mktemp("kit-lab"), tiny_snli, settings.sources_dir)
    sock_dir = Path(tempfile.mkdtemp(prefix="kit-"))  # AF_UNIX paths are capped at 107 bytes
    server = ServerThread(s, Store(s.database_url), sock_dir / "lab.sock",
                          dashboard_socket=sock_dir / "web.sock")
    server.start()
    try:  # the admin API is on the person's socket, never the researchers'
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(server.dashboard_socket)),
                          base_url="http://lab") as http:
            who = register(http, "ray-node")
        yield Lab(s, server.socket, who["Authorization"].removeprefix("Bearer "))
    finally:
        server.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_researcher_downloads_the_kit_byte_for_byte(lab, tmp_path):
    cache = tmp_path / "node-cache"
    with lab.client() as c:
        digest = c.kit_digest(TASK)
        got = fetch_kit(c, TASK, cache)
        sha = c.download_kit(TASK, tmp_path / "again.tar.gz")
    assert digest["task"] == TASK and sha == digest["sha256"]
    assert digest["bytes"] == (tmp_path / "again.tar.gz").stat().st_size
    assert got == cache / f"{TASK}-{digest['sha256'][:16]}" / "kit"
    assert tree(got) == tree(kit_dir(lab.settings, TASK))
    assert sorted(p.name for p in cache.iterdir()) == [got.parent.name]  # no temp files left

    with lab.raw() as http:
        r = http.get(f"/v1/tasks/{TASK}/kit", headers={"Authorization": f"Bearer {lab.token}"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/gzip"
    assert r.headers["x-aarlab-kit-sha256"] == digest["sha256"]
    assert r.content == (tmp_path / "again.tar.gz").read_bytes()


def test_archive_holds_the_kit_and_nothing_of_the_answer_key(lab, tmp_path):
    with lab.client() as c:
        c.download_kit(TASK, tmp_path / "kit.tar.gz")
    data = (tmp_path / "kit.tar.gz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        members = tf.getmembers()
        contents = {m.name: tf.extractfile(m).read() for m in members}
    assert all(m.isfile() and m.mtime == 0 and m.uid == m.gid == 0 for m in members)
    assert [m.name for m in members] == sorted(contents)
    assert set(contents) == set(tree(kit_dir(lab.settings, TASK)))

    key_dir = answer_key_dir(lab.settings, TASK)
    key_files = {p.relative_to(key_dir).as_posix(): p.read_bytes()
                 for p in key_dir.rglob("*") if p.is_file()}
    assert {"labels.json", "parts.json", "train_label.jsonl", "canary.txt"} <= set(key_files)
    assert not {Path(n).name for n in contents} & {Path(k).name for k in key_files}
    raw_tar = gzip.decompress(data)  # every byte the archive carries, headers included
    assert CANARY.encode() not in raw_tar
    for name, blob in key_files.items():
        assert blob not in raw_tar, name
    # The hidden labels: no row carries one (train_label's gold rows stay in the answer key),
    # and the test label table does not appear in any serialisation json would give it.
    assert not any("train_label" in n for n in contents)
    test_labels = json.loads(key_files["labels.json"])["test"]
    for name in ("test.jsonl", "train_unlabel.jsonl"):
        rows = [json.loads(line) for line in contents[name].splitlines()]
        assert rows and all("label" not in row for row in rows), name
    assert {row["id"] for row in map(json.loads, contents["test.jsonl"].splitlines())} \
        == set(test_labels)
    for dumped in (json.dumps(test_labels), json.dumps(test_labels, separators=(",", ":"))):
        assert dumped.encode() not in raw_tar


def test_no_token_is_401_and_unknown_task_is_404(lab):
    with lab.raw() as http:
        for path in (f"/v1/tasks/{TASK}/kit", f"/v1/tasks/{TASK}/kit/digest"):
            assert http.get(path).status_code == 401
            bad = http.get(path, headers={"Authorization": "Bearer not-a-token"})
            assert bad.status_code == 401 and "token" in bad.json()["detail"]
        r = http.get("/v1/tasks/no-such-task/kit/digest",
                     headers={"Authorization": f"Bearer {lab.token}"})
    assert r.status_code == 404 and "no-such-task" in r.json()["detail"]
    with lab.client() as c, pytest.raises(NotFound, match="tweets"):
        c.download_kit("tweets", Path(os.devnull))  # a real task this server has not built


def test_a_corrupted_download_is_refused_and_leaves_nothing(lab, tmp_path, monkeypatch):
    real = LabClient.download_kit

    def flipping(self, task: str, dest: Path) -> str:
        sha = real(self, task, dest)
        data = bytearray(dest.read_bytes())
        data[len(data) // 2] ^= 0x01
        dest.write_bytes(bytes(data))
        return sha  # the transport's word is not trusted: fetch_kit hashes the file itself

    monkeypatch.setattr(LabClient, "download_kit", flipping)
    cache = tmp_path / "node-cache"
    with lab.client() as c:
        want = c.kit_digest(TASK)["sha256"]
        with pytest.raises(AarlabError) as e:
            fetch_kit(c, TASK, cache)
    assert TASK in str(e.value) and want in str(e.value)
    assert "refusing" in str(e.value)
    assert list(cache.iterdir()) == []


def test_second_fetch_reuses_the_cache(lab, tmp_path, monkeypatch):
    cache = tmp_path / "node-cache"
    downloads = []
    real = LabClient.download_kit

    def counting(self, task: str, dest: Path) -> str:
        downloads.append(task)
        return real(self, task, dest)

    monkeypatch.setattr(LabClient, "download_kit", counting)
    with lab.client() as c:
        first = fetch_kit(c, TASK, cache)
        before = tree(first)
        second = fetch_kit(c, TASK, cache)
    assert first == second and downloads == [TASK] and tree(second) == before


def test_losing_a_race_uses_the_winners_copy(lab, tmp_path, monkeypatch):
    """Another process on the node installs the same kit while we download: we keep theirs."""
    cache = tmp_path / "node-cache"
    real = LabClient.download_kit
    kit = kit_dir(lab.settings, TASK)

    def racing(self, task: str, dest: Path) -> str:
        sha = real(self, task, dest)
        winner = cache / f"{task}-{sha[:16]}"
        shutil.copytree(kit, winner / "kit")
        (winner / "kit" / "winner").write_text("theirs")
        return sha

    monkeypatch.setattr(LabClient, "download_kit", racing)
    with lab.client() as c:
        got = fetch_kit(c, TASK, cache)
    assert (got / "winner").read_text() == "theirs"
    assert [p.name for p in cache.iterdir()] == [got.parent.name]


def test_digest_is_stable_across_app_instances_and_follows_rebuilds(tmp_path, tiny_snli,
                                                                    settings):
    s = home_with_task(tmp_path, tiny_snli, settings.sources_dir)
    store = Store(s.database_url)
    with TestClient(create_app(s, store), base_url="http://lab") as http:
        who = register(http, "alice")
        first = http.get(f"/v1/tasks/{TASK}/kit/digest", headers=who).json()
    archives = s.cache_dir / "kit-archives"
    shutil.rmtree(archives)  # a new server with an empty cache packs again ...
    later = 2_000_000_000
    for p in kit_dir(s, TASK).rglob("*"):
        os.utime(p, (later, later))  # ... and mtimes (which key the cache) do not matter
    with TestClient(create_app(s, Store(s.database_url)), base_url="http://lab") as http:
        second = http.get(f"/v1/tasks/{TASK}/kit/digest", headers=who).json()
        assert second == first and archives.is_dir()

        manifest = kit_dir(s, TASK) / "manifest.json"
        m = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**m, "rebuilt": True}))
        rebuilt = http.get(f"/v1/tasks/{TASK}/kit/digest", headers=who).json()
        assert rebuilt["sha256"] != first["sha256"]
        r = http.get(f"/v1/tasks/{TASK}/kit", headers=who)
        assert r.headers["x-aarlab-kit-sha256"] == rebuilt["sha256"]
    # The earlier build's archive was pruned: one archive and its note.
    assert len(list(archives.glob("*.tar.gz"))) == 1 and len(list(archives.glob("*.json"))) == 1


def test_concurrent_packing_gives_one_archive(tmp_path, tiny_snli, settings):
    s = home_with_task(tmp_path, tiny_snli, settings.sources_dir)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(kit_archive(s, TASK)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({(a.path, a.sha256, a.bytes) for a in results}) == 1
    assert [p.name for p in (s.cache_dir / "kit-archives").iterdir()
            if p.name.startswith(".")] == []  # no temp file left


def test_a_symlink_in_the_kit_is_refused(tmp_path, tiny_snli, settings):
    s = home_with_task(tmp_path, tiny_snli, settings.sources_dir)
    link = kit_dir(s, TASK) / "weak" / "labels"
    link.symlink_to(answer_key_dir(s, TASK) / "labels.json")
    with pytest.raises(AarlabError, match=r"weak/labels is a symlink"):
        kit_archive(s, TASK)
    with TestClient(create_app(s, Store(s.database_url)), base_url="http://lab") as http:
        r = http.get(f"/v1/tasks/{TASK}/kit", headers=register(http, "alice"))
    assert r.status_code == 500 and "symlink" in r.json()["detail"]
    assert not list((s.cache_dir / "kit-archives").glob("*.tar.gz"))

    link.unlink()
    (kit_dir(s, TASK) / "labels.json").write_text("{}")  # an answer-key file, copied in
    with pytest.raises(AarlabError, match="answer-key file"):
        kit_archive(s, TASK)


def test_unbuilt_task_is_refused(tmp_path, tiny_snli, settings):
    s = home_with_task(tmp_path, tiny_snli, settings.sources_dir)
    (answer_key_dir(s, TASK) / "reference.json").unlink()  # a build that never finished
    with pytest.raises(TaskNotBuiltError, match=f"{TASK}.*not built"):
        kit_archive(s, TASK)


def test_copy_kit_from_a_path_and_a_file_url(lab, tmp_path):
    kit = kit_dir(lab.settings, TASK)
    cache = tmp_path / "node-cache"
    by_path = copy_kit(str(kit), cache, lab.settings)
    by_url = copy_kit(kit.as_uri(), cache, lab.settings)
    assert by_path.name == by_url.name == "kit"
    assert by_path.parent.name.startswith("shared-")
    assert tree(by_path) == tree(by_url) == tree(kit)
    stamp = (by_path / "manifest.json").stat().st_mtime_ns
    assert copy_kit(str(kit), cache, lab.settings) == by_path  # cached: not copied again
    assert (by_path / "manifest.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in cache.iterdir()) == sorted([by_path.parent.name,
                                                              by_url.parent.name])


def test_copy_kit_refuses_answer_keys(lab, tmp_path):
    s, cache = lab.settings, tmp_path / "node-cache"
    keys = answer_key_dir(s, TASK)
    for url in (str(keys), keys.as_uri(), str(s.answer_keys_dir), str(s.home)):
        with pytest.raises(AarlabError, match="answer keys"):
            copy_kit(url, cache, s)
    # An answer key copied elsewhere, dressed up with a manifest, is still refused.
    fake = tmp_path / "looks-like-a-kit"
    shutil.copytree(keys, fake)
    shutil.copy(kit_dir(s, TASK) / "manifest.json", fake / "manifest.json")
    with pytest.raises(AarlabError, match="answer-key file"):
        copy_kit(str(fake), cache, s)
    with pytest.raises(AarlabError, match="no manifest.json"):
        copy_kit(str(tmp_path), cache, s)
    # A symlink to the answer key planted in a shared kit.
    planted = tmp_path / "planted"
    shutil.copytree(kit_dir(s, TASK), planted)
    (planted / "weak" / "more").symlink_to(keys)
    with pytest.raises(AarlabError, match="symlink"):
        copy_kit(str(planted), cache, s)
    assert not cache.exists() or list(cache.iterdir()) == []
