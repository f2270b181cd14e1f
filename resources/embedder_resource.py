"""The embedders as a Dagster resource (the runtime itself, `resources.embedder`, knows no Dagster)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from resources.embedder import DEFAULT_BATCH_SIZE, TextEmbedder, load_image_embedder, load_text_embedder

if TYPE_CHECKING:
    from resources.image_model import ImageEmbedder


class EmbedderResource(dg.ConfigurableResource):
    """Dagster resource giving assets the process-wide embedders.

    threads: onnxruntime threads in all (0 = every core), shared by the batches a text embedder runs
    at once (resources.embedder.BATCHES_IN_FLIGHT); batch_size: texts per model call (16-32 is
    fastest on 2 cores with length-sorted batches).
    """

    threads: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE

    def text_embedder(self, model_name: str | None) -> TextEmbedder:
        return load_text_embedder(model_name, threads=self.threads or None, batch_size=self.batch_size)

    def image_embedder(self, model_name: str | None) -> "ImageEmbedder":
        return load_image_embedder(model_name, threads=self.threads or None, batch_size=max(1, self.batch_size // 2))
