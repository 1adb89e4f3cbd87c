"""The server on PostgreSQL (cluster-mode metadata): a batch survives kill -9 and finishes exactly once."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.api.test_server_process import SERVER_ENV, all_results, auth, make_template, results, wait_done
from tests.db.conftest import pg_database

pytestmark = pytest.mark.chromium


def test_postgres_backed_server_resumes_a_killed_batch_exactly_once(server_factory):
    with pg_database() as url:
        server = server_factory(env={**SERVER_ENV, "PRESSRUN_DATABASE_URL": url})
        server.start()
        key = server.first_key
        with httpx.Client(base_url=server.url, timeout=30) as client:
            uid = make_template(client, key, html="<html><body>{{ n }}{% if n == 7 %}{{ nope }}{% endif %}</body></html>")
            response = client.post(f"/templates/{uid}/batch-render",
                                   json={"variableSets": [{"n": i} for i in range(120)], "concurrency": 4},
                                   headers=auth(key))
            assert response.status_code == 202, response.text
            batch_id = response.json()["batchId"]
            deadline = time.monotonic() + 120
            while results(client, key, batch_id, limit=1)["completedCount"] < 20:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        server.kill()
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            done = wait_done(client, key, batch_id, timeout_s=180)
            assert (done["status"], done["completedCount"], done["failedCount"]) == ("partial", 119, 1)
            every = all_results(client, key, batch_id)
            assert [r["index"] for r in every] == list(range(120))
            assert every[7]["error"]["code"] == "missing_variable"
        server.stop()
