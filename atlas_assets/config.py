"""Where things live: ATLAS_HOME and the defaults read from the environment.

Kept free of Dagster and of the client API so every layer may import it.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ORGANISATION = "local"


def atlas_home() -> Path:
    """The root of every dataset, model and the Dagster instance (`ATLAS_HOME`, default ~/.atlas)."""
    return Path(os.environ.get("ATLAS_HOME") or Path.home() / ".atlas").expanduser().absolute()


def store_uri() -> str:
    """Where the dataset store lives (`ATLAS_STORE_URI`): a local folder, or any fsspec URI such as
    `s3://bucket/prefix` (records, batches, blobs, tombstones as objects). Unset: ATLAS_HOME.

    Locks stay on the local filesystem under `$ATLAS_HOME/locks` whatever this is: every process that
    writes one dataset must share that folder (one machine, or a shared volume with working locks).
    """
    return os.environ.get("ATLAS_STORE_URI") or str(atlas_home())


def outputs_uri() -> str:
    """Where index outputs live (`ATLAS_OUTPUTS_URI`); unset: under the store (`ATLAS_STORE_URI`,
    else ATLAS_HOME), in `datasets/<org>/<slug>/indices/<index_id>/` either way."""
    return os.environ.get("ATLAS_OUTPUTS_URI") or store_uri()


def default_organisation() -> str:
    """Organisation used for identifiers given without `org/` (`ATLAS_ORG`, default `local`)."""
    return os.environ.get("ATLAS_ORG") or DEFAULT_ORGANISATION


def dagster_home() -> Path:
    """The Dagster instance folder: `$DAGSTER_HOME` when set, else `$ATLAS_HOME/dagster`."""
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured) if configured else atlas_home() / "dagster"


def models_home() -> Path:
    """Cache of built and downloaded embedding models (`ATLAS_MODELS`, default $ATLAS_HOME/models).

    A separate variable lets many stores (tests, several users) share one built model.
    """
    configured = os.environ.get("ATLAS_MODELS")
    return Path(configured).expanduser().absolute() if configured else atlas_home() / "models"


DEFAULT_MAP_SERVER = "http://127.0.0.1:8765"


def map_server_url() -> str:
    """Base URL of `atlas serve` as people reach it (`ATLAS_MAP_URL`, default 127.0.0.1:8765)."""
    return (os.environ.get("ATLAS_MAP_URL") or DEFAULT_MAP_SERVER).rstrip("/")


def map_link(organisation: str, slug: str, index_id: str) -> str:
    """The interactive map page of one index."""
    return f"{map_server_url()}/maps/{organisation}/{slug}/{index_id}"
