"""What the pipeline needs to know about one index, resolved from the store's records."""

from __future__ import annotations

from dataclasses import dataclass

from atlas_assets.options import (
    NomicDuplicatesOptions,
    NomicProjectOptions,
    NomicTopicOptions,
)
from atlas_assets.pipeline.naming import DatasetNames
from resources.index_outputs import index_output_dir
from resources.records import DatasetRecord, IndexRecord

# Run tags that change how a stage updates (set by update_indices, the nightly schedule, or by hand
# in the Dagster UI's launchpad).
REBUILD_TOPICS_TAG = "atlas/rebuild_topic_models"
REBUILD_LAYOUT_TAG = "atlas/rebuild_layout"


@dataclass(frozen=True)
class IndexSpec:
    organisation: str
    slug: str
    dataset_modality: str
    index: IndexRecord

    @classmethod
    def of(cls, dataset: DatasetRecord, index: IndexRecord) -> "IndexSpec":
        return cls(dataset.organisation, dataset.slug, dataset.modality or "text", index)

    @property
    def names(self) -> DatasetNames:
        return DatasetNames(self.organisation, self.slug)

    @property
    def output_dir(self) -> str:
        return index_output_dir(self.organisation, self.slug, self.index.id)

    @property
    def projection_options(self) -> NomicProjectOptions:
        return NomicProjectOptions(**(self.index.projection or {}))

    @property
    def topic_options(self) -> NomicTopicOptions | None:
        options = self.index.topic_model
        if options is None:
            return None
        model = NomicTopicOptions(**options)
        return model if model.build_topic_model else None

    @property
    def duplicate_options(self) -> NomicDuplicatesOptions | None:
        options = self.index.duplicate_detection
        if options is None:
            return None
        model = NomicDuplicatesOptions(**options)
        return model if model.tag_duplicates else None

    @property
    def label_field(self) -> str | None:
        """The text that names topics: the topic option's field, else the indexed text field."""
        options = self.topic_options
        if options is not None and options.topic_label_field:
            return options.topic_label_field
        return self.index.indexed_field if self.index.modality == "text" else None
