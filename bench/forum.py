"""Forum throughput with 10k findings: posts/s and searches/s, through the service and over HTTP.

    .venv/bin/python bench/forum.py [--findings 10000] [--queries 500] [--http 300]

Builds a scratch SQLite store (WAL, synchronous=FULL, as the server runs it), registers 20
researchers and 200 scored submissions (synthetic rows: this measures the forum, not scoring),
then posts ``--findings`` findings one transaction each (as the API does: head, revision, tags
and the FTS5 row together), 20% of them results. It then runs ``--queries`` searches of two
random words with a random filter, and prints, from this one run:

- posts/s and searches/s through ``aarlab.forum.service`` (the DB cost) and over HTTP (the app
  in-process via httpx's ASGI transport: routing, auth, validation, JSON);
- the ratio of FTS5 search speed to a plain ``LIKE '%word%'`` scan over the same rows and words
  (what search would cost without the index).

The machine may be shared: the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import anyio
import httpx
from sqlalchemy import func, select

from aarlab.config import Settings
from aarlab.forum import search, service
from aarlab.forum.schemas import FindingIn
from aarlab.forum.tables import Finding
from aarlab.scoring.tables import Submission
from aarlab.server.app import create_app
from aarlab.store import identity
from aarlab.store.db import Store

ADMIN = "bench-admin"
DOMAIN = [
    "calibration", "entropy", "bootstrap", "confidence", "teacher", "student", "label", "noise",
    "soft", "hard", "threshold", "ensemble", "loss", "auxiliary", "weak", "strong", "ceiling",
    "transfer", "probe", "linear", "mlp", "minilm", "tweets", "snli", "pairwise", "binary",
    "seed", "variance", "gap", "recovered",
]


def vocabulary(rng: random.Random, n: int = 3000) -> list[str]:
    syll = ["ka", "lo", "mi", "ter", "an", "ro", "vi", "sen", "du", "pra", "el", "no"]
    return DOMAIN + ["".join(rng.choices(syll, k=rng.randint(2, 4))) for _ in range(n)]


def text(rng: random.Random, vocab: list[str], n: int) -> str:
    return " ".join(rng.choices(vocab, k=n))


def seed_store(store: Store, rng: random.Random) -> tuple[list[int], list[tuple[int, int]]]:
    """20 researchers and 200 submissions; returns (researcher ids, (submission, owner) pairs)."""
    with store.session() as s:
        rids = [identity.add_researcher(s, f"r{i}")[0].id for i in range(20)]
        subs = []
        for i in range(200):
            owner = rng.choice(rids)
            sub = Submission(researcher_id=owner, task=rng.choice(["tweets", "snli-pref"]),
                             created_at=identity.utcnow(), n_rows=1, predictions=b"\0",
                             method=f"m{i}", acc_test=0.8, acc_feedback=0.8, acc_final=0.8,
                             pgr_test=0.3, pgr_feedback=0.3, pgr_final=0.3,
                             released_pgr=round(rng.uniform(-0.2, 0.8), 2), new_best=True)
            s.add(sub)
            s.flush()
            subs.append((sub.id, owner))
    return rids, subs


def post_all(store: Store, rng: random.Random, vocab: list[str], n: int, rids: list[int],
             subs: list[tuple[int, int]]) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        if rng.random() < 0.2:
            sub_id, author = rng.choice(subs)
            data = FindingIn(kind="result", title=text(rng, vocab, 6), body=text(rng, vocab, 80),
                             tags=rng.sample(DOMAIN, 2), submission_id=sub_id)
        else:
            author = rng.choice(rids)
            data = FindingIn(kind=rng.choice(["hypothesis", "insight", "error"]),
                             title=text(rng, vocab, 6), body=text(rng, vocab, 80),
                             tags=rng.sample(DOMAIN, 2), task=rng.choice(["tweets", "snli-pref"]))
        with store.session() as s:
            service.create_finding(s, author, data)
    return n / (time.perf_counter() - t0)


def queries(rng: random.Random, n: int) -> list[search.Query]:
    out = []
    for _ in range(n):
        f = rng.choice([{}, {"kind": "result"}, {"task": "tweets"}, {"tag": rng.choice(DOMAIN)}])
        out.append(search.Query(q=" ".join(rng.sample(DOMAIN, 2)), limit=20,
                                sort=rng.choice([None, "new", "top", "pgr"]), **f))
    return out


def search_all(store: Store, qs: list[search.Query]) -> tuple[float, int]:
    t0, hits = time.perf_counter(), 0
    with store.session() as s:
        for q in qs:
            found, total = service.list_findings(s, service.Viewer(is_admin=True), q)
            hits += total
    return len(qs) / (time.perf_counter() - t0), hits


def like_all(store: Store, qs: list[search.Query]) -> float:
    """The same word queries as a LIKE scan (no index can help a leading wildcard)."""
    t0 = time.perf_counter()
    with store.session() as s:
        for q in qs:
            stmt = select(Finding).where(Finding.hidden.is_(False))
            for w in q.q.split():
                stmt = stmt.where((Finding.title + " " + Finding.body).like(f"%{w}%"))
            s.execute(stmt.add_columns(func.count().over()).order_by(Finding.id.desc())
                      .limit(20)).all()  # total as a window count, as search() does
    return len(qs) / (time.perf_counter() - t0)


async def over_http(settings: Settings, store: Store, rng: random.Random, vocab: list[str],
                    n: int) -> tuple[float, float]:
    app = create_app(settings, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://lab") as c:
        r = await c.post("/v1/admin/researchers", json={"name": "http-bench"},
                         headers={"Authorization": f"Bearer {ADMIN}"})
        who = {"Authorization": f"Bearer {r.json()['token']}"}
        t0 = time.perf_counter()
        for _ in range(n):
            r = await c.post("/v1/forum/findings", headers=who, json={
                "kind": "insight", "title": text(rng, vocab, 6), "body": text(rng, vocab, 80),
                "tags": rng.sample(DOMAIN, 2), "task": "tweets"})
            assert r.status_code == 201, r.text
        posts = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(n):
            r = await c.get("/v1/forum/findings", headers=who,
                            params={"q": " ".join(rng.sample(DOMAIN, 2)), "kind": "result"})
            assert r.status_code == 200, r.text
        return posts, n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--findings", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--http", type=int, default=300, help="posts and searches over HTTP")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    vocab = vocabulary(rng)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), admin_token=ADMIN)
        store = Store(settings.database_url)
        store.create_all()
        rids, subs = seed_store(store, rng)
        posts = post_all(store, rng, vocab, args.findings, rids, subs)
        qs = queries(rng, args.queries)
        searches, hits = search_all(store, qs)
        likes = like_all(store, qs)
        http_posts, http_searches = anyio.run(over_http, settings, store, rng, vocab, args.http)
        with store.session() as s:
            n = s.scalar(select(func.count()).select_from(Finding))
    print(f"findings in store: {n}  (load average {os.getloadavg()[0]:.1f})")
    print(f"service  posts/s    {posts:8.1f}   (one transaction each, FTS row included)")
    print(f"service  searches/s {searches:8.1f}   ({hits / len(qs):.0f} matches per query on avg)")
    print(f"http     posts/s    {http_posts:8.1f}   ratio to service {http_posts / posts:.2f}")
    print(f"http     searches/s {http_searches:8.1f}   ratio to service "
          f"{http_searches / searches:.2f}")
    print(f"LIKE-scan searches/s {likes:7.1f}   FTS5 speed-up x{searches / likes:.1f}")


if __name__ == "__main__":
    main()
