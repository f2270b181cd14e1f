"""Map server under load: N concurrent clients for M seconds on 127.0.0.1, per-endpoint req/s and p99.

The server is `atlas serve`'s app (HomeRegistry over an ATLAS_HOME, loopback Host check) run by
uvicorn in its own process; the clients are threads of another process, each with its own keep-alive
connection, cycling over the endpoints a viewer uses (meta, points.bin, a colouring field, datum
hovers at random rows, text search, tag list). Every response must be a 200: an error is counted
and reported, and the test (tests/reliability/test_server_load.py) asserts there are none.

The map: 1,797 sklearn digits vectors (64-d) built by create_index with topics and duplicates, so
the figures include the real per-request work (registry lookup, token check, encoding).

Run: .venv/bin/python -m benchmarks.server_load [--workers 16] [--seconds 20]
(writes benchmarks/results/server_load.json). The machine has 2 shared cores and other work running:
read the figures as a floor, not a capacity.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import secrets
import socket
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"


@dataclass
class EndpointStats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def endpoints(map_key: str, rows: int, seed: int) -> list[tuple[str, str]]:
    """(name, path) pairs a viewer would request, with random rows for the hover endpoint."""
    rng = random.Random(seed)
    base = f"/api/maps/{map_key}"
    return [
        ("meta", f"{base}/meta"),
        ("points.bin", f"{base}/points.bin"),
        ("field", f"{base}/field/digit"),
        ("datum", f"{base}/datum/{rng.randrange(rows)}"),
        ("datum", f"{base}/datum/{rng.randrange(rows)}"),
        ("datum", f"{base}/datum/{rng.randrange(rows)}"),
        ("search", f"{base}/search?q={rng.randrange(10)}&mode=text&k=100"),
        ("tags", f"{base}/tags"),
    ]


def _client(host: str, port: int, map_key: str, rows: int, deadline: float, seed: int,
            stats: dict[str, EndpointStats], guard: threading.Lock) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    local: dict[str, EndpointStats] = defaultdict(EndpointStats)
    round_number = 0
    while time.perf_counter() < deadline:
        for name, path in endpoints(map_key, rows, seed * 100_003 + round_number):
            if time.perf_counter() >= deadline:
                break
            began = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=30)
                status, body = 0, b""
            elapsed = time.perf_counter() - began
            entry = local[name]
            entry.statuses[status] = entry.statuses.get(status, 0) + 1
            if status != 200:
                entry.errors += 1
            else:
                entry.latencies.append(elapsed)
                entry.bytes += len(body)
        round_number += 1
    connection.close()
    with guard:
        for name, entry in local.items():
            total = stats[name]
            total.latencies += entry.latencies
            total.errors += entry.errors
            total.bytes += entry.bytes
            for status, count in entry.statuses.items():
                total.statuses[status] = total.statuses.get(status, 0) + count


def run_load(url: str, map_key: str, rows: int, workers: int, seconds: float) -> dict[str, Any]:
    """Hit the server at `url` with `workers` keep-alive clients for `seconds`; figures per endpoint."""
    host, port = url.removeprefix("http://").split(":")
    stats: dict[str, EndpointStats] = defaultdict(EndpointStats)
    guard = threading.Lock()
    began = time.perf_counter()
    deadline = began + seconds
    threads = [
        threading.Thread(target=_client, args=(host, int(port), map_key, rows, deadline, seed, stats, guard))
        for seed in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    wall = time.perf_counter() - began
    result: dict[str, Any] = {"workers": workers, "seconds": round(wall, 2), "endpoints": {}}
    all_latencies: list[float] = []
    for name, entry in sorted(stats.items()):
        latencies = np.asarray(entry.latencies) * 1000
        all_latencies += entry.latencies
        count = len(entry.latencies) + entry.errors
        result["endpoints"][name] = {
            "requests": count,
            "errors": entry.errors,
            "statuses": {str(k): v for k, v in sorted(entry.statuses.items())},
            "requests_per_s": round(count / wall, 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 2) if len(latencies) else None,
            "mean_bytes": int(entry.bytes / max(len(entry.latencies), 1)),
        }
    total = sum(e["requests"] for e in result["endpoints"].values())
    everything = np.asarray(all_latencies) * 1000
    result["total"] = {
        "requests": total,
        "errors": sum(e["errors"] for e in result["endpoints"].values()),
        "requests_per_s": round(total / wall, 1),
        "p50_ms": round(float(np.percentile(everything, 50)), 2) if len(everything) else None,
        "p99_ms": round(float(np.percentile(everything, 99)), 2) if len(everything) else None,
    }
    return result


# ------------------------------------------------------------------------------ the server process


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(home: str, port: int, write_token: str) -> None:
    os.environ["ATLAS_HOME"] = home
    os.environ["DAGSTER_HOME"] = str(Path(home) / "dagster")
    from atlas_assets.web.app import LOOPBACK_HOSTS, create_app
    from atlas_assets.web.discovery import HomeRegistry
    from atlas_assets.web.server import run_server

    app = create_app(HomeRegistry(), allowed_hosts=LOOPBACK_HOSTS, write_token=write_token)
    run_server(app, "127.0.0.1", port)  # as `atlas serve` runs it: h11, header and idle limits


class ServerProcess:
    """`atlas serve` in a child process on a free loopback port; `stop()` ends it."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.write_token = secrets.token_urlsafe(32)  # what tag posts send as X-Atlas-Write-Token
        self.url = f"http://127.0.0.1:{self.port}"
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=_serve, args=(str(home), self.port, self.write_token), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or not self.process.is_alive():
                    raise RuntimeError("the map server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(30)


def build_map(home: Path, rows: int = 1797) -> str:
    """A public digits map under `home`; returns its key `<org>/<slug>/<index>`."""
    os.environ["ATLAS_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from atlas_assets.dataset import AtlasDataset
    from atlas_assets.client.options import NomicTopicOptions
    from tests.reliability.support import digits_vectors

    frame, vectors = digits_vectors(rows)
    dataset = AtlasDataset("load/digits", unique_id_field="id")
    dataset.add_data(frame, embeddings=vectors)
    atlas_map = dataset.create_index(
        name="digits", projection={"n_neighbors": 10, "n_epochs": 50},
        topic_model=NomicTopicOptions(topic_label_field="digit"),
    )
    return f"load/digits/{atlas_map.id}"


def warm(url: str, map_key: str) -> None:
    """One request per endpoint, so the first client does not pay for building the source."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    for _, path in endpoints(map_key, 10, 0):
        connection.request("GET", path)
        connection.getresponse().read()
    connection.close()


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['workers']} clients for {result['seconds']} s on 127.0.0.1")
    print(f"{'endpoint':<12}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'bytes':>10}")
    for name, entry in list(result["endpoints"].items()) + [("total", result["total"])]:
        print(
            f"{name:<12}{entry['requests']:>10}{entry['errors']:>8}{entry['requests_per_s']:>10}"
            f"{entry['p50_ms'] or 0:>10}{entry['p99_ms'] or 0:>10}{entry.get('mean_bytes', ''):>10}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        map_key = build_map(home)
        server = ServerProcess(home)
        try:
            warm(server.url, map_key)
            result = run_load(server.url, map_key, 1797, arguments.workers, arguments.seconds)
        finally:
            server.stop()
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["cores"] = os.cpu_count()
    print_table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_load.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
