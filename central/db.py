"""Opening the store: an SQLAlchemy engine for a database URL, migrated with Alembic.

SQLite (one file, the default) for a school, PostgreSQL (`postgresql://...`)
for a district. Alembic migrations (central/migrations/) are the only way
tables are created, so both engines carry the same schema.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from central.errors import StoreError

DEFAULT_URL = "sqlite:///central.db"


def normalize_url(url: str) -> str:
    """Accept `postgresql://` (driven by psycopg 3) and `sqlite:///path`; StoreError otherwise."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"--database {url!r} is not a database URL: use sqlite:///FILE or postgresql://USER@HOST/DB"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"--database {url!r}: central supports sqlite:///FILE and postgresql://... only"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # the web pages read while the ingest writes
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def begin_write(session: Session) -> None:
    """Open the session's transaction for writing; call it first in a `session.begin()` block.

    On SQLite, Python's sqlite3 module opens a transaction only before INSERT/UPDATE/DELETE, so
    a SAVEPOINT issued first started one of its own and its RELEASE committed it: a batch was
    not one transaction, and a failed commit could not be taken back. BEGIN IMMEDIATE makes the
    batch one transaction (and takes the one write lock at once instead of on upgrade).
    PostgreSQL needs nothing.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))


def make_engine(url: str = DEFAULT_URL) -> Engine:
    normalized = normalize_url(url)
    parsed = make_url(normalized)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(normalized, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(normalized, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("central").joinpath("migrations")))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (creating it on first use)."""
    from alembic import command

    cfg = _alembic_config(engine)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise StoreError(
            f"cannot open or migrate {engine.url.render_as_string()}: {exc.orig}"
        ) from None


def open_store(url: str = DEFAULT_URL) -> tuple[Engine, sessionmaker[Session]]:
    """Engine + session factory for a migrated database."""
    engine = make_engine(url)
    migrate(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)
