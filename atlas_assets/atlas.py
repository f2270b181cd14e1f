"""The `nomic.atlas` import path: `from atlas_assets import atlas; atlas.map_data(...)`."""

from atlas_assets.client.atlas import map_data, map_embeddings, map_text
from atlas_assets.client.dataset import AtlasDataset

__all__ = ["AtlasDataset", "map_data", "map_embeddings", "map_text"]
