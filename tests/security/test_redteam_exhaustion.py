"""Red-team pass (session 15) on what one sandbox can make the lab process hold.

The lab process serves the scoring server, the forum and the orchestrator of every researcher,
so running it out of memory takes every researcher and the final report down with it:

- a sandbox opened uploads declaring 20 MB, sent 19 MB of each and stalled: each held 20 MB of
  the lab for as long as it stayed open, and nothing bounded how many (measured: 4 stalled
  uploads, +80 MiB);
- a 2.2 MB archive holding a 198 MB file of zeros passed the ratio check, and every
  ``GET /v1/snapshots/{id}/files/zeros.txt`` decompressed and returned all of it (40 in parallel:
  tens of GB);
- a telemetry payload nested a few hundred deep was a 500 (the check for huge integers
  recursed).

All against the real ASGI app on a real SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import tarfile
import threading

import httpx
from starlette.requests import ClientDisconnect

from aarlab.server.app import create_app
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher, revoke
from redteam_lab import register, served_lab


def _app(settings, tmp_path, role: str = "all", **overrides):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "snapshots_root": tmp_path / "snapshots", **overrides})
    store = Store(s.database_url)
    app = create_app(s, store, role=role)
    with store.session() as db:
        tokens = [add_researcher(db, name)[1] for name in ("mallory", "alice")]
    return app, tokens


def _upload_scope(authorization: str | None, path: str = "/v1/snapshots") -> dict:
    kind = b"application/gzip" if path == "/v1/snapshots" else b"application/json"
    headers = [(b"host", b"lab"), (b"content-type", kind), (b"content-length", b"4000000")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 1), "server": ("lab", 80)}


def _stalling(app, path: str = "/v1/snapshots"):
    """(stalled_upload(authorization) -> messages sent, release event, list of bodies read)."""
    release = asyncio.Event()
    read: list[int] = []  # bytes of body the app has taken in, per admitted upload

    async def stalled_upload(authorization: str | None) -> list[dict]:
        sent: list[dict] = []
        first = True

        async def receive() -> dict:
            nonlocal first
            if first:
                first = False
                read.append(1 << 20)
                return {"type": "http.request", "body": b"\0" * (1 << 20), "more_body": True}
            await release.wait()  # the sandbox never sends the rest
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        with contextlib.suppress(ClientDisconnect):  # uvicorn's to handle, as it does
            await app(_upload_scope(authorization, path), receive, send)
        return sent

    return stalled_upload, release, read


def test_one_token_holds_a_bounded_number_of_requests_in_flight(settings, tmp_path):
    app, (mallory, alice) = _app(settings, tmp_path, requests_in_flight=3)

    async def attack() -> None:
        stalled_upload, release, read = _stalling(app)
        # one token however its scheme is spelt
        spellings = [f"Bearer {mallory}", f"bearer {mallory}", f"BEARER  {mallory}"]
        stalled = [asyncio.create_task(stalled_upload(a)) for a in spellings]
        for _ in range(100):  # a busy machine may take a while to admit them
            if len(read) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(read) == 3  # three admitted, each holding its first MiB
        # The fourth is refused at once, its body never read (it was held like the others).
        fourth = await asyncio.wait_for(stalled_upload(f"BeArEr {mallory}"), timeout=5)
        assert fourth[0]["status"] == 429 and len(read) == 3
        assert json.loads(fourth[1]["body"])["detail"].startswith("requests: at most 3")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://lab") as c:
            # another researcher is served meanwhile
            r = await c.get("/v1/me", headers={"Authorization": f"Bearer {alice}"})
            assert r.status_code == 200
            release.set()
            await asyncio.wait_for(asyncio.gather(*stalled), timeout=10)
            # the slots are free again once those requests end
            r = await c.get("/v1/me", headers={"Authorization": f"Bearer {mallory}"})
            assert r.status_code == 200

    asyncio.run(attack())


def test_requests_without_a_known_token_are_refused_unread_where_sandboxes_connect(settings,
                                                                                  tmp_path):
    app, (mallory, _) = _app(settings, tmp_path, role="researcher", requests_in_flight=2)

    async def attack() -> None:
        # A JSON route: FastAPI reads its body before the auth check can refuse it, so such
        # requests once held bodies, and slots that every sandbox shared (red team, round 6);
        # made-up tokens were a bucket each before that (50 of 50 admitted at once).
        stalled_upload, release, read = _stalling(app, "/v1/forum/findings")
        for who in (None, "Bearer made-up-1", "Basic bWFsbG9yeQ==", "Bearer "):
            sent = await asyncio.wait_for(stalled_upload(who), timeout=5)
            assert sent[0]["status"] == 401, who
            assert (b"www-authenticate", b"Bearer") in sent[0]["headers"]
            assert "researcher's token" in json.loads(sent[1]["body"])["detail"]
        assert read == []  # not one byte of their bodies was taken in
        # a researcher's own token is admitted and bounded as before
        stalled = [asyncio.create_task(stalled_upload(f"Bearer {mallory}")) for _ in range(2)]
        await asyncio.sleep(0.3)
        assert len(read) == 2
        third = await asyncio.wait_for(stalled_upload(f"Bearer {mallory}"), timeout=5)
        assert third[0]["status"] == 429 and len(read) == 2
        # the one open route needs no token
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://lab") as c:
            assert (await c.get("/healthz")).status_code == 200
        # a second Authorization header (checked: the first; bucketed: the last) is refused
        dup = {**_upload_scope(f"Bearer {mallory}", "/v1/forum/findings")}
        dup["headers"] = [*dup["headers"], (b"authorization", b"Bearer made-up-3")]
        sent: list[dict] = []

        async def no_body() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(dup, no_body, send)
        assert sent[0]["status"] == 400
        release.set()
        await asyncio.wait_for(asyncio.gather(*stalled), timeout=10)
        # Round 7: a token once seen to be known stayed known (a cache): revoked since, its
        # bodies were still read, 8 x max_body_bytes at a time.
        with Store(app.state.settings.database_url).session() as db:
            revoke(db, "mallory")
        read.clear()
        sent = await asyncio.wait_for(stalled_upload(f"Bearer {mallory}"), timeout=5)
        assert sent[0]["status"] == 401 and read == []

    asyncio.run(attack())


def _zeros_archive(zeros: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("noise.bin", os.urandom(200_000)), ("zeros.txt", b"0" * zeros),
                           ("run.py", b"print('hi')\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_snapshot_file_is_served_whole_only_up_to_a_cap(settings, tmp_path):
    with served_lab(settings, tmp_path) as (_, _, c):
        h = register(c, "mallory")
        r = c.post("/v1/snapshots", headers={**h, "Content-Type": "application/gzip"},
                   content=_zeros_archive(9 << 20))
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        big = c.get(f"/v1/snapshots/{sid}/files/zeros.txt", headers=h)
        assert big.status_code == 413, big.status_code
        assert "served only in the archive" in big.json()["detail"]
        small = c.get(f"/v1/snapshots/{sid}/files/run.py", headers=h)
        assert small.status_code == 200 and small.text == "print('hi')\n"
        # the dashboard shows a prefix of it and says how large it is
        page = c.get(f"/snapshots/{sid}/files/zeros.txt")
        assert page.status_code == 200
        assert f"{9 << 20} bytes" in page.text and "Shown up to 256 KiB" in page.text


def test_a_deeply_nested_telemetry_payload_is_an_answer_not_a_failure(settings, tmp_path):
    with served_lab(settings, tmp_path) as (_, _, c):
        h = {**register(c, "mallory"), "Content-Type": "application/json"}

        def post(inner: str) -> int:
            body = '{"kind": "note", "payload": {"x": ' + "[" * 370 + inner + "]" * 370 + "}}"
            return c.post("/v1/lab/events", headers=h, content=body).status_code

        assert post("1") == 201  # was a 500 (RecursionError in the check below)
        assert post(str(10 ** 30)) == 422  # a huge integer is still found at any depth
        assert c.get("/researchers/mallory").status_code == 200


def test_forum_text_and_telemetry_have_a_quota_per_researcher(settings, tmp_path):
    # Within the write rate, 50,000-character revisions grew the store by 52 MB a minute.
    with served_lab(settings.model_copy(update={"text_quota_chars": 3000}), tmp_path) as (
            _, _, c):
        h, other = register(c, "mallory"), register(c, "alice")
        r = c.post("/v1/forum/findings", headers=h,
                   json={"kind": "insight", "title": "t", "body": "😀" * 1400})
        assert r.status_code == 201, r.text
        fid = r.json()["id"]
        r = c.post(f"/v1/forum/findings/{fid}/revisions", headers=h, json={"body": "😀" * 1400})
        assert r.status_code == 201, r.text
        r = c.post(f"/v1/forum/findings/{fid}/revisions", headers=h, json={"body": "😀" * 1400})
        assert r.status_code == 413 and "text_quota_chars" in r.json()["detail"]
        r = c.post(f"/v1/forum/findings/{fid}/comments", headers=h, json={"body": "x" * 500})
        assert r.status_code == 413
        # another researcher's quota is their own
        r = c.post(f"/v1/forum/findings/{fid}/comments", headers=other, json={"body": "ok"})
        assert r.status_code == 201, r.text

        codes = [c.post("/v1/lab/events", headers=h, json={
            "kind": "note", "payload": {"x": "y" * 1000}}).status_code for _ in range(4)]
        assert codes == [201, 201, 413, 413]


def test_uploads_inflate_an_archive_once_and_never_under_the_lab_wide_lock(settings, tmp_path,
                                                                         monkeypatch):
    # Round 9: re-uploading stored bytes cost no quota and no write, yet each was inflated and
    # checked again under the one upload lock of the whole lab: 66 re-uploads of a 2 MB
    # archive (190 MB inflated) in 20 s made every other researcher's upload 100 times slower.
    from aarlab import archive
    from aarlab.forum import snapshot_routes, snapshots

    app, (mallory, alice) = _app(settings, tmp_path, writes_per_minute=4)
    real, inflated, gate = archive.inspect_archive, [], threading.Event()
    slow, quick = _zeros_archive(1000), _zeros_archive(2000)

    def inspecting(data: bytes, limits):  # noqa: ANN001
        inflated.append(data)
        if data == slow:  # mallory's takes as long as the test says
            gate.wait(10)
        return real(data, limits)

    for module in (snapshot_routes, snapshots):  # wherever the upload inflates it
        monkeypatch.setattr(module, "inspect_archive", inspecting, raising=False)

    async def attack() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://lab") as c:
            def up(token: str, body: bytes):  # noqa: ANN202
                return c.post("/v1/snapshots", content=body, headers={
                    "authorization": f"Bearer {token}", "content-type": "application/gzip"})

            held = asyncio.create_task(up(mallory, slow))
            await asyncio.sleep(0.3)  # mallory's archive is being inflated
            # alice's upload is not queued behind it
            assert (await asyncio.wait_for(up(alice, quick), 5)).status_code == 201
            gate.set()
            assert (await held).status_code == 201
            # The same bytes again are stored already: one more holder at most, no inflation.
            n = len(inflated)
            assert [(await up(mallory, slow)).status_code for _ in range(3)] == [200] * 3
            assert len(inflated) == n
            # And every upload is one of its researcher's writes (writes_per_minute=4).
            r = await up(mallory, slow)
            assert r.status_code == 429 and "writes_per_minute" in r.text

    asyncio.run(attack())


def test_one_researcher_reads_one_archive_member_at_a_time_and_never_queues_another(
        settings, tmp_path, monkeypatch):
    # Round 9: 60 looping reads of the last file of a legal 2 MB archive (0.6 s of inflating
    # each) kept the lab's thread pool busy: another researcher's round trip took 42 s. A
    # reader now inflates one archive at a time, so one sandbox takes at most a core.
    from aarlab.forum import snapshots

    app, (mallory, alice) = _app(settings, tmp_path)
    real, busy, most, gate = snapshots.member, [0], [0], threading.Event()
    counting = threading.Lock()

    def member(s, blobs, lim, snapshot_id, path):  # noqa: ANN001, ANN202
        with counting:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        try:
            if path == "zeros.txt":  # mallory's reads take as long as the test says
                gate.wait(10)
            return real(s, blobs, lim, snapshot_id, path)
        finally:
            with counting:
                busy[0] -= 1

    async def attack() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://lab") as c:
            up = await c.post("/v1/snapshots", content=_zeros_archive(1000), headers={
                "authorization": f"Bearer {mallory}", "content-type": "application/gzip"})
            sid = up.json()["id"]
            monkeypatch.setattr(snapshots, "member", member)

            def read(token: str, path: str):  # noqa: ANN202
                return c.get(f"/v1/snapshots/{sid}/files/{path}",
                             headers={"authorization": f"Bearer {token}"})

            held = [asyncio.create_task(read(mallory, "zeros.txt")) for _ in range(4)]
            await asyncio.sleep(0.3)
            assert most[0] == 1  # mallory's four wait for each other, not for the pool
            r = await asyncio.wait_for(read(alice, "run.py"), 5)  # alice is not queued
            assert r.status_code == 200 and r.text == "print('hi')\n"
            gate.set()
            assert [(await h).status_code for h in held] == [200] * 4

    asyncio.run(attack())
