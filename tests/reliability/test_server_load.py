"""The map server under a bounded load on loopback: every request of every client answers 200.

8 keep-alive clients for 8 seconds against `atlas serve`'s app in its own process (the benchmark's
load generator, `benchmarks.server_load.run_load`), cycling over the endpoints a viewer uses while
another client posts tags. Throughput and latency are measured by the benchmark, not asserted here.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

from benchmarks.server_load import ServerProcess, run_load, warm
from tests.reliability.conftest import ServedMaps

WORKERS = 8
SECONDS = 8.0


def _tagger(url: str, map_key: str, seconds: float, failures: list[str], write_token: str) -> None:
    """A person lassoing points while others browse: tag posts interleaved with the reads."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    deadline = time.monotonic() + seconds
    number = 0
    while time.monotonic() < deadline:
        action = "add" if number % 2 == 0 else "remove"
        body = json.dumps({"rows": list(range(number % 50, number % 50 + 20)), "action": action}).encode()
        connection.request("POST", f"/api/maps/{map_key}/tags/load-test", body, {"Content-Type": "application/json", "X-Atlas-Write-Token": write_token})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            failures.append(f"tag post: {response.status}")
        number += 1
    connection.close()


def test_concurrent_clients_get_no_errors(served_home: ServedMaps) -> None:
    server = ServerProcess(served_home.home)
    try:
        warm(server.url, served_home.public_key)
        failures: list[str] = []
        tagger = threading.Thread(target=_tagger, args=(server.url, served_home.public_key, SECONDS, failures, server.write_token))
        tagger.start()
        result = run_load(server.url, served_home.public_key, served_home.rows, WORKERS, SECONDS)
        tagger.join(60)
    finally:
        server.stop()
    assert failures == []
    assert result["total"]["errors"] == 0, json.dumps(result["endpoints"], indent=1)
    assert set(result["endpoints"]) == {"meta", "points.bin", "field", "datum", "search", "tags"}
    assert all(entry["requests"] > 0 for entry in result["endpoints"].values())
