"""Finding and launching Chromium (its process and pipe: bridge.py): launch errors become ours here."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Playwright

from pressrun.errors import BrowserUnavailableError
from pressrun.rendering.bridge import Chromium

# Chromium's headless shell first: the same engine without the desktop browser's UI layers, and
# what Playwright itself launches for headless runs. It captures and prints markedly faster.
# Debian's /usr/bin/chromium-headless-shell is a shell script that runs the binary without exec,
# so signals and process supervision would reach the script, not the browser: use the binary.
SYSTEM_CANDIDATES = (
    "/usr/lib/chromium/chromium-headless-shell",
    "chromium-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome-stable",
    "google-chrome",
)

# Flags for a headless renderer on a closed network: no background traffic, no first-run work,
# and shared memory in /tmp (containers often have a tiny /dev/shm).
LAUNCH_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    "--font-render-hinting=none",
]


# Frame control (the headless shell's HeadlessExperimental domain): a page draws a frame only when
# pressrun asks for one, and the capture comes out of that very frame. Without it, every DOM change
# of a row (body swap, font and image arrival) makes the compositor draw a frame nobody looks at, and
# Page.captureScreenshot then forces one more plus a readback: about a third of the CPU of a capture.
# The other flags make that one frame complete: raster finishes before draw, and images decode
# synchronously instead of appearing a frame later. Full Chromium ignores these flags.
FRAME_CONTROL_ARGS = [
    "--enable-begin-frame-control",
    "--run-all-compositor-stages-before-draw",
    "--disable-checker-imaging",
    "--disable-new-content-rendering-timeout",
]


# Raster and composite in tiles of up to 2048 px a side rather than Chromium's 256 px default (a
# layer smaller than that gets one tile of its own size): a card or a page is then a handful of tiles,
# not dozens, each with its own raster task and draw quad. Measured: 3-5% less CPU per PNG capture.
TILE_ARGS = ["--default-tile-width=2048", "--default-tile-height=2048"]


def find_chromium(configured: str | None) -> str | None:
    """The executable to launch, or None to let Playwright use its own downloaded browser.

    ``configured`` (render.chromium_path / PRESSRUN_CHROMIUM_PATH) wins and must exist.
    """
    if configured:
        path = Path(configured)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BrowserUnavailableError(
                f"render.chromium_path / PRESSRUN_CHROMIUM_PATH points to {configured!r}, "
                "which is not an executable file; fix the path or unset it to use the system Chromium",
                setting="PRESSRUN_CHROMIUM_PATH",
                value=configured,
            )
        return str(path)
    for name in SYSTEM_CANDIDATES:
        if os.path.isabs(name):
            if os.path.isfile(name) and os.access(name, os.X_OK):
                return name
        elif found := shutil.which(name):
            return found
    return None


def playwright_headless_shell() -> str | None:
    """The headless shell in Playwright's browser cache (``playwright install chromium`` puts it
    there beside full Chromium, which has no frame control): what Playwright itself launches headless."""
    root = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or str(
        Path.home() / ("Library/Caches" if sys.platform == "darwin" else ".cache") / "ms-playwright"
    )
    found = sorted(
        [*Path(root).glob("chromium_headless_shell-*/*/chrome-headless-shell"),
         *Path(root).glob("chromium_headless_shell-*/*/headless_shell")],
        key=lambda path: path.parts[-3],
    )
    executables = [str(path) for path in found if os.access(path, os.X_OK)]
    return executables[-1] if executables else None


async def launch_chromium(playwright: Playwright, configured_path: str | None) -> Chromium:
    """Start Chromium (see pressrun.rendering.bridge) with pressrun's flags; Playwright drives it."""
    if not hasattr(os, "posix_spawn"):
        raise BrowserUnavailableError("pressrun renders on Linux and macOS: it starts Chromium with a DevTools "
                                      "pipe, which needs posix_spawn (on Windows, use WSL)")
    executable = find_chromium(configured_path) or playwright_headless_shell() or playwright.chromium.executable_path
    # Without Chromium's own sandbox, as Playwright launches it by default: the sandbox needs user
    # namespaces that non-root containers and Ubuntu 24.04's AppArmor refuse ("No usable sandbox"),
    # and it refuses to start as root. Renders are confined by the network policy and (by default)
    # have JavaScript disabled.
    args = [*LAUNCH_ARGS, *FRAME_CONTROL_ARGS, *TILE_ARGS, "--no-sandbox"]
    try:
        return await Chromium.launch(playwright, executable, args)
    except (OSError, PlaywrightError) as exc:
        reason = exc.message.splitlines()[0] if isinstance(exc, PlaywrightError) else (exc.strerror or str(exc))
        raise BrowserUnavailableError(
            f"could not start Chromium ({executable}): {reason}; "
            "run `make setup` to install it, or set PRESSRUN_CHROMIUM_PATH to a Chromium executable",
            setting="PRESSRUN_CHROMIUM_PATH",
        ) from exc
