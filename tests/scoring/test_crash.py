"""kill -9 the server during a stream of submissions: every acknowledged one survives."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np

from aarlab.client import LabError

UNLIMITED = {"AARLAB_SUBMISSIONS_PER_HOUR": "100000", "AARLAB_SUBMISSIONS_TOTAL": "100000"}


def test_kill_9_mid_stream_loses_no_acknowledged_submission(spawn_server, tiny_tweets,
                                                            admin_headers):
    kit, _ = tiny_tweets
    ids, labels = kit.ids("test"), kit.label_names
    server = spawn_server(**UNLIMITED)
    admin_token = admin_headers["Authorization"].split()[1]
    with server.client(admin_token) as admin:
        token = admin.add_researcher("streamer")["token"]

    acked: dict[int, np.ndarray] = {}  # submission id -> the predictions it acknowledged
    lock, stop = threading.Lock(), threading.Event()

    def stream(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with server.client(token, timeout=10) as c:
            while not stop.is_set():
                pred = rng.integers(0, 2, len(ids))
                try:
                    r = c.submit("tweets", {i: labels[k] for i, k in zip(ids, pred, strict=True)})
                except LabError:
                    return  # the server is gone; what was in flight was never acknowledged
                with lock:
                    acked[r["id"]] = pred

    threads = [threading.Thread(target=stream, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    while len(acked) < 40:
        time.sleep(0.01)
    server.kill9()
    stop.set()
    for t in threads:
        t.join(15)

    conn = sqlite3.connect(server.db)  # the file is sound before the server even reopens it
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in conn.execute("SELECT id FROM submissions")}
    conn.close()
    assert len(acked) >= 40 and set(acked) <= stored

    server.start()
    with server.client(admin_token) as admin, server.client(token) as c:
        assert set(acked) <= {s["id"] for s in c.my_submissions("tweets")}
        # the probe index is rebuilt from the store: an acknowledged vector is recognised
        sid, pred = next(iter(acked.items()))
        r = c.submit("tweets", {i: labels[k] for i, k in zip(ids, pred, strict=True)})
        assert admin.admin_submission(r["id"])["probe_of"] is not None
