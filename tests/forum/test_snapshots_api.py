"""Snapshots over HTTP: content-addressed upload (raw and multipart), parents, links to the
submissions they produced, listing, download, file browsing, size limit."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from tarballs import targz_files

pytestmark = pytest.mark.anyio

FILES = {"train.py": b"import numpy\nprint('w2s')\n", "method/loss.py": b"# aux loss\n" * 20}


async def upload(lab, who, data: bytes, **params):
    return await lab.http.post("/v1/snapshots", content=data, params=params,
                               headers={**who, "Content-Type": "application/gzip"})


async def test_upload_is_content_addressed_and_downloads_identically(lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    data = targz_files(FILES)
    r = await upload(lab, alice, data, label="confidence loss v1")
    assert r.status_code == 201, r.text
    snap = r.json()
    assert snap["id"] == hashlib.sha256(data).hexdigest() and snap["created"] is True
    assert snap["n_files"] == 2 and snap["uploader"]["name"] == "alice"

    again = await lab.http.post("/v1/snapshots", files={"archive": ("ws.tar.gz", data)},
                                headers=bob)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["uploader"]["name"] == "alice"  # first uploader keeps the credit

    detail = (await lab.http.get(f"/v1/snapshots/{snap['id']}", headers=bob)).json()
    assert sorted(f["path"] for f in detail["files"]) == sorted(FILES)
    got = await lab.http.get(f"/v1/snapshots/{snap['id']}/archive", headers=bob)
    assert got.content == data and got.headers["content-type"] == "application/gzip"
    f = await lab.http.get(f"/v1/snapshots/{snap['id']}/files/method/loss.py", headers=bob)
    assert f.content == FILES["method/loss.py"]
    assert f.headers["x-content-type-options"] == "nosniff"
    missing = await lab.http.get(f"/v1/snapshots/{snap['id']}/files/../../etc/passwd",
                                 headers=bob)
    assert missing.status_code == 404
    assert (await lab.http.get(f"/v1/snapshots/{'0' * 64}", headers=bob)).status_code == 404
    assert (await lab.http.get("/v1/snapshots/not-a-sha", headers=bob)).status_code == 422


async def test_zip_upload_parent_and_listing(lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    base = (await upload(lab, alice, targz_files(FILES))).json()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train.py", b"print('mutated')\n")
    child = await lab.http.post("/v1/snapshots", content=buf.getvalue(),
                                params={"parent": base["id"]},
                                headers={**bob, "Content-Type": "application/zip"})
    assert child.status_code == 201, child.text
    assert child.json()["parent_id"] == base["id"] and child.json()["format"] == "zip"

    r = await upload(lab, bob, targz_files({"x.py": b"1"}), parent="f" * 64)
    assert r.status_code == 422 and "parent" in r.text
    listed = (await lab.http.get("/v1/snapshots", headers=alice)).json()
    assert {s["id"] for s in listed} == {base["id"], child.json()["id"]}
    mine = (await lab.http.get("/v1/snapshots", params={"uploader": "bob"},
                               headers=alice)).json()
    assert [s["id"] for s in mine] == [child.json()["id"]]
    assert (await lab.http.get("/v1/snapshots")).status_code == 401


async def test_snapshots_link_to_the_submissions_they_produced(lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    snap = (await upload(lab, alice, targz_files(FILES))).json()
    made = await lab.submit(alice, 0.8, snapshot_id=snap["id"])  # linked at submission
    later = await lab.submit(alice, 0.85)
    bobs = await lab.submit(bob, 0.6)

    r = await lab.http.post(f"/v1/snapshots/{snap['id']}/links",
                            json={"submission_id": later["id"]}, headers=alice)
    assert r.status_code == 200 and r.json()["submission_ids"] == [made["id"], later["id"]]
    r = await lab.http.post(f"/v1/snapshots/{snap['id']}/links",
                            json={"submission_id": bobs["id"]}, headers=alice)
    assert r.status_code == 422 and "not one of your scored submissions" in r.text
    other = (await upload(lab, bob, targz_files({"b.py": b"b"}), submission_id=bobs["id"])).json()
    assert other["submission_ids"] == [bobs["id"]]

    by_sub = (await lab.http.get("/v1/snapshots", params={"submission_id": made["id"]},
                                 headers=bob)).json()
    assert [s["id"] for s in by_sub] == [snap["id"]]

    # A result on that submission points at the code that produced it.
    f = (await lab.post(alice, kind="result", submission_id=made["id"])).json()
    assert f["snapshot_id"] == snap["id"]


async def test_upload_limits_and_refusals(lab_settings, lab):
    alice = await lab.researcher("alice")
    r = await lab.http.post("/v1/snapshots", content=b"", headers=alice)
    assert r.status_code == 422 and "tar.gz or zip" in r.text
    r = await lab.http.post("/v1/snapshots", files={"notarchive": ("a", b"x")}, headers=alice)
    assert r.status_code == 422 and "'archive'" in r.text
    too_big = b"\x1f\x8b" + bytes(lab_settings.snapshot_max_bytes)
    r = await lab.http.post("/v1/snapshots", content=too_big, headers=alice)
    assert r.status_code == 413 and "snapshot_max_bytes" in r.text
    r = await upload(lab, alice, targz_files({"../../escape.py": b"x"}))
    assert r.status_code == 422 and "'..' components" in r.text
