"""The prestarted Playwright driver: stopped on exit whether or not anything used it, also when its
user is cancelled (Ctrl-C) while it is still starting; and the command line's answer to Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pressrun.driver import PrestartedDriver

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "social-card"


def command_lines(pid: int) -> list[str]:
    lines = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):  # it may have exited since it was listed
            lines.append(" ".join(child.cmdline()))
    return lines


def driver_pids() -> set[int]:
    """Playwright drivers this test process runs (other tests' fixtures may have theirs)."""
    pids = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "run-driver" in " ".join(child.cmdline()):
                pids.add(child.pid)
    return pids


def wait_until_gone(pids: set[int], timeout_s: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while (left := pids & driver_pids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_an_unused_driver_is_stopped_on_exit():
    before = driver_pids()
    with PrestartedDriver():
        ours = driver_pids() - before
        assert ours, "the driver is spawned on entry"
    assert wait_until_gone(ours) == set()


def test_a_user_cancelled_while_the_driver_starts_leaves_it_to_be_stopped_cleanly():
    before = driver_pids()
    with PrestartedDriver() as driver:
        ours = driver_pids() - before

        async def cancelled_while_waiting() -> None:
            waiting = asyncio.ensure_future(driver.playwright)
            await asyncio.sleep(0)
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting

        driver.run(cancelled_while_waiting())
        playwright = driver.run(wait_for(driver))  # the start itself went on
        assert playwright.chromium.name == "chromium"
    assert ours and wait_until_gone(ours) == set()


async def wait_for(driver: PrestartedDriver):
    return await driver.playwright


@pytest.mark.chromium
@pytest.mark.parametrize("when", ["driver starting", "rendering"])
def test_ctrl_c_during_start_up_or_rendering_exits_130_with_no_traceback(tmp_path, when):
    rows = tmp_path / "rows.csv"
    source = (EXAMPLE / "data.csv").read_text(encoding="utf-8").splitlines()
    rows.write_text("\n".join([source[0], *(source[1:] * 40)]) + "\n", encoding="utf-8")
    command = [str(Path(sys.executable).parent / "pressrun"), "render", str(EXAMPLE), str(rows), "-o", str(tmp_path / "out")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the command has spawned the driver, or a browser
        names = command_lines(process.pid)
        if any(("run-driver" if when == "driver starting" else "--type=renderer") in n for n in names):
            break
        time.sleep(0.005)
    if when == "rendering":
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.rstrip().endswith("interrupted")
