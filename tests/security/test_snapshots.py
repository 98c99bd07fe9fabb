"""Hostile workspace archives: every one is refused and nothing lands outside the target.

Each attack is built in memory with the standard library, handed to the one extraction helper
every consumer uses (``aarlab.archive``), and then the whole ``tmp_path`` is listed: the
only thing allowed to exist is the (empty) extraction target. The HTTP tests at the end upload
the same archives to ``/v1/snapshots`` and check that no blob was stored.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from aarlab.archive import (
    ArchiveLimits,
    UnsafeArchiveError,
    extract_archive,
    inspect_archive,
    read_member,
)
from tarballs import targz, tfile, tspecial

SMALL = ArchiveLimits(max_bytes=5_000_000, max_files=20, max_unpacked_bytes=50_000_000,
                      max_ratio=100)


# --- builders ------------------------------------------------------------------------------


def zipped(*members: tuple[str | zipfile.ZipInfo, bytes],
           method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(data: bytes, tmp_path: Path, match: str, limits: ArchiveLimits = SMALL) -> None:
    """``data`` is refused with a message matching ``match``; nothing is written anywhere."""
    before = listing(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=match):
        extract_archive(data, tmp_path / "out", limits)
    assert sorted(set(listing(tmp_path)) - set(before)) in ([], ["out"])
    if (tmp_path / "out").exists():
        assert listing(tmp_path / "out") == []
    with pytest.raises(UnsafeArchiveError, match=match):
        inspect_archive(data, limits)


# --- a good archive still works ------------------------------------------------------------


def test_good_archives_extract_exactly(tmp_path):
    files = {"train.py": b"print('w2s')\n", "src/method/loss.py": b"# loss\n" * 50,
             "run.sh": b"#!/bin/sh\n"}
    tar = targz(tfile("./"), *(tfile(k, v, 0o755 if k.endswith(".sh") else 0o644)
                               for k, v in files.items()))
    zp = zipped(*files.items())
    for name, data, fmt in (("t", tar, "tar.gz"), ("z", zp, "zip")):
        info = extract_archive(data, tmp_path / name, SMALL)
        assert info.format == fmt and len(info.sha256) == 64
        assert {e.path for e in info.files} == set(files)
        for rel, content in files.items():
            assert (tmp_path / name / rel).read_bytes() == content
        assert read_member(data, "src/method/loss.py", SMALL) == files["src/method/loss.py"]
    assert os.access(tmp_path / "t" / "run.sh", os.X_OK)
    assert not os.access(tmp_path / "t" / "train.py", os.X_OK)


# --- path tricks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escaped.txt", "a/../../escaped.txt", "a/b/../../../x"])
def test_path_traversal_is_refused(tmp_path, name):
    refused(targz(tfile("ok.txt"), tfile(name, b"pwned")), tmp_path, r"'\.\.' components")
    refused(zipped(("ok.txt", b"1"), (name, b"pwned")), tmp_path, r"'\.\.' components")
    assert not (tmp_path / "escaped.txt").exists()


def test_backslash_traversal_in_zip_is_refused(tmp_path):
    refused(zipped(("..\\escaped.txt", b"pwned")), tmp_path, r"'\.\.' components")


def test_absolute_paths_are_refused(tmp_path):
    victim = tmp_path / "victim.txt"  # where an absolute entry would land if honoured
    refused(targz(tfile(str(victim), b"pwned")), tmp_path, "absolute paths")
    refused(zipped((str(victim), b"pwned")), tmp_path, "absolute paths")
    refused(zipped(("C:\\Windows\\evil.dll", b"pwned")), tmp_path, "absolute paths")
    assert not victim.exists()


def test_control_characters_and_duplicates_are_refused(tmp_path):
    refused(targz(tfile("a\x1b[2Jb.txt")), tmp_path, "control characters")
    refused(targz(tfile("a.txt", b"1"), tfile("./a.txt", b"2")), tmp_path, "duplicate path")
    refused(targz(tfile("a", b"file"), tfile("a/b.txt")), tmp_path, "is a file")


# --- links, devices ------------------------------------------------------------------------


def test_symlinks_are_refused(tmp_path):
    # The classic two-step escape: a link out of the target, then a file written through it.
    link = tspecial("link", tarfile.SYMTYPE, str(tmp_path))
    refused(targz(link, tfile("link/escaped.txt", b"pwned")), tmp_path, "symlink")
    refused(targz(tspecial("passwd", tarfile.SYMTYPE, "/etc/passwd")), tmp_path, "symlink")
    refused(zipped(zip_symlink("link", str(tmp_path)), ("link/escaped.txt", b"pwned")),
            tmp_path, "symlink")
    assert not (tmp_path / "escaped.txt").exists()


def test_hard_links_devices_and_fifos_are_refused(tmp_path):
    refused(targz(tspecial("shadow", tarfile.LNKTYPE, "/etc/shadow")), tmp_path, "hard link")
    refused(targz(tspecial("null", tarfile.CHRTYPE)), tmp_path, "device")
    refused(targz(tspecial("sda", tarfile.BLKTYPE)), tmp_path, "device")
    refused(targz(tspecial("pipe", tarfile.FIFOTYPE)), tmp_path, "fifo")
    fifo = zipfile.ZipInfo("pipe")
    fifo.create_system, fifo.external_attr = 3, (stat.S_IFIFO | 0o644) << 16
    refused(zipped((fifo, b"")), tmp_path, "fifo")


# --- bombs and limits ----------------------------------------------------------------------


def test_zip_bomb_by_ratio_is_refused_before_writing(tmp_path):
    bomb = zipped(("zeros.bin", bytes(20_000_000)))  # ~20 KB packed, ratio ~1000
    assert len(bomb) < 100_000
    t0 = time.perf_counter()
    refused(bomb, tmp_path, "compression ratio")
    assert time.perf_counter() - t0 < 10  # refused from headers, not by inflating


def test_tar_gz_bomb_is_stopped_while_decompressing(tmp_path):
    bomb = targz(tfile("zeros.bin", bytes(30_000_000)))
    refused(bomb, tmp_path, "compression ratio")


def test_total_unpacked_size_is_capped(tmp_path):
    limits = ArchiveLimits(max_bytes=5_000_000, max_files=20, max_unpacked_bytes=2_000_000,
                           max_ratio=1e9)
    refused(zipped(("big.bin", os.urandom(1000) * 3000)), tmp_path, "max_unpacked_bytes",
            limits)


def test_zip_with_overlapping_entries_is_refused(tmp_path):
    """Fifield's non-recursive zip bomb: many central entries share one compressed body."""
    refused(_overlapping_zip(), tmp_path, "overlap")


def test_zip_lying_about_its_size_is_refused(tmp_path):
    data = bytearray(zipped(("a.txt", b"A" * 5000), method=zipfile.ZIP_STORED))
    # Patch both the local and the central header: claim 10 bytes instead of 5000.
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(sig)
        struct.pack_into("<I", data, at + off, 10)
    refused(bytes(data), tmp_path, "corrupt")


def test_file_count_and_archive_size_limits(tmp_path):
    many = [tfile(f"f{i}.txt") for i in range(SMALL.max_files + 1)]
    refused(targz(*many), tmp_path, "max_files")
    refused(zipped(*((f"f{i}.txt", b"x") for i in range(SMALL.max_files + 1))), tmp_path,
            "max_files")
    tiny = ArchiveLimits(max_bytes=2048)
    refused(zipped(("noise.bin", os.urandom(4096))), tmp_path, "max_bytes", tiny)


def test_not_an_archive_and_corrupt_archives(tmp_path):
    refused(b"#!/bin/sh\nrm -rf /\n", tmp_path, "not a tar.gz or zip")
    good = targz(tfile("a.txt", b"hello" * 1000))
    refused(good[: len(good) // 2], tmp_path, "corrupt")


# --- the target ----------------------------------------------------------------------------


def test_target_must_be_a_fresh_directory(tmp_path):
    good = zipped(("a.txt", b"1"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "a.txt").symlink_to(tmp_path / "victim.txt")
    with pytest.raises(UnsafeArchiveError, match="not empty"):
        extract_archive(good, tmp_path / "busy", SMALL)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeArchiveError, match="not a directory"):
        extract_archive(good, tmp_path / "link", SMALL)
    assert not (tmp_path / "victim.txt").exists()
    assert listing(tmp_path / "elsewhere") == []


def _overlapping_zip() -> bytes:
    """A zip whose central directory lists the same local entry under two names."""
    data = zipped(("a.txt", b"A" * 1000))
    cd = data.index(b"PK\x01\x02")
    eocd = data.index(b"PK\x05\x06")
    entry = bytearray(data[cd:eocd])
    name_at = 46
    assert entry[name_at:name_at + 5] == b"a.txt"
    twin = bytearray(entry)
    twin[name_at:name_at + 5] = b"b.txt"
    central = bytes(entry) + bytes(twin)
    end = bytearray(data[eocd:])
    struct.pack_into("<HHII", end, 8, 2, 2, len(central), cd)
    return data[:cd] + central + bytes(end)


# --- the same attacks through the HTTP API ---------------------------------------------------

HOSTILE = {
    "traversal": (lambda tmp: targz(tfile("../../escaped.txt", b"pwned")), "'..' components"),
    "absolute": (lambda tmp: zipped((str(tmp / "victim.txt"), b"pwned")), "absolute paths"),
    "symlink": (lambda tmp: targz(tspecial("l", tarfile.SYMTYPE, "/etc/passwd")), "symlink"),
    "device": (lambda tmp: targz(tspecial("null", tarfile.CHRTYPE)), "device"),
    "zip bomb": (lambda tmp: zipped(("zeros.bin", bytes(20_000_000))), "compression ratio"),
    "overlap": (lambda tmp: _overlapping_zip(), "overlap"),
    "file count": (lambda tmp: targz(*(tfile(f"f{i}") for i in range(30))), "max_files"),
}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("attack", sorted(HOSTILE))
async def test_hostile_uploads_are_refused_and_nothing_is_stored(settings, tmp_path, attack):
    import httpx

    from aarlab.server.app import create_app
    from aarlab.store.db import Store

    lab = settings.model_copy(update={
        "db_url": f"sqlite:///{tmp_path / 'lab.db'}", "admin_token": "sec-admin",
        "snapshots_root": tmp_path / "blobs", "snapshot_max_files": 20})
    app = create_app(lab, Store(lab.database_url))
    build, message = HOSTILE[attack]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://lab") as c:
        r = await c.post("/v1/admin/researchers", json={"name": "mallory"},
                         headers={"Authorization": "Bearer sec-admin"})
        who = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await c.post("/v1/snapshots", content=build(tmp_path), headers=who)
        assert r.status_code == 422 and message in r.json()["detail"], r.text
        assert (await c.get("/v1/snapshots", headers=who)).json() == []
    assert not (tmp_path / "blobs").exists() or listing(tmp_path / "blobs") == []
    assert not (tmp_path / "victim.txt").exists()
