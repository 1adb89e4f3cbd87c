"""migrate() brings an empty database to head, is safe to run again, and matches schema.py."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import IntegrityError

from pressrun.db import repo
from pressrun.db.engine import alembic_config, connect, migrate
from pressrun.db.schema import api_keys, metadata
from pressrun.errors import ConfigError

# The tables repo.py queries; schema.py may define more (webhooks...), and migrate() must create them all.
CORE_TABLES = {"workspaces", "api_keys", "templates", "template_versions", "template_assets", "batches",
               "items", "files", "idempotency_keys"}
ALL_TABLES = set(metadata.tables) | {"alembic_version"}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_the_schema_defines_the_core_tables():
    assert CORE_TABLES <= set(metadata.tables)


def test_migrate_creates_every_table_and_is_idempotent(fresh_url):
    engine = connect(fresh_url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
        assert current_revision(engine) is None

        migrate(engine)
        assert set(inspect(engine).get_table_names()) == ALL_TABLES
        assert current_revision(engine) == head_revision(engine)
        key, _ = repo.create_key(engine, name="survivor", plan="default")

        migrate(engine)  # every start runs it again: no error, nothing lost
        migrate(engine)
        assert set(inspect(engine).get_table_names()) == ALL_TABLES
        assert current_revision(engine) == head_revision(engine)
        assert repo.find_key(engine, key) is not None
        assert repo.count_keys(engine) == 1
    finally:
        engine.dispose()


def test_alembic_current_is_head(db):
    head = head_revision(db)
    assert head is not None
    assert current_revision(db) == head
    assert len(ScriptDirectory.from_config(alembic_config(db)).get_heads()) == 1  # no branches


def test_migrated_database_matches_schema_py(db):
    """The migrations and the tables the code queries do not drift apart (no autogenerate diff)."""
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_every_column_and_index_exists(db):
    inspector = inspect(db)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name


# --- connect() ----------------------------------------------------------------------------------


def test_connect_rejects_bad_and_unsupported_urls():
    with pytest.raises(ConfigError) as info:
        connect("not a url at all")
    assert info.value.details["setting"] == "PRESSRUN_DATABASE_URL"
    with pytest.raises(ConfigError, match="not supported"):
        connect("mysql://user@localhost/db")


def test_sqlite_engine_settings(tmp_path):
    path = tmp_path / "nested" / "dir" / "meta.db"
    engine = connect(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()  # created for us
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(db):
    with pytest.raises(IntegrityError), db.begin() as conn:
        conn.execute(api_keys.insert().values(workspace_id=12345, name="x", prefix="pr_x", key_hash="0" * 64,
                                              plan="default", created_at=repo.now()))
    assert repo.count_keys(db) == 0


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path):
    """It holds webhook secrets and API key hashes; it was created 0644."""
    import os
    import stat

    path = tmp_path / "data" / "pressrun.db"
    old_umask = os.umask(0o022)
    try:
        engine = connect(f"sqlite:///{path}")
        migrate(engine)
        engine.dispose()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
