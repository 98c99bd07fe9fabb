"""The lab's walks over a workspace: scrubbing what a sandbox left, measuring what it holds.

Both walk a tree the sandbox controls, so neither may follow a symlink out of it.
"""

from __future__ import annotations

import os
import stat

import pytest

from aarlab.sandbox import workspace
from aarlab.sandbox.hostuser import is_sandbox_uid, privileged, sandbox_ids


def mode(p) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def test_scrub_clears_dangerous_bits_and_follows_no_symlink(tmp_path):
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "d").mkdir(parents=True)
    outside.mkdir()
    target = outside / "tool"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o4755)
    (ws / "suid").write_text("x")
    (ws / "suid").chmod(0o6777)
    (ws / "d").chmod(0o3777)
    (ws / "link").symlink_to(target)
    (ws / "d" / "deeper").symlink_to(outside)
    changed = workspace.scrub(ws, None, 100)
    assert changed == 2
    assert mode(ws / "suid") == 0o774 and mode(ws / "d") == 0o774  # o+r is harmless
    assert mode(target) == 0o4755  # the link's target is not ours to touch


@pytest.mark.skipif(not privileged(), reason="making a device node needs root")
def test_scrub_removes_devices_and_gives_everything_to_the_sandbox(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    os.mknod(ws / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (ws / "mine").write_text("x")
    (ws / "link").symlink_to("/etc/passwd")
    ids = sandbox_ids("r1")
    workspace.prepare(ws, ids, 100)
    assert not (ws / "null").exists()
    for p in (ws, ws / "mine", ws / "link"):
        st = p.lstat()
        assert (st.st_uid, st.st_gid) == ids
    assert mode(ws) == 0o700 and is_sandbox_uid(ids[0])
    assert os.stat("/etc/passwd").st_uid == 0


def test_usage_counts_blocks_once_and_stops_at_the_limit(tmp_path):
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (outside / "big").write_bytes(os.urandom(1 << 20))
    (ws / "data").write_bytes(os.urandom(256 << 10))
    os.link(ws / "data", ws / "hardlink")
    (ws / "out").symlink_to(outside)
    with open(ws / "sparse", "wb") as f:
        f.truncate(1 << 30)  # a 1 GiB hole takes no disk
    u = workspace.usage(ws, 100)
    assert u.files == 4  # entries; the bytes of data and its hard link count once
    assert 256 << 10 <= u.bytes < 512 << 10
    for i in range(10):
        (ws / f"f{i}").touch()
    with pytest.raises(workspace.WalkLimit, match="more than 8 files"):
        workspace.usage(ws, 8)


def test_usage_stops_at_depth(tmp_path):
    d = tmp_path / "ws"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY)
    try:
        for _ in range(workspace.MAX_DEPTH + 2):  # relative mkdirs: no PATH_MAX in the way
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    with pytest.raises(workspace.WalkLimit, match="deeper"):
        workspace.usage(d, 10_000)


def test_sandbox_uids_are_never_root_and_differ_by_name():
    if not privileged():
        assert sandbox_ids("r1") is None
        return
    a, b = sandbox_ids("r1"), sandbox_ids("r2")
    assert a[0] != b[0] and a[1] == b[1]
    assert all(is_sandbox_uid(x[0]) and x[0] > 65535 for x in (a, b))
