"""`IndexRequest`: `create_index`'s arguments, validated once, then resolved against the dataset.

The model checks what can be checked alone (option types and ranges, the modality's spelling); the
dataset-dependent checks (fields exist and are text, the model exists and is installed or can be
installed now, the reused index exists, the name is free) run in `resolve`. Everything is checked
before the record is written, so a bad call changes nothing: a Nomic model name on an offline machine
(`nomic-embed-text-v1.5` needs the hub) fails here, naming the models that work offline.
"""

from __future__ import annotations

import re
import uuid
import warnings
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from atlas_assets.client.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
    coerce_option,
)
from atlas_assets.errors import InvalidOptionError
from resources.model_store import LocalFolderSource, install_model, resolve_model
from atlas_assets.pipeline.naming import sanitise
from resources.storage.records import DatasetRecord, IndexRecord, utc_now

MAX_INDEX_NAME = 100
Modality = Literal["text", "image", "embedding"]


class IndexRequest(BaseModel):
    """What `create_index` asks for; options arrive as bool, dict or option model and leave as models."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str | None = None
    indexed_field: str | None = None
    modality: Modality | None = None
    projection: NomicProjectOptions | None = NomicProjectOptions()
    topic_model: NomicTopicOptions | None = NomicTopicOptions()
    duplicate_detection: NomicDuplicatesOptions | None = NomicDuplicatesOptions()
    embedding_model: NomicEmbedOptions | None = None
    reuse_embeddings_from_index: str | None = None

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            item = error.errors()[0]
            where = ".".join(str(part) for part in item["loc"]) or "value"
            raise InvalidOptionError(f"create_index: {where}: {item['msg']} (got {item.get('input')!r})") from None

    @field_validator("modality", mode="before")
    @classmethod
    def _known_modality(cls, value: Any) -> Any:
        if value is not None and value not in ("text", "image", "embedding"):
            raise InvalidOptionError(f"modality must be 'text', 'image' or 'embedding', not {value!r}")
        return value

    @field_validator("projection", mode="before")
    @classmethod
    def _projection(cls, value: Any) -> NomicProjectOptions | None:
        return coerce_option(value, NomicProjectOptions, "projection")

    @field_validator("topic_model", mode="before")
    @classmethod
    def _topic_model(cls, value: Any) -> NomicTopicOptions | None:
        return coerce_option(value, NomicTopicOptions, "topic_model")

    @field_validator("duplicate_detection", mode="before")
    @classmethod
    def _duplicate_detection(cls, value: Any) -> NomicDuplicatesOptions | None:
        return coerce_option(value, NomicDuplicatesOptions, "duplicate_detection")

    @field_validator("embedding_model", mode="before")
    @classmethod
    def _embedding_model(cls, value: Any) -> NomicEmbedOptions | None:
        if value is None or isinstance(value, NomicEmbedOptions):
            return value
        if isinstance(value, str):
            return NomicEmbedOptions(model=value)
        if isinstance(value, dict):
            return NomicEmbedOptions(**value)
        raise InvalidOptionError("embedding_model must be a model name, a dict or NomicEmbedOptions")

    # ------------------------------------------------------------------------------ resolving

    def resolve(self, record: DatasetRecord) -> IndexRecord:
        """The index to register on `record`; raises before anything is written."""
        if record.total_datums == 0:
            raise InvalidOptionError(f"{record.identifier} has no data; add rows with add_data before create_index")
        modality = self._modality(record)
        if modality == "text":
            if not self.indexed_field:
                raise InvalidOptionError("a text index needs indexed_field= naming the text field to embed")
            if not _is_text(_field_type(record, self.indexed_field)):
                raise InvalidOptionError(f"indexed_field {self.indexed_field!r} is not a text field; pick a string field")
        elif self.indexed_field is not None:
            _field_type(record, self.indexed_field)
        topics = self.topic_model
        if topics is not None and topics.topic_label_field:
            _field_type(record, topics.topic_label_field)
        if topics is not None and modality != "text" and not topics.topic_label_field:
            warnings.warn(
                f"no topic_label_field for a map of {modality}s: topics are built but named by number and "
                "position; pass topic_model={'topic_label_field': '<a text field>'} for worded labels",
                stacklevel=3,
            )
        source = self._source_index(record, modality)
        name = self._free_name(record, modality)
        return IndexRecord(
            id=str(uuid.uuid4()),
            name=name,
            asset_name=_asset_name(record, name),
            indexed_field=self.indexed_field,
            modality=modality,
            embedding_model=source.embedding_model if source else self._model_name(modality),
            reuse_embeddings_from_index=source.id if source else None,
            projection=self.projection.layout_settings() if self.projection is not None else None,
            topic_model=topics.model_dump() if topics is not None else None,
            duplicate_detection=self.duplicate_detection.model_dump() if self.duplicate_detection is not None else None,
            created=utc_now(),
        )

    def _modality(self, record: DatasetRecord) -> str:
        data_modality = record.modality or "text"
        chosen = self.modality or data_modality
        if chosen != data_modality:
            raise InvalidOptionError(
                f"{record.identifier} holds {data_modality} data; a {chosen} index cannot be built on it"
                + (" (a text model cannot embed images)" if data_modality == "image" else "")
            )
        return chosen

    def _model_name(self, modality: str) -> str | None:
        if modality == "embedding":
            if self.embedding_model is not None:
                warnings.warn("embedding_model is ignored for a dataset of your own vectors", stacklevel=4)
            return None
        options = self.embedding_model or NomicEmbedOptions()
        # An unknown model -> ModelError listing the available ones; a model of the wrong kind too.
        spec = resolve_model(options.model, kind="image" if modality == "image" else "text")
        # Installed now (once per machine), so a model that cannot be had (a hub model offline) fails
        # before the index is registered, not inside the run.
        install_model(spec.source.path if isinstance(spec.source, LocalFolderSource) else spec.name)
        return spec.name

    def _source_index(self, record: DatasetRecord, modality: str) -> IndexRecord | None:
        wanted = self.reuse_embeddings_from_index
        if wanted is None:
            return None
        source = record.find_index(wanted)
        if source is None:
            known = ", ".join(repr(index.name) for index in record.indices) or "none"
            raise InvalidOptionError(
                f"reuse_embeddings_from_index={wanted!r} names no index of {record.identifier}; "
                f"existing indices: {known}"
            )
        if source.modality != modality:
            raise InvalidOptionError("reused embeddings must come from an index of the same modality")
        return source

    def _free_name(self, record: DatasetRecord, modality: str) -> str:
        chosen = (self.name or f"{self.indexed_field or modality} map").strip()
        if not chosen or len(chosen) > MAX_INDEX_NAME or any(ord(c) < 32 for c in chosen):
            raise InvalidOptionError(f"an index name must be 1 to {MAX_INDEX_NAME} printable characters")
        if any(index.name == chosen for index in record.indices):
            raise InvalidOptionError(
                f"{record.identifier} already has an index named {chosen!r}; pass another name= "
                "or use get_map(name=...) to open it"
            )
        return chosen


def new_index_record(record: DatasetRecord, **arguments: Any) -> IndexRecord:
    """`IndexRequest(**arguments).resolve(record)`: the index `create_index` would register."""
    return IndexRequest(**arguments).resolve(record)


def _field_type(record: DatasetRecord, field: str) -> pa.DataType:
    schema = record.schema
    if schema is None or field not in schema.names:
        available = ", ".join(name for name in (schema.names if schema else []) if not name.startswith("_"))
        raise InvalidOptionError(
            f"{field!r} is not a field of {record.identifier}; available fields: {available or 'none'}"
        )
    return schema.field(field).type


def _is_text(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or (
        pa.types.is_dictionary(data_type) and pa.types.is_string(data_type.value_type)
    )


def _asset_name(record: DatasetRecord, name: str) -> str:
    base = sanitise(re.sub(r"\s+", "_", name.lower()))[:40]
    taken = {index.asset_name for index in record.indices}
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}_{number}", number + 1
    return candidate
