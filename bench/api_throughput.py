"""API benchmark: accepting a 50,000-row batch, and a 1,000-row batch through the API against
``pressrun render`` on the same rows, side by side on the same machine.

- accept: time for ``POST /templates/{uid}/batch-render`` with 50,000 variable sets to answer 202,
  and the server process's peak RSS while it accepts (the batch is then cancelled).
- end to end: a fresh ``pressrun serve`` (SQLite, local files), the social-card example as a
  template, one batch of N rows submitted as CSV; images/s from submit to the batch's completion.
  Against it, ``pressrun render`` on the same CSV (start-up included), interleaved, medians.

Target (issue 3): API ≥ 85 % of the CLI's rate.

    .venv/bin/python bench/api_throughput.py [--rows 1000] [--repeats 3] [--format png]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from throughput import TEMPLATE, PeakRss, make_rows

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PRESSRUN_DATA_DIR": str(data_dir), "PRESSRUN_API__PORT": str(self.port)}
        self.log = (data_dir.parent / "server.log").open("w")
        self.process = subprocess.Popen([str(BIN / "pressrun"), "serve", "--seed-templates", str(TEMPLATE.parent)],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("server did not become ready")
        text = Path(self.log.name).read_text()
        self.key = next(word for word in text.split() if word.startswith("pr_"))
        self.headers = {"Authorization": f"Bearer {self.key}"}
        templates = httpx.get(f"{self.url}/templates?limit=100", headers=self.headers).json()["templates"]
        self.uid = next(t["uid"] for t in templates if t["name"] == "Social card")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wait_done(client: httpx.Client, server: Server, batch_id: str, poll_s: float = 0.25) -> dict:
    """Poll as a client would (4×/s: fine-grained enough for a run of a minute, light on the server)."""
    while True:
        body = client.get(f"/templates/batch/{batch_id}/results?limit=1", headers=server.headers).json()
        if body["status"] in ("completed", "partial", "failed", "cancelled"):
            return body
        time.sleep(poll_s)


def api_run(server: Server, rows_csv: Path, fmt: str) -> float:
    with httpx.Client(base_url=server.url, timeout=300) as client:
        started = time.perf_counter()
        response = client.post(f"/templates/{server.uid}/batch-render?format={fmt}&concurrency=10",
                               content=rows_csv.read_bytes(), headers={**server.headers, "Content-Type": "text/csv"})
        response.raise_for_status()
        done = wait_done(client, server, response.json()["batchId"])
        elapsed = time.perf_counter() - started
    if done["status"] != "completed":
        raise SystemExit(f"API batch ended {done['status']}: {done}")
    return elapsed


def cli_run(rows_csv: Path, fmt: str, out_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "pressrun"), "render", str(TEMPLATE), str(rows_csv), "-o", str(out_dir),
                    "--format", fmt], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def accept_50k(server: Server) -> dict:
    rows = [{"title": f"Post number {i}", "author": "Ada Lovelace", "date": "2026-11-23", "tag": "News",
             "reading_minutes": 4, "id": i} for i in range(50_000)]
    body = json.dumps({"variableSets": rows, "format": "png"}).encode()
    with httpx.Client(base_url=server.url, timeout=300) as client, PeakRss(server.process.pid) as rss:
        baseline = psutil.Process(server.process.pid).memory_info().rss
        started = time.perf_counter()
        response = client.post(f"/templates/{server.uid}/batch-render", content=body,
                               headers={**server.headers, "Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        batch_id = response.json()["batchId"]
        client.post(f"/templates/batch/{batch_id}/cancel", headers=server.headers)
        wait_done(client, server, batch_id)
    return {"accept_s": round(elapsed, 2), "body_mb": round(len(body) / 1e6, 1),
            "server_tree_peak_rss_mib": round(rss.peak_bytes / 2**20),
            "server_python_rss_before_mib": round(baseline / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--format", default="png")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args()
    print(f"machine: {psutil.cpu_count()} CPUs, load average {psutil.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = Server(root / "data")
        try:
            accepted = accept_50k(server)
            print(f"accept 50,000 rows ({accepted['body_mb']} MB JSON): {accepted['accept_s']} s; server tree peak "
                  f"RSS {accepted['server_tree_peak_rss_mib']} MiB (Python was "
                  f"{accepted['server_python_rss_before_mib']} MiB before)")
            rows_csv = make_rows(args.rows, root / "rows.csv")
            api_times, cli_times = [], []
            for attempt in range(args.repeats):
                api_times.append(api_run(server, rows_csv, args.format))
                out = root / f"cli-{attempt}"
                cli_times.append(cli_run(rows_csv, args.format, out))
                shutil.rmtree(out)
        finally:
            server.stop()
    api_rate = statistics.median(args.rows / t for t in api_times)
    cli_rate = statistics.median(args.rows / t for t in cli_times)
    ratios = [round((args.rows / a) / (args.rows / c), 2) for a, c in zip(api_times, cli_times, strict=True)]
    print(f"{args.rows} rows {args.format}: API {api_rate:.1f} images/s, CLI {cli_rate:.1f} images/s, "
          f"API/CLI {statistics.median(ratios):.2f} (runs {ratios}; target ≥ 0.85)")
    if args.json_path:
        args.json_path.write_text(json.dumps({"accept": accepted, "api_rate": round(api_rate, 2),
                                              "cli_rate": round(cli_rate, 2), "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
