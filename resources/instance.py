"""The Dagster instance shared by the library, the daemon and the UI: $ATLAS_HOME/dagster by default.

`DAGSTER_HOME` is set to it when unset, so runs started from Python and runs started by the daemon or
the UI land in one history. A `dagster.yaml` is written on first use (SQLite storage, concurrency
pools); point `storage` at PostgreSQL to scale out (see deploy/).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dagster as dg
from filelock import FileLock

from atlas_assets.config import dagster_home
from resources.atomic import write_bytes_atomic

DEFAULT_DAGSTER_YAML = """\
# Written by atlas-assets on first use. SQLite storage in this folder; see deploy/ for PostgreSQL.
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    # Embedding is CPU-bound and already uses every core: one embedding step at a time.
    default_limit: 1
"""


def ensure_dagster_home() -> Path:
    """Create the instance folder (and dagster.yaml) and export DAGSTER_HOME for this process."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        write_bytes_atomic(config, DEFAULT_DAGSTER_YAML.encode())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> dg.DagsterInstance:
    home = ensure_dagster_home()
    # Storage migrations log at INFO on every new instance; they are noise to a user.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Opening a new SQLite instance creates and stamps its databases; two processes doing that at
    # once (a notebook and the daemon on a fresh ATLAS_HOME) fail with "Online migration expected
    # to match one row". One process at a time opens it.
    with FileLock(str(home / ".instance-open.lock")):
        return dg.DagsterInstance.get()
