"""``read_file`` / ``write_file``: round trips, limits, and clear refusals."""

from __future__ import annotations

import os
import threading

import pytest

from aarlab.sandbox import Limits, SandboxLimitError, SandboxPathError


def test_round_trip_text_binary_and_nested(make):
    sb = make()
    sb.write_file("a/b/c.txt", "héllo\n")
    sb.write_file(f"{sb.workspace_path}/bin.dat", b"\x00\xff\x10")
    assert sb.read_file("a/b/c.txt") == "héllo\n"
    assert sb.read_file("bin.dat", text=False) == b"\x00\xff\x10"
    assert sb.exec(["cat", "a/b/c.txt"]).stdout == "héllo\n"  # the same file inside


def test_overwrite_is_atomic_and_leaves_no_temp_files(make):
    sb = make()
    sb.write_file("x.json", "1")
    sb.write_file("x.json", "2")
    assert sb.read_file("x.json") == "2"
    assert sorted(os.listdir(sb.spec.workspace)) == ["x.json"]


def test_missing_and_directory(make):
    sb = make()
    sb.write_file("d/f", "x")
    with pytest.raises(FileNotFoundError):
        sb.read_file("nope.txt")
    with pytest.raises(IsADirectoryError):
        sb.read_file("d")
    with pytest.raises(IsADirectoryError):
        sb.write_file("d", "over a directory")


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "/workspace-other/x", "."])
def test_paths_outside_the_workspace_are_refused(make, path):
    sb = make()
    with pytest.raises(SandboxPathError):
        sb.read_file(path)
    with pytest.raises(SandboxPathError):
        sb.write_file(path, "x")


def test_transfer_limit(make):
    sb = make(limits=Limits(transfer_bytes=2048))
    with pytest.raises(SandboxLimitError, match="over 2048"):
        sb.write_file("big", b"x" * 2049)
    assert sb.exec(["python", "-c", "open('big', 'wb').write(b'x' * 4096)"]).ok
    with pytest.raises(SandboxLimitError, match="larger than 2048"):
        sb.read_file("big")
    # a caller's own, smaller cap (the LLM tools': what they read into the lab process)
    sb.write_file("mid", b"x" * 1500)
    with pytest.raises(SandboxLimitError, match="larger than 1024"):
        sb.read_file("mid", max_bytes=1024)
    assert len(sb.read_file("mid", max_bytes=1500)) == 1500


def test_non_utf8_text_raises_but_bytes_work(make):
    sb = make()
    sb.write_file("latin", "café".encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        sb.read_file("latin")
    assert sb.read_file("latin", text=False) == "café".encode("latin-1")


def test_a_fifo_is_refused_without_blocking_the_lab(make):
    sb = make()
    assert sb.exec(["mkfifo", "pipe"]).ok
    done = []
    t = threading.Thread(target=lambda: done.append(_raises(sb.read_file, "pipe")))
    t.start()
    t.join(5)
    assert done == [SandboxPathError]


def _raises(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - the test inspects which one
        return type(e)
    return None
