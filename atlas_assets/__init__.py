"""atlas-assets: a self-hosted Nomic Atlas built on Dagster assets.

`from atlas_assets import AtlasDataset` is the whole public entry point; the `nomic` client's module
paths are here too (`atlas_assets.atlas`, `.data_inference`, `.dataset`, `.embed`), and `login`.
The names below are loaded on first use (PEP 562) rather than at `import atlas_assets`: the sibling top-level package
`resources` builds on `atlas_assets.config`, `.errors` and `.compute`, and Python runs this file
before any of those; importing the client here would make `import resources.<module>` start the
client (which uses that very module) before the module has finished loading.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from atlas_assets.errors import AtlasError

# public name -> the module that defines it
_PUBLIC = {
    "AtlasDataset": "atlas_assets.client.dataset",
    "AtlasProjection": "atlas_assets.client.map",
    "NomicDuplicatesOptions": "atlas_assets.client.options",
    "NomicEmbedOptions": "atlas_assets.client.options",
    "NomicProjectOptions": "atlas_assets.client.options",
    "NomicTopicOptions": "atlas_assets.client.options",
    "ProjectionOptions": "atlas_assets.client.options",
    "login": "atlas_assets.client.embed",
}
# the nomic client's modules (`import atlas_assets as nomic; nomic.atlas.map_data(...)`)
_MODULES = {"atlas", "data_inference", "dataset", "embed"}

__all__ = ["AtlasError", *_PUBLIC, *sorted(_MODULES)]

if TYPE_CHECKING:
    from atlas_assets.client.dataset import AtlasDataset
    from atlas_assets.client.map import AtlasProjection
    from atlas_assets.client.options import (
        NomicDuplicatesOptions,
        NomicEmbedOptions,
        NomicProjectOptions,
        NomicTopicOptions,
        ProjectionOptions,
    )
    from atlas_assets.client.embed import login


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"atlas_assets.{name}")
    raise AttributeError(f"module 'atlas_assets' has no attribute {name!r}")
