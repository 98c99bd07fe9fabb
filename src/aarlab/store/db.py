"""Engine and session handling shared by every service on the lab's app.

SQLite runs in WAL mode with synchronous=FULL so that a ``kill -9`` loses nothing committed;
foreign keys are enforced. Any other URL (e.g. ``postgresql+psycopg://...``) is used as given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import DDL, Table, create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    """Every table in the store derives from this one metadata."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def add_missing_columns(engine: Engine) -> None:
    """The one migration we need: a nullable column added to a table after a store was made.

    ``create_all`` never alters an existing table; a store from an older version would lack
    the column. Only nullable columns are added, so old rows read as "unknown" (NULL).
    """
    insp = inspect(engine)
    existing = set(insp.get_table_names())
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name not in existing:
                continue
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have and col.nullable:
                    kind = col.type.compile(dialect=engine.dialect)
                    conn.exec_driver_sql(
                        f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {kind}')


class Store:
    """An engine plus a session factory; ``create_all`` makes every table registered so far
    (``aarlab.server.app`` imports them all; the store names no service above it)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        Base.metadata.create_all(self.engine)
        add_missing_columns(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with self.sessions() as s, s.begin():
            yield s


def append_only(table: Table) -> None:
    """Make ``table`` append-only in the database itself (SQLite or Postgres triggers), so no
    code path, ORM or raw SQL, can rewrite or delete a row."""
    name = table.name
    sqlite = [f"CREATE TRIGGER IF NOT EXISTS {name}_no_{op.lower()} BEFORE {op} ON {name} "
              f"BEGIN SELECT RAISE(ABORT, '{name} is append-only'); END"
              for op in ("UPDATE", "DELETE")]
    postgres = [f"CREATE OR REPLACE FUNCTION {name}_refuse() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{name} is append-only'; END; $$ LANGUAGE plpgsql",
                f"CREATE TRIGGER {name}_no_change BEFORE UPDATE OR DELETE ON {name} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}_refuse()"]
    for dialect, statements in (("sqlite", sqlite), ("postgresql", postgres)):
        for sql in statements:
            event.listen(table, "after_create", DDL(sql).execute_if(dialect=dialect))
