"""The Atlas client objects: `AtlasDataset`, its maps (`AtlasProjection`) and their accessors, the
option models of `create_index`, and the errors a user can meet."""

from atlas_assets.client.dataset import AtlasDataset
from atlas_assets.client.map import AtlasProjection
from atlas_assets.client.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
)

__all__ = [
    "AtlasDataset",
    "AtlasProjection",
    "NomicDuplicatesOptions",
    "NomicEmbedOptions",
    "NomicProjectOptions",
    "NomicTopicOptions",
]
