"""What `pressrun render` imports before it can start Chromium is start-up every run pays: the
server stack, PNG recompression and PDF merging are imported only by the commands and settings
that use them, and the rest of pressrun only once Playwright's driver is starting."""

from __future__ import annotations

import subprocess
import sys

LAZY = ["sqlalchemy", "alembic", "fastapi", "uvicorn", "imagecodecs", "numpy", "pypdf", "openpyxl"]


def test_the_render_command_imports_no_heavy_module_it_does_not_need():
    code = (
        "import sys, pressrun.cli, pressrun.runner, pressrun.rendering; "
        f"print(','.join(m for m in {LAZY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"imported at start-up: {loaded}"


def test_the_command_line_module_leaves_the_rest_of_pressrun_for_after_the_driver_starts():
    # `render` and `preview` start Playwright's driver, then import these while it boots (pressrun.driver).
    late = ["pydantic", "jinja2", "rich", "babel", "pressrun.settings", "pressrun.rendering", "pressrun.runner"]
    code = f"import sys, pressrun.cli; print(','.join(m for m in {late!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"imported with the command line module: {loaded}"


def test_python_dash_m_runs_the_same_command_line():
    result = subprocess.run([sys.executable, "-m", "pressrun", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: pressrun ")
    for command in ("render", "preview", "variables"):
        assert command in result.stdout
