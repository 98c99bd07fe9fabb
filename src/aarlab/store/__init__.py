"""The store: SQLAlchemy models and sessions. SQLite file by default, Postgres by URL."""
