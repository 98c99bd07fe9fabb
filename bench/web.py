"""Dashboard page render times with 10k submissions and 10k findings.

    .venv/bin/python bench/web.py [--home DIR] [--submissions 10000] [--findings 10000] [--reps 15]

Fills two scratch SQLite stores (WAL, synchronous=FULL, as the server runs them) by SQLAlchemy
bulk inserts: a small one (1% of the rows) and a full one, each with 20 researchers in a lab run,
submissions spread over ten hours with Ladder-like releases and 2% probes, findings (20%
results citing their author's submissions) with revisions, tags and full-text rows, comments
and telemetry. Then it renders every page through the real app (in-process, httpx's ASGI
transport: routing, queries, templates) ``--reps`` times and prints, from this one run, p50 and
p95 per page, the CPU time this process spent per render (a fairer number when the machine is
shared: wall time then includes waiting for a core), p95 as a share of the 300 ms target, and
the full/small ratio (how a page scales).

Scores need a served task: the ``tweets`` task built in ``--home`` (default: the lab's home), or
a tiny one built into a temporary home when there is none (a few minutes, once).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select, text

from aarlab.config import Settings
from aarlab.forum.tables import FTS_TABLE, Comment, Finding, FindingRevision, FindingTag
from aarlab.kits.kit import TaskKit
from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.scoring.probes import pack
from aarlab.scoring.service import is_built, kit_dir
from aarlab.scoring.tables import Submission
from aarlab.server.app import create_app
from aarlab.store import identity
from aarlab.store.audit import AuditEvent
from aarlab.store.db import Store

ADMIN = "bench-admin"
TARGET_MS = 300.0
TASK = "tweets"
WORDS = ["calibration", "entropy", "bootstrap", "confidence", "teacher", "student", "noise",
         "threshold", "ensemble", "auxiliary", "transfer", "probe", "sarcasm", "smoothing",
         "consistency", "seed", "variance", "gap", "logconf", "kmeans"]
TAGS = ["confidence", "consistency", "logconf", "smoothing", "summary", "bootstrap", "em"]


def served_settings(home: Path | None) -> Settings:
    sources = Path(os.environ.get("AARLAB_SOURCES_ROOT", Path.home() / ".cache/aarlab/sources"))
    settings = Settings(home=home, sources_root=sources) if home else Settings()
    if not is_built(settings, TASK):
        from aarlab.tasks.build import BuildOptions, build_task
        from aarlab.tasks.registry import Sizes, get_task

        settings = Settings(home=Path(tempfile.mkdtemp(prefix="aarlab-bench-web-")),
                            sources_root=sources)
        print(f"building a tiny {TASK} task in {settings.home} ...", flush=True)
        build_task(get_task(TASK), settings,
                   BuildOptions(sizes=Sizes(120, 400, 160), weak_seeds=3))
    return settings


def fill(store: Store, n_test: int, n_subs: int, n_findings: int, rng: random.Random) -> dict:
    """Bulk-insert a lab's worth of rows; returns ids the pages will be asked about."""
    t0 = datetime.now(UTC) - timedelta(hours=10)
    with store.session() as s:
        ids = [identity.add_researcher(s, f"r{i:02d}")[0].id for i in range(20)]
        lab = LabRun(task=TASK, status="running", elapsed_s=36_000.0,
                     config={"task": TASK, "researchers": 20, "budget_s": 72_000})
        s.add(lab)
        s.flush()
        ws = Path(tempfile.mkdtemp(prefix="aarlab-bench-ws-"))
        s.execute(insert(LabMember), [
            {"lab_id": lab.id, "researcher_id": r, "policy": "search",
             "direction": WORDS[i % len(WORDS)], "direction_text": "bench",
             "workspace": str(ws / f"r{i:02d}"), "sandboxed": True, "restarts": i % 3,
             "status": "running"} for i, r in enumerate(ids)])

    best: dict[int, float] = {}
    subs, owners = [], []
    for k in range(n_subs):
        r = rng.choice(ids)
        fb = rng.gauss(0.1, 0.3) + 0.3 * k / n_subs  # the lab gets better over the day
        probe = rng.random() < 0.02
        new_best = not probe and fb > best.get(r, -9) + 0.02
        if new_best:
            best[r] = round(fb / 0.02) * 0.02
        subs.append({
            "researcher_id": r, "task": TASK,
            "created_at": t0 + timedelta(seconds=36_000 * k / n_subs), "n_rows": n_test,
            "predictions": pack(np.frombuffer(rng.randbytes(n_test), np.uint8) & 1),
            "method": f"{rng.choice(WORDS)}(k={rng.randint(1, 9)})", "snapshot_id": None,
            "acc_test": 0.8, "acc_feedback": 0.8, "acc_final": 0.8, "pgr_test": fb,
            "pgr_feedback": fb, "pgr_final": fb - rng.random() * 0.1,
            "released_pgr": best.get(r), "new_best": new_best, "is_probe": probe,
            "probe_of": None})
        owners.append(r)
    with store.session() as s:
        s.execute(insert(Submission), subs)
        sub_ids = list(s.scalars(select(Submission.id).order_by(Submission.id)))
        probes = list(s.scalars(select(Submission.id).where(Submission.is_probe)))
        flags = [{"created_at": t0, "kind": "probe", "researcher_id": owners[i - sub_ids[0]],
                  "details": {"submission_id": i, "probe_of": i - 1, "task": TASK}}
                 for i in probes if i > sub_ids[0]]
        if flags:  # an empty list would insert one row of defaults
            s.execute(insert(AuditEvent), flags)

    heads, revs, tags, fts, comments = [], [], [], [], []
    for k in range(n_findings):
        fid = k + 1
        j = rng.randrange(len(sub_ids))
        author = owners[j] if k % 5 == 0 else rng.choice(ids)
        kind = "result" if k % 5 == 0 else rng.choice(["hypothesis", "insight", "error"])
        title = " ".join(rng.choices(WORDS, k=5))
        body = " ".join(rng.choices(WORDS, k=60))
        ftags = sorted(set(rng.choices(TAGS, k=2)))
        when = t0 + timedelta(seconds=36_000 * k / max(1, n_findings))
        heads.append({"id": fid, "kind": kind, "author_id": author, "task": TASK,
                      "submission_id": sub_ids[j] if kind == "result" else None,
                      "snapshot_id": None, "created_at": when, "updated_at": when,
                      "revision": 1, "title": title, "body": body, "tags": ftags,
                      "tags_text": " ".join(ftags), "score": rng.randint(-2, 5),
                      "n_comments": int(k % 7 == 0), "hidden": k % 97 == 0})
        revs.append({"finding_id": fid, "number": 1, "author_id": author, "title": title,
                     "body": body, "tags": ftags, "created_at": when})
        tags += [{"finding_id": fid, "tag": t} for t in ftags]
        fts.append({"id": fid, "title": title, "body": body, "tags": " ".join(ftags)})
        if k % 7 == 0:
            comments.append({"finding_id": fid, "author_id": rng.choice(ids),
                             "body": "reproduced", "created_at": when})
    events = [{"researcher_id": rng.choice(ids), "kind": rng.choice(["experiment", "idea"]),
               "payload": {"spec": rng.choice(WORDS), "signal": 0.8, "seconds": 3.0},
               "created_at": t0 + timedelta(seconds=7 * k)} for k in range(n_subs // 2)]
    with store.session() as s:
        s.execute(insert(Finding), heads)
        s.execute(insert(FindingRevision), revs)
        s.execute(insert(FindingTag), tags)
        s.execute(insert(Comment), comments)
        s.execute(insert(LabEvent), events)
        s.execute(text(f"INSERT INTO {FTS_TABLE}(rowid, title, body, tags) "
                       "VALUES (:id, :title, :body, :tags)"), fts)
    result = next(h["id"] for h in heads if h["kind"] == "result" and not h["hidden"])
    return {"researcher": "r07", "finding": result, "submission": sub_ids[len(sub_ids) // 2]}


def pages(ids: dict) -> list[tuple[str, bool]]:
    """(path, as admin) for every page a person opens."""
    return [("/", False), ("/", True), ("/api/live", False),
            (f"/fragments/progress?task={TASK}", False), ("/leaderboard", False),
            ("/leaderboard", True), ("/forum", False), ("/forum?q=calibration+entropy", False),
            ("/forum?kind=result&sort=pgr", False), ("/forum?tag=smoothing&page=3", False),
            (f"/forum/{ids['finding']}", False), (f"/submissions/{ids['submission']}", True),
            ("/researchers", False), (f"/researchers/{ids['researcher']}", False),
            ("/audit", True), (f"/tasks/{TASK}", False)]


async def measure(app, plan: list[tuple[str, bool]], reps: int) -> dict:  # noqa: ANN001
    out = {}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bench") as c:
        for path, as_admin in plan:
            headers = admin if as_admin else {}
            for _ in range(3):  # warm: page cache, template cache, the served task's key
                r = await c.get(path, headers=headers)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
            times, cpu = [], []
            for _ in range(reps):
                t0, c0 = time.perf_counter(), time.process_time()
                r = await c.get(path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                assert r.status_code == 200
            times.sort()
            out[(path, as_admin)] = (statistics.median(times),
                                     times[min(len(times) - 1, int(0.95 * len(times)))],
                                     statistics.median(cpu))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=None, help="AARLAB_HOME with tweets built")
    ap.add_argument("--submissions", type=int, default=10_000)
    ap.add_argument("--findings", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    base = served_settings(args.home)
    n_test = len(TaskKit(kit_dir(base, TASK)).ids("test"))
    scratch = Path(tempfile.mkdtemp(prefix="aarlab-bench-web-db-"))
    results, fill_s = {}, {}
    for label, scale in (("small", 0.01), ("full", 1.0)):
        settings = base.model_copy(update={
            "db_url": f"sqlite:///{scratch / f'{label}.db'}", "admin_token": ADMIN,
            "snapshots_root": scratch / "blobs"})
        store = Store(settings.database_url)
        store.create_all()
        t0 = time.perf_counter()
        ids = fill(store, n_test, max(50, int(args.submissions * scale)),
                   max(50, int(args.findings * scale)), random.Random(args.seed))
        fill_s[label] = time.perf_counter() - t0
        results[label] = anyio.run(measure, create_app(settings, store), pages(ids), args.reps)

    table = Table("page", "as", "p50 ms", "p95 ms", "CPU ms (p50)", "p95 / 300 ms",
                  "full / small (p50)",
                  title=f"dashboard with {args.submissions} submissions and {args.findings} "
                        f"findings; {args.reps} renders each; load {os.getloadavg()[0]:.1f}")
    small, full = results["small"], results["full"]
    for (key, (p50, p95, cpu)), (s50, *_) in zip(full.items(), small.values(), strict=True):
        path, as_admin = key
        table.add_row(path.split("?")[0] if path.startswith("/fragments") else path,
                      "admin" if as_admin else "public", f"{p50:.1f}", f"{p95:.1f}",
                      f"{cpu:.1f}", f"{p95 / TARGET_MS:.2f}", f"{p50 / s50:.1f}x")
    Console(width=132).print(table)
    worst = max(full.items(), key=lambda kv: kv[1][1])
    over = sum(1 for v in full.values() if v[1] > TARGET_MS)
    print(f"slowest p95: {worst[0][0]} ({'admin' if worst[0][1] else 'public'}) "
          f"{worst[1][1]:.1f} ms = {worst[1][1] / TARGET_MS:.2f} of the 300 ms target; "
          f"{over} of {len(full)} pages over it; cores {os.cpu_count()}, load "
          f"{os.getloadavg()[0]:.1f}; bulk fill {fill_s['full']:.1f} s "
          f"(small store {fill_s['small']:.1f} s)")


if __name__ == "__main__":
    main()
