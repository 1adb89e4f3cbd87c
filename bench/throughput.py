"""Throughput benchmark: `pressrun render` against a plain Playwright loop, side by side.

Both render the bundled social card (1200×630) for the same N rows on the same machine in the same
run, interleaved, so machine noise hits both alike:

- plain loop: one Chromium page, ``page.set_content(html)`` then ``page.screenshot`` / ``page.pdf``
  per row — what a hand-written script does. Templating uses pressrun's engine, so both sides pay
  the same for it.
- pressrun: the whole ``pressrun render`` command in a subprocess, start-up included.

Prints rows/s for each, their ratio (median over --repeats), output sizes and the peak RSS of each
side's whole process tree (Python + Playwright driver + Chromium processes).

    .venv/bin/python bench/throughput.py [--rows 500] [--repeats 3] [--formats png,jpeg,pdf]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from playwright.async_api import async_playwright

from pressrun.data import open_rows
from pressrun.rendering.chromium import LAUNCH_ARGS, find_chromium
from pressrun.templating import Engine
from pressrun.templating.bundle import build_document, load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "social-card"
QUALITY = 90


class PeakRss:
    """Samples the summed RSS of a process and all its descendants every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                total = root.memory_info().rss
                for child in root.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak_bytes = max(self.peak_bytes, total)
            except psutil.Error:
                pass
            self._stop.wait(0.05)


def make_rows(count: int, destination: Path) -> Path:
    """The example's sample rows, cycled to ``count`` rows with unique ids."""
    source = TEMPLATE / "data.csv"
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fieldnames = list(reader.fieldnames or [])
        base = list(reader)
    with destination.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        for i, row in zip(range(count), itertools.cycle(base), strict=False):
            writer.writerow({**row, "id": f"{i + 1}"})
    return destination


async def plain_loop(rows_csv: Path, fmt: str, out_dir: Path) -> tuple[float, int]:
    """The naive baseline. Returns (seconds, total bytes written)."""
    bundle = load_template(TEMPLATE)
    template = Engine(locale=bundle.manifest.defaults.locale or "en_US").compile(bundle.source)
    rows = open_rows(rows_csv, column_types=bundle.manifest.column_types)
    started = time.perf_counter()
    total_bytes = 0
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=find_chromium(None), args=[*LAUNCH_ARGS, "--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1200, "height": 630})
        # Navigate once to the template file so relative URLs (style.css, assets/) resolve.
        await page.goto((TEMPLATE / "template.html").as_uri())
        for row in rows:
            html = build_document(template.render(row.values), stylesheet=bundle.has_stylesheet)
            await page.set_content(html)
            target = out_dir / f"{row.number}.{fmt}"
            if fmt == "pdf":
                data = await page.pdf(width="1200px", height="630px", print_background=True)
            elif fmt == "jpeg":
                data = await page.screenshot(type="jpeg", quality=QUALITY)
            else:
                data = await page.screenshot(type="png")
            target.write_bytes(data)
            total_bytes += len(data)
        await browser.close()
    return time.perf_counter() - started, total_bytes


def run_plain(rows_csv: Path, fmt: str, out_dir: Path) -> tuple[float, int, int]:
    """Runs the plain loop in a subprocess of its own so its RSS is measured like pressrun's."""
    here = str(Path(__file__).parent)
    code = (
        f"import asyncio, json, sys; sys.path.insert(0, {here!r}); from throughput import plain_loop; "
        f"from pathlib import Path; s, b = asyncio.run(plain_loop(Path({str(rows_csv)!r}), {fmt!r}, "
        f"Path({str(out_dir)!r}))); print(json.dumps([s, b]))"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with PeakRss(process.pid) as rss:
        stdout, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"plain loop failed ({process.returncode})")
    seconds, total_bytes = json.loads(stdout.strip().splitlines()[-1])
    return seconds, total_bytes, rss.peak_bytes


def run_pressrun(rows_csv: Path, fmt: str, out_dir: Path) -> tuple[float, int, int]:
    executable = Path(sys.executable).parent / "pressrun"
    command = [str(executable), "render", str(TEMPLATE), str(rows_csv), "-o", str(out_dir),
               "--format", fmt, "--quality", str(QUALITY)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with PeakRss(process.pid) as rss:
        process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"pressrun render failed ({process.returncode})")
    total_bytes = sum(p.stat().st_size for p in out_dir.iterdir() if p.suffix.lstrip(".") in (fmt, "jpg"))
    return seconds, total_bytes, rss.peak_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", default="png,jpeg,pdf")
    parser.add_argument("--json", dest="json_path", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    print(f"machine: {psutil.cpu_count()} CPUs, load average {psutil.getloadavg()}")
    print(f"rows: {args.rows}, repeats: {args.repeats} (interleaved; medians reported)\n")
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows_csv = make_rows(args.rows, Path(tmp) / "rows.csv")
        for fmt in args.formats.split(","):
            plain, ours = [], []
            for attempt in range(args.repeats):
                for name, runner, results in (("plain", run_plain, plain), ("pressrun", run_pressrun, ours)):
                    out = Path(tmp) / f"{fmt}-{name}-{attempt}"
                    out.mkdir()
                    results.append(runner(rows_csv, fmt, out))
                    shutil.rmtree(out)
            plain_rate = statistics.median(args.rows / s for s, _, _ in plain)
            our_rate = statistics.median(args.rows / s for s, _, _ in ours)
            ratios = [(args.rows / o[0]) / (args.rows / p[0]) for p, o in zip(plain, ours, strict=True)]
            entry = {
                "plain_rows_per_s": round(plain_rate, 2),
                "pressrun_rows_per_s": round(our_rate, 2),
                "ratio_median": round(statistics.median(ratios), 2),
                "ratios": [round(r, 2) for r in ratios],
                "plain_bytes_per_file": round(statistics.median(b for _, b, _ in plain) / args.rows),
                "pressrun_bytes_per_file": round(statistics.median(b for _, b, _ in ours) / args.rows),
                "plain_peak_rss_mib": round(max(r for _, _, r in plain) / 2**20),
                "pressrun_peak_rss_mib": round(max(r for _, _, r in ours) / 2**20),
            }
            entry["size_ratio"] = round(entry["pressrun_bytes_per_file"] / entry["plain_bytes_per_file"], 2)
            report[fmt] = entry
            print(
                f"{fmt:5}  plain {plain_rate:6.1f} rows/s   pressrun {our_rate:6.1f} rows/s   "
                f"ratio {entry['ratio_median']:.2f} (runs {entry['ratios']})   "
                f"size/file {entry['plain_bytes_per_file']:,} vs {entry['pressrun_bytes_per_file']:,} B "
                f"(x{entry['size_ratio']})   peak RSS {entry['plain_peak_rss_mib']} vs "
                f"{entry['pressrun_peak_rss_mib']} MiB"
            )
    if args.json_path:
        args.json_path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
