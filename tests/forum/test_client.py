"""``LabClient``'s forum and snapshot calls against a real ``aarlab serve`` on a Unix socket."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from aarlab.client import InvalidRequest, LabClient, LabError, NotFound
from aarlab.client.forum import pack_workspace

ADMIN = "client-test-admin"


@pytest.fixture
def server(tmp_path):
    sock = tmp_path / "lab.sock"
    env = {**os.environ, "AARLAB_HOME": str(tmp_path / "home"), "AARLAB_ADMIN_TOKEN": ADMIN}
    env.pop("AARLAB_DB_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "aarlab.cli", "serve", "--socket", str(sock)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _up(sock):  # the socket file exists before the app accepts requests
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server did not start: {proc.stdout.read().decode()}")
            time.sleep(0.2)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _up(sock) -> bool:
    if not sock.exists():
        return False
    try:
        with LabClient(socket=sock) as c:
            return c.health()["ok"]
    except LabError:
        return False


def test_client_forum_and_snapshots_over_a_unix_socket(server, tmp_path):
    with LabClient(socket=server, token=ADMIN) as admin:
        alice_tok = admin.add_researcher("alice")["token"]
        bob_tok = admin.add_researcher("bob")["token"]
    alice, bob = LabClient(socket=server, token=alice_tok), LabClient(socket=server, token=bob_tok)

    with pytest.raises(InvalidRequest, match="submission_id"):
        alice.post_finding("result", "PGR 0.99, trust me")
    f = alice.post_finding("hypothesis", "Soft labels hurt", "The student copies the teacher.",
                           tags=["labels"], task="tweets")
    alice.edit_finding(f["id"], body="The student copies the teacher's mistakes.")
    bob.vote(f["id"], 1)
    bob.vote(f["id"], 1)
    bob.comment(f["id"], "Seen the same on snli-pref.")
    hits = bob.findings("mistakes", kind="hypothesis", task="tweets")
    assert [h["id"] for h in hits["items"]] == [f["id"]]
    detail = bob.finding(f["id"])
    assert detail["score"] == 1 and len(detail["revisions"]) == 2
    assert detail["comments"][0]["author"]["name"] == "bob"

    ws = tmp_path / "ws"
    (ws / "method").mkdir(parents=True)
    (ws / "train.py").write_text("print('w2s')\n")
    (ws / "method" / "loss.py").write_text("# loss\n")
    (ws / ".git").mkdir()
    (ws / ".git" / "HEAD").write_text("ref\n")
    (ws / "secret").symlink_to("/etc/passwd")  # never packed
    assert pack_workspace(ws) == pack_workspace(ws)  # same workspace, same snapshot id
    snap = alice.upload_snapshot(ws, label="soft-label study")
    assert snap["n_files"] == 2
    info = bob.extract_snapshot(snap["id"], tmp_path / "copy")
    assert sorted(e.path for e in info.files) == ["method/loss.py", "train.py"]
    assert (tmp_path / "copy" / "train.py").read_text() == "print('w2s')\n"
    assert not (tmp_path / "copy" / "secret").exists()
    assert [s["id"] for s in bob.snapshots(uploader="alice")] == [snap["id"]]
    with pytest.raises(NotFound):
        bob.snapshot("0" * 64)
    alice.close()
    bob.close()
