"""Helpers for the end-to-end CLI tests: run the real ``pressrun`` console script, build small template
folders and data files, and read what a run left behind (files, errors.jsonl, PDF text, pixels)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from tests.conftest import open_image

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
CLI_TIMEOUT_S = 180

# The console script of *this* interpreter's venv first: a `pressrun` elsewhere on PATH may be another checkout.
_BESIDE_PYTHON = Path(sys.executable).parent / "pressrun"
PRESSRUN = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else shutil.which("pressrun")
# Environment variables a developer may have set that would change what these tests expect.
_KEEP_ENV = {"PRESSRUN_CHROMIUM_PATH", "PRESSRUN_RENDER__CHROMIUM_PATH"}

# A 200×100 template: left half in the row's colour, right half blue with "row-<id> <name>" in white.
SPLIT_HTML = (
    '<div style="display:flex;width:200px;height:100px">'
    '<div style="width:100px;height:100px;background:{{ color }}"></div>'
    '<div style="width:100px;height:100px;background:#0000ff;color:#fff;font:12px sans-serif">'
    "row-{{ id }} {{ name }}</div></div>\n"
)
SMALL_MANIFEST = 'name = "small"\nwidth = 200\nheight = 100\n'
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class CliRun:
    args: list[str]
    exit_code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # shown by pytest when an assertion on a run fails
        return f"pressrun {' '.join(self.args)} -> {self.exit_code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESSRUN_") or k in _KEEP_ENV}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


class PendingRun:
    """A ``pressrun`` process started in the background, so that independent runs overlap (most of a
    short run is Python start-up and Chromium launch, which leave the second core idle)."""

    def __init__(self, args: tuple[str | Path, ...], env: dict[str, str] | None = None) -> None:
        assert PRESSRUN, "the pressrun console script is not installed in this venv (pip install -e .)"
        self.argv = [str(a) for a in args]
        self._process = subprocess.Popen(
            [PRESSRUN, *self.argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(env)
        )
        self._result: CliRun | None = None

    def result(self) -> CliRun:
        if self._result is None:
            try:
                stdout, stderr = self._process.communicate(timeout=CLI_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
            self._result = CliRun(self.argv, self._process.returncode, stdout, stderr)
        return self._result

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def start_cli(*args: str | Path, env: dict[str, str] | None = None) -> PendingRun:
    return PendingRun(args, env)


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> CliRun:
    return PendingRun(args, env).result()


def render_args(template: Path, data: Path, out: Path, *extra: str | Path) -> tuple[str | Path, ...]:
    return ("render", template, data, "-o", out, "--concurrency", "2", *extra)


def render(template: Path, data: Path, out: Path, *extra: str | Path, env: dict[str, str] | None = None) -> CliRun:
    """``pressrun render TEMPLATE DATA -o OUT --concurrency 2 [extra]``."""
    return run_cli(*render_args(template, data, out, *extra), env=env)


def make_template(folder: Path, html: str, manifest: str = SMALL_MANIFEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.html").write_text(html, encoding="utf-8")
    (folder / "pressrun.toml").write_text(manifest, encoding="utf-8")
    return folder


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_errors(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / "errors.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def output_names(out_dir: Path, suffix: str | None = None) -> list[str]:
    return sorted(p.name for p in out_dir.iterdir() if p.name != "errors.jsonl" and (suffix is None or p.suffix == suffix))


def words(text: str) -> str:
    """Whitespace-normalised text (NBSP and narrow NBSP, which Babel puts before '€', become spaces)."""
    return " ".join(text.split())


def pdf_pages_text(path: Path) -> list[str]:
    return [words(page.extract_text() or "") for page in PdfReader(path).pages]


def pdf_text(path: Path) -> str:
    return " ".join(pdf_pages_text(path))


def pixel(path: Path, xy: tuple[int, int]) -> tuple[int, ...]:
    return open_image(path.read_bytes()).convert("RGB").getpixel(xy)


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(actual[:3], expected, strict=True))


def hex_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)
