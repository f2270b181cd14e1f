"""The Dagster UI follows the dataset registry by itself: while `atlas ui` / `atlas demo` runs, a
watcher asks the webserver to reload the code location as soon as a dataset or a map is created,
changed or deleted (from the CLI, Python or another process), so the UI shows it within seconds
instead of after someone clicks "Reload definitions". New batches need no reload (partitions live in
the instance), so adding rows does not trigger one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from urllib.parse import urlparse

from atlas_assets.cli.servers import WORKSPACE_LOCATION
from resources.storage import DatasetStore

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


def registry_stamp(store: DatasetStore | None = None) -> str:
    """A digest of what the code location is built from: every dataset and the options of its maps
    (not its batches or deletions, which need no reload)."""
    digest = hashlib.sha256()
    for record in (store or DatasetStore()).list_datasets():
        digest.update(record.identifier.encode())
        digest.update(str(record.modality).encode())
        for index in record.indices:
            digest.update(index.model_dump_json().encode())
    return digest.hexdigest()


def reload_code_location(ui_url: str, location: str = WORKSPACE_LOCATION) -> None:
    """Ask the webserver at ui_url to reload the code location (what the UI's button does)."""
    from dagster_graphql import DagsterGraphQLClient

    parsed = urlparse(ui_url)
    client = DagsterGraphQLClient(parsed.hostname or "127.0.0.1", port_number=parsed.port, timeout=120)
    client.reload_repository_location(location)


class RegistryWatcher:
    """Polls the registry every POLL_SECONDS and reloads the UI's code location when it changed."""

    def __init__(self, ui_url: str, poll_seconds: float = POLL_SECONDS) -> None:
        self.ui_url = ui_url
        self.poll_seconds = poll_seconds
        self.reloads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atlas-registry-watcher", daemon=True)

    def start(self) -> "RegistryWatcher":
        self._stamp = registry_stamp()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_seconds + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                stamp = registry_stamp()
                if stamp == self._stamp:
                    continue
                started = time.monotonic()
                reload_code_location(self.ui_url)
                self._stamp = stamp
                self.reloads += 1
                log.info(f"datasets changed: reloaded the Dagster UI's code location in {time.monotonic() - started:.1f} s")
            except Exception as error:  # a half-written record or a busy webserver: try again next poll
                log.warning(f"could not reload the Dagster UI's code location yet: {error}")
