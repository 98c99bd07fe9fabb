"""Finding search: full text plus filters by kind, author, task and tag; sort new/top/pgr/relevance.

SQLite uses the FTS5 table ``findings_fts`` (BM25 ranking, porter stemming); Postgres uses
``to_tsvector``/``plainto_tsquery`` over the same expression its GIN index is built on
(``aarlab.forum.tables``). User text never reaches FTS5's query language: it is cut into words
and each word is quoted, so ``"``, ``AND``, ``*`` or ``NEAR(`` in a query are plain text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Select, func, literal_column, select, text
from sqlalchemy.orm import Session

from aarlab.forum.tables import FTS_TABLE, Finding, FindingTag
from aarlab.scoring.tables import RELEASED_PGR, Submission
from aarlab.store.identity import Researcher

_WORD = re.compile(r"\w+", re.UNICODE)
OPTIMIZE_EVERY = 1000


@dataclass(frozen=True)
class Query:
    q: str | None = None
    kind: str | None = None
    author: str | None = None  # name or numeric id
    task: str | None = None
    tag: str | None = None
    sort: str | None = None  # new | top | pgr | relevance (default: relevance with q, else new)
    limit: int = 20
    offset: int = 0
    include_hidden: bool = False


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def index_finding(session: Session, f: Finding) -> None:
    """Make the full-text index match ``f``'s head; call in the transaction that changed it."""
    if dialect(session) != "sqlite":
        return  # Postgres indexes the head's columns directly
    session.execute(text(f"DELETE FROM {FTS_TABLE} WHERE rowid = :id"), {"id": f.id})
    session.execute(text(f"INSERT INTO {FTS_TABLE}(rowid, title, body, tags) "
                         "VALUES (:id, :title, :body, :tags)"),
                    {"id": f.id, "title": f.title, "body": f.body, "tags": f.tags_text})
    if f.revision == 1 and f.id % OPTIMIZE_EVERY == 0:
        # One row per transaction leaves FTS5 with many small segments; merging them all
        # made searches ~5x faster at 10k findings, for ~0.2 s once per OPTIMIZE_EVERY posts.
        session.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('optimize')"))


def search(session: Session, query: Query) -> tuple[list[Finding], int]:
    """The page of findings matching ``query``, and how many match in all."""
    stmt = select(Finding)
    if not query.include_hidden:
        stmt = stmt.where(Finding.hidden.is_(False))
    if query.kind:
        stmt = stmt.where(Finding.kind == query.kind)
    if query.task:
        stmt = stmt.where(Finding.task == query.task)
    if query.tag:
        stmt = stmt.where(Finding.id.in_(
            select(FindingTag.finding_id).where(FindingTag.tag == query.tag.lower())))
    if query.author:
        stmt = stmt.where(Finding.author_id == _author_id(query.author))
    words = _WORD.findall(query.q or "")
    rank = None
    if words:
        stmt, rank = full_text(dialect(session), stmt, words)
    sort = query.sort or ("relevance" if rank is not None else "new")
    ordered = _order(stmt, sort, rank)

    def count() -> int:
        return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)

    if not words:
        # Without a MATCH a separate count(*) is cheap (~4 ms at 10k findings); a window count
        # would make SQLite sort every full row first (~60 ms).
        rows = session.scalars(ordered.limit(query.limit).offset(query.offset)).all()
        return list(rows), count()
    # With a MATCH the total rides along as a window count: one MATCH per search, not two.
    page = ordered.add_columns(func.count().over().label("total")).limit(
        query.limit).offset(query.offset)
    rows = session.execute(page).all()
    if rows:
        return [r[0] for r in rows], int(rows[0].total)
    return [], 0 if query.offset == 0 else count()


def _author_id(ref: str):
    if ref.isascii() and ref.isdigit():  # "²" is a digit to str.isdigit, not to int()
        return int(ref)
    return select(Researcher.id).where(Researcher.name == ref).scalar_subquery()


def full_text(dialect_name: str, stmt: Select, words: list[str]):
    """``stmt`` narrowed to findings with every word, and a rank expression (lower = better)."""
    if dialect_name == "postgresql":
        doc = func.to_tsvector(literal_column("'english'"), Finding.title + literal_column("' '")
                               + Finding.body + literal_column("' '") + Finding.tags_text)
        tsq = func.plainto_tsquery(literal_column("'english'"), " ".join(words))
        return stmt.where(doc.op("@@")(tsq)), -func.ts_rank(doc, tsq)
    match = " ".join('"' + w.replace('"', "") + '"' for w in words)  # every word, as a phrase
    hits = (select(literal_column("rowid").label("fid"),
                   literal_column(f"bm25({FTS_TABLE})").label("rank"))
            .select_from(text(FTS_TABLE))
            .where(text(f"{FTS_TABLE} MATCH :match").bindparams(match=match))
            # Materialised: else SQLite may walk findings by another index and re-run the
            # MATCH once per row (measured 250-600 ms instead of ~10 ms at 10k findings).
            .cte("fts_hits").prefix_with("MATERIALIZED"))
    return stmt.join(hits, hits.c.fid == Finding.id), hits.c.rank  # bm25: lower is better


def _order(stmt: Select, sort: str, rank) -> Select:  # noqa: ANN001
    if sort == "top":
        return stmt.order_by(Finding.score.desc(), Finding.id.desc())
    if sort == "pgr":
        return (stmt.outerjoin(Submission, Submission.id == Finding.submission_id)
                .order_by(RELEASED_PGR.desc().nulls_last(), Finding.id.desc()))
    if sort == "relevance" and rank is not None:
        return stmt.order_by(rank, Finding.id.desc())
    return stmt.order_by(Finding.id.desc())  # ids grow with time: newest first
