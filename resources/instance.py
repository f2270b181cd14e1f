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

from atlas_assets.config import atlas_home, dagster_home
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


INSTANCE_DIR_MODE = 0o700


def ensure_dagster_home() -> Path:
    """Create the instance folder (and dagster.yaml) and export DAGSTER_HOME for this process.

    The folder is 0700: its run and event databases (index.db, runs/, schedules/) hold every run's
    metadata and logs, which other users of the machine have no business reading. A folder created
    here, or the default one under ATLAS_HOME, is closed; a DAGSTER_HOME chosen by the user and
    already there keeps the permissions it was given.
    """
    home = dagster_home()
    created = not home.exists()
    home.mkdir(mode=INSTANCE_DIR_MODE, parents=True, exist_ok=True)
    if created or home.resolve() == (atlas_home() / "dagster").resolve():
        try:
            if home.stat().st_mode & 0o077:
                home.chmod(INSTANCE_DIR_MODE)
        except PermissionError:  # someone else's folder: theirs to close
            pass
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
