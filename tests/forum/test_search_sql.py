"""The Postgres branch of search compiles to the expression its GIN index is built on (no
Postgres here: the SQL is checked, the behaviour is tested on SQLite in test_findings)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from aarlab.forum.search import full_text
from aarlab.forum.tables import PG_FULLTEXT, Finding


def _sql(dialect, name: str) -> str:
    stmt, rank = full_text(name, select(Finding.id), ["calibration", "NEAR"])
    return str(stmt.order_by(rank).compile(dialect=dialect(),
                                           compile_kwargs={"literal_binds": True}))


def test_postgres_search_uses_the_indexed_expression():
    sql = _sql(postgresql.dialect, "postgresql").replace("findings.", "")
    assert PG_FULLTEXT in sql
    assert "@@ plainto_tsquery('english', 'calibration NEAR')" in sql
    assert "ts_rank" in sql


def test_sqlite_search_quotes_every_word():
    sql = _sql(sqlite.dialect, "sqlite")
    assert "findings_fts MATCH '\"calibration\" \"NEAR\"'" in sql  # NEAR is a word, not syntax
    assert "bm25(findings_fts)" in sql

