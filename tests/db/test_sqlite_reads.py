"""On SQLite, reads never wait for an open write transaction (WAL + deferred BEGIN for reads)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import insert, select, text

from pressrun.db import connect, migrate
from pressrun.db.engine import reading
from pressrun.db.schema import workspaces


def test_a_read_does_not_wait_for_an_open_write_transaction(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    writing = threading.Event()
    release = threading.Event()

    def hold_the_write_lock() -> None:
        with engine.begin() as conn:
            conn.execute(insert(workspaces).values(uid="ws_1", name="one", created_at=text("CURRENT_TIMESTAMP")))
            writing.set()
            release.wait(20)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert writing.wait(10)
        started = time.monotonic()
        with reading(engine) as conn:
            uncommitted = conn.execute(select(workspaces.c.uid)).all()
        waited = time.monotonic() - started
    finally:
        release.set()
        writer.join()
    assert uncommitted == []  # the writer has not committed yet
    assert waited < 5, f"the read waited {waited:.1f} s for the writer (busy timeout is 30 s)"
    with reading(engine) as conn:
        assert conn.execute(select(workspaces.c.uid)).scalars().all() == ["ws_1"]
