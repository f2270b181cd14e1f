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
