"""atlas-assets: a self-hosted Nomic Atlas built on Dagster assets."""

from atlas_assets.errors import AtlasError
from atlas_assets.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
)

__all__ = [
    "AtlasError",
    "NomicDuplicatesOptions",
    "NomicEmbedOptions",
    "NomicProjectOptions",
    "NomicTopicOptions",
]
