"""atlas-assets: a self-hosted Nomic Atlas built on Dagster assets."""

from atlas_assets.errors import AtlasError
from atlas_assets.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
)

__all__ = [
    "AtlasDataset",
    "AtlasError",
    "NomicDuplicatesOptions",
    "NomicEmbedOptions",
    "NomicProjectOptions",
    "NomicTopicOptions",
]


def __getattr__(name: str):
    """Import AtlasDataset lazily: it pulls in Dagster, which `import atlas_assets` should not."""
    if name == "AtlasDataset":
        from atlas_assets.dataset import AtlasDataset

        return AtlasDataset
    raise AttributeError(f"module 'atlas_assets' has no attribute {name!r}")
