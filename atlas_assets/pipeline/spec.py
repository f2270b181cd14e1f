"""What the pipeline needs to know about one index, resolved from the store's records.

The record's option dicts (`projection`, `topic_model`, `duplicate_detection`) were validated by the
client when the index was created; here they become compute's plain parameters, and the rules that
follow from them (which stages exist, whose embeddings are reused) are written once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import dagster as dg

from atlas_assets.compute.layout import LayoutOptions
from atlas_assets.compute.topics import TopicParams
from atlas_assets.errors import ModelError
from atlas_assets.pipeline.naming import STAGES, DatasetNames
from resources.index_outputs import IndexOutputs
from resources.storage.records import DatasetRecord, IndexRecord

_LAYOUT_FIELDS = tuple(field.name for field in fields(LayoutOptions))


@dataclass(frozen=True)
class IndexSpec:
    organisation: str
    slug: str
    dataset_modality: str
    index: IndexRecord
    source_index: IndexRecord | None = None
    """The index whose embeddings this one reuses (`reuse_embeddings_from_index`), or None."""
    is_public: bool = True
    """A private dataset's assets put no row content (texts, topic names) in Dagster metadata."""

    @classmethod
    def of(cls, dataset: DatasetRecord, index: IndexRecord) -> "IndexSpec":
        reused = index.reuse_embeddings_from_index
        source = next((i for i in dataset.indices if reused in (i.id, i.name)), None) if reused else None
        return cls(dataset.organisation, dataset.slug, dataset.modality or "text", index, source, dataset.is_public)

    @property
    def names(self) -> DatasetNames:
        return DatasetNames(self.organisation, self.slug)

    def key(self, stage: str) -> dg.AssetKey:
        """The asset key of one of the index's stages."""
        return self.names.stage(self.index.asset_name, stage)

    @property
    def outputs(self) -> IndexOutputs:
        """The index's outputs (below $ATLAS_OUTPUTS_URI or ATLAS_HOME as set when asked)."""
        return IndexOutputs(self.organisation, self.slug, self.index.id)

    @property
    def enabled_stages(self) -> tuple[str, ...]:
        """The index's stages, in `naming.STAGES` order: embeddings and the graph always; the map when
        a projection or a topic model is asked for (topics are placed on it); topics and duplicates
        when switched on."""
        index = self.index
        enabled = {"embeddings", "neighbour_graph"}
        if index.projection is not None or index.topic_model is not None:
            enabled.add("projection")
        if self.topic_params is not None:
            enabled.add("topics")
        if self.duplicate_cutoff is not None:
            enabled.add("duplicates")
        return tuple(stage for stage in STAGES if stage in enabled)

    @property
    def fits_static_table(self) -> bool:
        """True when the index embeds its own text with a static model, so it gets a `static_table`
        fitted to its data (pipeline/assets/static_table.py)."""
        if self.index.modality != "text" or self.source_index is not None:
            return False
        from resources.static_table import is_static

        try:
            return is_static(self.index.embedding_model)
        except ModelError:  # an unknown model fails in the embeddings step, with its own message
            return False

    @property
    def layout_options(self) -> LayoutOptions:
        options = self.index.projection or {}
        return LayoutOptions(**{name: options[name] for name in _LAYOUT_FIELDS if name in options})

    @property
    def topic_params(self) -> TopicParams | None:
        """How topics are built, or None when the index has no topic model."""
        options = self.index.topic_model
        if options is None or not options.get("build_topic_model", True):
            return None
        return TopicParams(
            cluster_method=options.get("cluster_method", "fast"),
            enforce_topic_hierarchy=bool(options.get("enforce_topic_hierarchy", False)),
        )

    @property
    def duplicate_cutoff(self) -> float | None:
        """The cosine distance at or below which rows are duplicates, or None when detection is off."""
        options = self.index.duplicate_detection
        if options is None or not options.get("tag_duplicates", True):
            return None
        return float(options.get("duplicate_cutoff", 0.1))

    @property
    def phrase_model(self) -> tuple[bool, str | None]:
        """(whether topic names can be ranked by meaning, the text model to embed phrases with).

        Phrases must land in the space of the rows' vectors, so only maps whose vectors come from a
        text model (their own or the reused index's) rank them; maps of images or of the user's
        own vectors name topics from keywords alone."""
        embedded_by = self.source_index or self.index
        return embedded_by.modality == "text", embedded_by.embedding_model

    @property
    def label_field(self) -> str | None:
        """The text that names topics: the topic option's field, else the indexed text field."""
        if self.topic_params is not None and (field := (self.index.topic_model or {}).get("topic_label_field")):
            return field
        return self.index.indexed_field if self.index.modality == "text" else None
