"""Scoring-server throughput and latency on loopback, with a SYNTHETIC 10k-row task.

Builds a synthetic binary task (random labels, made-up reference scores: no real data) in a
temporary AARLAB_HOME, pre-fills the store with thousands of earlier submissions so that probe
detection has real work, starts ``aarlab serve`` as its own process on 127.0.0.1, and drives it
with 1, 8 and 32 concurrent clients, each submitting distinct random prediction vectors.

    python bench/server.py [--rows 10000] [--prefill 2000] [--seconds 8]

Prints submissions/s and p50/p99 latency per concurrency level, measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ADMIN = "bench-admin-token"
TASK = "synthetic-10k"


def write_synthetic_task(home: Path, rows: int, seed: int = 0) -> list[str]:
    """Kit + answer key for a synthetic binary task; returns the test ids."""
    rng = np.random.default_rng(seed)
    ids = [f"syn-{i:06d}" for i in range(rows)]
    labels = rng.integers(0, 2, rows).astype(bool)
    kit, key = home / "tasks" / TASK / "kit", home / "answer-keys" / TASK
    kit.mkdir(parents=True)
    key.mkdir(parents=True)
    (kit / "manifest.json").write_text(json.dumps({
        "name": TASK, "format": "binary", "labels": [False, True], "strong_model": "none",
        "weak_seeds": 1, "sizes": {"train_label": 0, "train_unlabel": 0, "test": rows},
        "provenance": "synthetic: random labels for benchmarking only"}))
    with open(kit / "test.jsonl", "w") as f:
        for i in ids:
            f.write(json.dumps({"id": i, "question": "synthetic", "choice": i}) + "\n")
    (key / "labels.json").write_text(json.dumps(
        {"test": {i: bool(v) for i, v in zip(ids, labels, strict=True)}, "train_unlabel": {}}))
    (key / "parts.json").write_text(json.dumps({"feedback": ids[::2], "final": ids[1::2]}))
    ref = {p: [0.55] for p in ("test", "feedback", "final")}
    (key / "reference.json").write_text(json.dumps(
        {"weak": ref, "ceiling": {p: [0.75] for p in ref}}))
    return ids


def prefill(db_url: str, n: int, rows: int, seed: int = 1) -> None:
    """``n`` earlier submissions by one researcher, written straight into the store."""
    from aarlab.scoring.probes import pack
    from aarlab.scoring.tables import Submission
    from aarlab.store.db import Store
    from aarlab.store.identity import add_researcher

    store = Store(db_url)
    store.create_all()
    rng = np.random.default_rng(seed)
    with store.session() as s:
        r, _ = add_researcher(s, "prefill")
        now = datetime.now(UTC)
        s.add_all(Submission(researcher_id=r.id, task=TASK, created_at=now, n_rows=rows,
                             predictions=pack(rng.integers(0, 2, rows)), acc_test=0.5,
                             acc_feedback=0.5, acc_final=0.5, pgr_test=-0.25,
                             pgr_feedback=-0.25, pgr_final=-0.25, released_pgr=None)
                  for _ in range(n))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(ids: list[str], n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [json.dumps({"predictions": dict(zip(ids, rng.integers(0, 2, len(ids)).astype(bool)
                                                .tolist(), strict=True)),
                        "method": "bench"}).encode() for _ in range(n)]


async def drive(url: str, tokens: list[str], payloads: list[bytes], seconds: float) -> dict:
    """Each client submits back to back for ``seconds``; latencies of 200s only."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    nxt = iter(range(10**9))

    async def client(token: str) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as c:
            while time.perf_counter() < stop_at:
                body = payloads[next(nxt) % len(payloads)]
                t0 = time.perf_counter()
                r = await c.post(f"/v1/tasks/{TASK}/submissions", content=body)
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client(t) for t in tokens))
    wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {"clients": len(tokens), "ok": len(lat), "errors": errors,
            "per_s": len(lat) / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--prefill", type=int, default=2_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--levels", default="1,8,32")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    with tempfile.TemporaryDirectory(prefix="aarlab-bench-") as tmp:
        home = Path(tmp)
        ids = write_synthetic_task(home, args.rows)
        db_url = f"sqlite:///{home / 'lab.db'}"
        prefill(db_url, args.prefill, args.rows)
        port = free_port()
        env = {**os.environ, "AARLAB_HOME": str(home), "AARLAB_ADMIN_TOKEN": ADMIN,
               "AARLAB_DB_URL": db_url, "AARLAB_SUBMISSIONS_PER_HOUR": "10000000",
               "AARLAB_SUBMISSIONS_TOTAL": "10000000"}
        server = subprocess.Popen([sys.executable, "-m", "aarlab.cli", "serve", "--port",
                                   str(port)], env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(1200):  # the full CLI imports torch: slow on a busy machine
                try:
                    httpx.get(f"{url}/healthz").raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            admin = {"Authorization": f"Bearer {ADMIN}"}
            tokens = [httpx.post(f"{url}/v1/admin/researchers", json={"name": f"bench{i}"},
                                 headers=admin).json()["token"] for i in range(max(levels))]
            payloads = bodies(ids, 400, seed=2)
            asyncio.run(drive(url, tokens[:1], payloads[:5], 1.0))  # warm-up: load the task
            print(f"SYNTHETIC task: {args.rows} test rows (random labels), "
                  f"{args.prefill} submissions pre-filled, body {len(payloads[0]) / 1e3:.0f} kB, "
                  f"{os.cpu_count()} CPUs, server and clients on this machine")
            print(f"{'clients':>7} {'subs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ok':>6} {'err':>4}")
            for level in levels:
                r = asyncio.run(drive(url, tokens[:level], payloads, args.seconds))
                print(f"{r['clients']:>7} {r['per_s']:>8.1f} {r['p50_ms']:>8.1f} "
                      f"{r['p99_ms']:>8.1f} {r['ok']:>6} {r['errors']:>4}")
            n = httpx.get(f"{url}/v1/admin/tasks/{TASK}/leaderboard", headers=admin).json()
            stored = sum(row["submissions"] for row in n["by_researcher"])
            print(f"(researchers with a released score: {len(n['by_researcher'])}; "
                  f"their stored submissions: {stored})")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
