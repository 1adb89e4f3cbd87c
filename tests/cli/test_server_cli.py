"""`pressrun keys` against a real SQLite database, and `pressrun serve --seed-templates` with the examples."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import EXAMPLES, ServerProcess

PRESSRUN = str(Path(sys.executable).parent / "pressrun")


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESSRUN, *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PRESSRUN_DATA_DIR": str(data_dir)}, timeout=60)


def test_keys_create_list_revoke(tmp_path: Path):
    created = run("keys", "create", "--name", "ci robot", "--plan", "free", data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("pr_") and len(key) > 40
    assert "shown only now" in created.stderr
    assert key not in (tmp_path / "pressrun.db").read_bytes().decode("latin-1"), "only a hash is stored"

    listed = run("keys", "list", data_dir=tmp_path)
    [line] = listed.stdout.strip().splitlines()
    key_id, prefix, name, _workspace, plan, _created, state = line.split("\t")
    assert (prefix, name, plan, state) == (key[:10] + "…", "ci robot", "free", "active")

    same_workspace = run("keys", "create", "--name", "second", "--workspace", _workspace, data_dir=tmp_path)
    assert same_workspace.returncode == 0, same_workspace.stderr
    assert run("keys", "list", data_dir=tmp_path).stdout.count(_workspace) == 2

    assert run("keys", "revoke", key_id, data_dir=tmp_path).returncode == 0
    assert "revoked" in run("keys", "list", data_dir=tmp_path).stdout.splitlines()[0]
    again = run("keys", "revoke", key_id, data_dir=tmp_path)
    assert again.returncode != 0 and "no active key" in again.stderr


def test_keys_create_refuses_unknown_plan_and_workspace(tmp_path: Path):
    bad_plan = run("keys", "create", "--name", "x", "--plan", "platinum", data_dir=tmp_path)
    assert bad_plan.returncode == 2 and "'platinum' is not a plan" in bad_plan.stderr and "default" in bad_plan.stderr
    bad_ws = run("keys", "create", "--name", "x", "--workspace", "ws_nope", data_dir=tmp_path)
    assert bad_ws.returncode == 2 and "ws_nope" in bad_ws.stderr


@pytest.mark.chromium
def test_serve_seeds_the_examples_once_and_they_render(tmp_path: Path):
    server = ServerProcess(tmp_path / "data", args=["--seed-templates", str(EXAMPLES)])
    try:
        server.start()
        headers = {"Authorization": f"Bearer {server.first_key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            templates = client.get("/templates").json()["templates"]
            names = sorted(t["name"] for t in templates)
            assert len(names) == 3
            certificate = next(t for t in templates if t["format"] == "pdf" and t["pdf"]["landscape"])
            csv_rows = (EXAMPLES / "certificate" / "data.csv").read_bytes()
            response = client.post(f"/templates/{certificate['uid']}/batch-render", content=csv_rows,
                                   headers={"Content-Type": "text/csv"})
            assert response.status_code == 202, response.text
            batch = response.json()["batchId"]
            for _ in range(600):
                done = client.get(f"/templates/batch/{batch}/results?limit=1").json()
                if done["status"] not in ("pending", "processing"):
                    break
                time.sleep(0.1)
            assert (done["status"], done["completedCount"]) == ("completed", response.json()["totalItems"])
        server.stop()
        server.start()  # a second start imports nothing twice
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            assert client.get("/templates").json()["total"] == 3
    finally:
        server.stop()


@pytest.mark.parametrize("command", [["serve"], ["keys", "list"]])
def test_a_database_that_cannot_be_reached_is_exit_2_naming_the_setting(command, tmp_path):
    """serve exits as every other command does when it cannot start: 2, one line naming the fix."""
    result = subprocess.run(
        [PRESSRUN, *command], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PRESSRUN_DATA_DIR": str(tmp_path),
             "PRESSRUN_DATABASE_URL": "postgresql+psycopg://someone:hunter2@127.0.0.1:1/nothing"},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot reach the database at postgresql+psycopg://someone:***@127.0.0.1:1")
    assert "PRESSRUN_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
