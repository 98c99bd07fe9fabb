"""A sandbox uploading distinct archives in a loop cannot fill the lab's disk: each researcher
may store at most ``snapshot_quota_bytes`` of archives; past it, uploads are refused (413,
naming the setting) and no blob is written. Re-uploading stored bytes costs nothing."""

from __future__ import annotations

import asyncio

import pytest

from tarballs import targz_files

pytestmark = pytest.mark.anyio

QUOTA = 4096


@pytest.fixture
def lab_settings(lab_settings):
    return lab_settings.model_copy(update={"snapshot_quota_bytes": QUOTA})


def archive(i: int) -> bytes:
    # Random-looking bytes do not compress: each archive is about 1.2 KB.
    import random

    return targz_files({f"run{i}.py": random.Random(i).randbytes(1000)})


def blobs(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def up(lab, who, data):
    return await lab.http.post("/v1/snapshots", content=data,
                               headers={**who, "Content-Type": "application/gzip"})


async def test_an_upload_loop_stops_at_the_quota_and_writes_no_blob(lab_settings, lab):
    alice, bob = await lab.researcher("alice"), await lab.researcher("bob")
    stored, refused, first = [], None, archive(0)
    for i in range(20):
        r = await up(lab, alice, first if i == 0 else archive(i))
        if r.status_code != 201:
            refused = r
            break
        stored.append(r.json())
    assert refused is not None, "20 distinct uploads all stored: no quota"
    assert refused.status_code == 413 and "snapshot_quota_bytes" in refused.text
    assert sum(s["size"] for s in stored) <= QUOTA
    assert len(blobs(lab_settings.snapshots_dir)) == len(stored)
    # bytes already stored (by anyone) are free: nothing new is written
    again = await up(lab, alice, first)
    assert again.status_code == 200 and again.json()["created"] is False
    # the quota is per researcher: bob still uploads
    assert (await up(lab, bob, archive(99))).status_code == 201


async def test_parallel_uploads_do_not_race_past_the_quota(lab_settings, lab):
    alice = await lab.researcher("alice")
    rs = await asyncio.gather(*(up(lab, alice, archive(i)) for i in range(12)))
    ok = [r.json() for r in rs if r.status_code == 201]
    # 8 race for the quota; the rest are refused before their body is read (in flight, 429)
    assert {r.status_code for r in rs} <= {201, 413, 429}
    assert sum(r.status_code != 429 for r in rs) >= 8
    assert ok and sum(s["size"] for s in ok) <= QUOTA
    assert len(blobs(lab_settings.snapshots_dir)) == len(ok)
