"""Fixtures for the metadata layer (pressrun.db), run against both backends.

``db`` is parametrized: a migrated SQLite file in ``tmp_path``, and a migrated PostgreSQL database
(``pressrun_test_<random>``, created for this session and dropped at its end; its tables are emptied
before every test). When PostgreSQL is unreachable the PostgreSQL cases skip, or fail when CI=true.

``fresh_url`` gives an empty, unmigrated database of either kind, for the migration tests.
``make`` builds workspaces, templates and batches through the repo functions themselves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select

from pressrun.db import repo
from pressrun.db.engine import connect, migrate
from pressrun.db.schema import batches, metadata
from pressrun.errors import InvalidValueError

PG_HOST = os.environ.get("PRESSRUN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PRESSRUN_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("PRESSRUN_TEST_PG_USER", "postgres")
PG_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres connect_timeout=3"

BACKENDS = ["sqlite", "postgresql"]

_pg_error: list[str | None] = []  # memo: [None] reachable, [reason] unreachable


def _pg_unreachable() -> str | None:
    if not _pg_error:
        try:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute("SELECT 1")
            _pg_error.append(None)
        except psycopg.Error as exc:
            _pg_error.append(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {exc}")
    return _pg_error[0]


def require_postgres() -> None:
    reason = _pg_unreachable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped (connections and all) on exit. Yields its URL."""
    require_postgres()
    name = f"pressrun_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """One migrated PostgreSQL database for the session."""
    with pg_database() as url:
        engine = connect(url)
        try:
            migrate(engine)
            yield engine
        finally:
            engine.dispose()


def _empty(engine: Engine) -> None:
    # DELETE, children first: much faster than TRUNCATE on tables this small.
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating each time costs more than copying)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "meta.db"
    engine = connect(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name("meta.db-wal").exists()
    return path


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty metadata database: SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "meta.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        engine = connect(f"sqlite:///{path}")
        yield engine
        engine.dispose()
    else:
        require_postgres()
        engine = request.getfixturevalue("pg_engine")
        _empty(engine)
        yield engine


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, unmigrated database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        with pg_database() as url:
            yield url


# --- building data through the repo -------------------------------------------------------------


def version_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "html": "<p>{{ name }}</p>", "css": "p { color: red }", "width": 600, "height": 400,
        "format": "png", "quality": 90, "scale": 1.0, "locale": "en-US",
        "pdf": {"landscape": False}, "sample_data": {"name": "Ada"}, "column_types": {},
    }
    return fields | changes


@dataclass
class Workspace:
    id: int
    uid: str
    key: str


class Maker:
    def __init__(self, engine: Engine) -> None:
        self.db = engine

    def workspace(self, name: str = "ws") -> Workspace:
        key, record = repo.create_key(self.db, name=name, plan="default")
        return Workspace(record.workspace_id, record.workspace_uid, key)

    def template(self, ws: Workspace, name: str = "card", **changes: Any) -> Any:
        uid = repo.create_template(self.db, ws.id, name, version_fields(**changes))
        return repo.get_template(self.db, ws.id, uid)

    def batch(self, ws: Workspace, n: int = 3, *, errors: frozenset[int] | set[int] = frozenset(),
              max_items: int = 100_000, template: Any = None, **options: Any) -> tuple[str, int]:
        """A batch of ``n`` rows ({"i": index}); indexes in ``errors`` are rows with a row error.
        Returns (uid, id)."""
        template = template or self.template(ws)
        rows = (({"i": i}, self.row_error(f"bad value in row {i}") if i in errors else None) for i in range(n))
        uid, total = repo.create_batch(self.db, self.batch_options(ws, template, **options), rows, max_items)
        assert total == n
        return uid, self.batch_id(uid)

    @staticmethod
    def batch_options(ws: Workspace, template: Any, **options: Any) -> dict[str, Any]:
        return {
            "workspace_id": ws.id, "template_id": template.id, "template_version": template.version,
            "format": "png", "quality": 90, "scale": 1.0, "width": 600, "height": 400, "locale": None,
            "concurrency": 4, "filename": None, "zip": False, "webhook_url": None,
        } | options

    @staticmethod
    def row_error(message: str = "bad value") -> InvalidValueError:
        return InvalidValueError(message)

    @staticmethod
    def completed(idx: int) -> dict[str, Any]:
        """The outcome the dispatcher records for a rendered item."""
        return {"status": "completed", "output_key": f"batches/x/{idx}.png", "width": 600, "height": 400,
                "bytes": 1234, "render_ms": 12, "file_name": None, "error_code": None, "error_message": None}

    @staticmethod
    def failed(code: str = "render_timeout") -> dict[str, Any]:
        return {"status": "failed", "error_code": code, "error_message": "it went wrong"}

    def batch_id(self, uid: str) -> int:
        with self.db.connect() as conn:
            return conn.execute(select(batches.c.id).where(batches.c.uid == uid)).scalar_one()


@pytest.fixture
def make(db: Engine) -> Maker:
    return Maker(db)


class Recorder:
    """Stands in for webhooks.events.EventRecorder (a repo.BatchEvents): notes what repo asks it to record, and in which
    transaction (so a test can tell events written once from events written twice)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[tuple[int, str]] = []
        self.items: list[tuple[int, int]] = []

    def batch_finished(self, conn: Any, batch_id: int, status: str) -> None:
        assert conn.in_transaction()
        with self.lock:
            self.batches.append((batch_id, status))

    def item_finished(self, conn: Any, batch_id: int, item_id: int) -> None:
        assert conn.in_transaction()
        with self.lock:
            self.items.append((batch_id, item_id))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
