"""Engine set-up and migrations.

SQLite is the zero-configuration default: WAL journal (readers never block the writer), a busy
timeout instead of "database is locked", foreign keys on, and ``BEGIN IMMEDIATE`` so a transaction
that will write takes the write lock up front rather than failing half-way. Read-only work goes
through :func:`reading`, which begins a plain (deferred) transaction and so never waits for the
writer. PostgreSQL needs none of that.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from pressrun.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


def connect(url: str) -> Engine:
    """An engine for ``url`` (sqlite:///path or postgresql+psycopg://...)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several kinds for a bad URL
        raise ConfigError(
            f"PRESSRUN_DATABASE_URL={url!r} is not a database URL: {exc}; "
            "use sqlite:///path/to/file.db or postgresql+psycopg://user@host/dbname",
            setting="PRESSRUN_DATABASE_URL",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            create_private(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8)
        _sqlite_pragmas(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
    raise ConfigError(
        f"PRESSRUN_DATABASE_URL={url!r}: {parsed.get_backend_name()} is not supported; use SQLite or PostgreSQL",
        setting="PRESSRUN_DATABASE_URL",
    )


def create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds webhook secrets and key hashes);
    SQLite's WAL and shared-memory files take the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return  # an existing database keeps the permissions its owner gave it


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let us issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


READ_ONLY = "pressrun_read_only"


def reading(engine: Engine) -> Connection:
    """A connection for reads only (use as a context manager); on SQLite it never takes the write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema up to date (idempotent; run at every start). A database that cannot be reached
    is the operator's to fix: a ConfigError naming the setting, not a driver traceback."""
    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise ConfigError(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: {reason}; "
            "check that it is running, or set PRESSRUN_DATABASE_URL",
            setting="PRESSRUN_DATABASE_URL",
        ) from exc
