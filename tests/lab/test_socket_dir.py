"""A researcher's forwarding-socket directory: reused on restart, swept when its actor died,
and never placed where another user could reach it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from aarlab.lab.backends import socket_dir
from aarlab.lab.backends.socket_dir import claim_socket_dir, sweep_dead


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _parent(tmp) -> os.PathLike:
    return tmp / f"aarlab-fwd-{os.getuid()}"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stamp(directory, **fields) -> None:
    owner = socket_dir._stamp(os.getpid()) | fields
    (directory / "owner.json").write_text(json.dumps(owner))


def test_a_restarted_actor_takes_over_its_directory_and_researchers_do_not_share(tmp):
    first = claim_socket_dir("token-of-alice")
    (first / "lab.sock").write_text("left by the killed actor")
    again = claim_socket_dir("token-of-alice")
    assert again == first and again.parent == _parent(tmp)
    assert claim_socket_dir("token-of-bob") != first
    assert oct(_parent(tmp).stat().st_mode & 0o777) == "0o700"
    assert oct(first.stat().st_mode & 0o777) == "0o700"
    # The token itself never appears in a path or a file.
    assert "alice" not in str(first)
    assert "alice" not in (first / "owner.json").read_text()
    # A unix socket's path must fit in 108 bytes; the part added to the temp dir is short.
    assert len(str(first / "lab.sock")) - len(str(tmp)) < 50


def test_a_claim_sweeps_the_directories_of_actors_that_died_on_this_node(tmp):
    claim_socket_dir("live")
    parent = _parent(tmp)
    dead = parent / "dead"
    dead.mkdir()
    (dead / "lab.sock").write_text("")
    _stamp(dead, pid=_dead_pid())
    other_host = parent / "other-host"
    other_host.mkdir()
    _stamp(other_host, pid=_dead_pid(), host="another-node")
    other_ns = parent / "other-ns"
    other_ns.mkdir()
    _stamp(other_ns, pid=_dead_pid(), pid_ns="pid:[1]")
    unstamped = parent / "being-set-up"
    unstamped.mkdir()
    garbled = parent / "garbled"
    garbled.mkdir()
    (garbled / "owner.json").write_text("{not json")
    outside = tmp / "outside"
    outside.mkdir()
    _stamp(outside, pid=_dead_pid())
    (parent / "link").symlink_to(outside)

    mine = claim_socket_dir("new")
    left = {p.name for p in parent.iterdir()}
    assert "dead" not in left
    assert {"other-host", "other-ns", "being-set-up", "garbled", "link", mine.name} <= left
    assert outside.is_dir(), "the sweep followed a link out of its directory"
    # The live actor's directory (this process) stays; sweeping again removes nothing more.
    assert sweep_dead(parent) == []


@pytest.mark.parametrize("attack", ["symlink", "open-to-others", "a-file"])
def test_a_parent_another_user_could_have_prepared_is_not_used(tmp, attack):
    parent = _parent(tmp)
    elsewhere = tmp / "attacker"
    elsewhere.mkdir(mode=0o777)
    if attack == "symlink":
        parent.symlink_to(elsewhere)
    elif attack == "open-to-others":
        parent.mkdir()
        parent.chmod(0o777)
    else:
        parent.write_text("")
    claimed = claim_socket_dir("token")
    assert claimed.parent == tmp and claimed.name.startswith("aarlab-fwd-")
    assert claimed != parent
    assert oct(claimed.stat().st_mode & 0o777) == "0o700"
    assert list(elsewhere.iterdir()) == []
