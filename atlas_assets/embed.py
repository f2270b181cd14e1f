"""The `nomic.embed` import path: `from atlas_assets import embed; embed.text([...])` (offline, on
this project's ONNX models, in nomic's result shape)."""

from atlas_assets.client.embed import free_embedding_model, image, text

__all__ = ["free_embedding_model", "image", "text"]
