"""The `nomic.dataset` import path: `from atlas_assets.dataset import AtlasDataset, AtlasProjection`."""

from atlas_assets.client.dataset import AtlasDataset
from atlas_assets.client.map import AtlasProjection

__all__ = ["AtlasDataset", "AtlasProjection"]
