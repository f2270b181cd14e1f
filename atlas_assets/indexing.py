"""`create_index` argument handling: validate every option against the dataset, then describe the
index as an `IndexRecord` the pipeline builds from.

Everything is checked before the record is written, so a bad call changes nothing.
"""

from __future__ import annotations

import re
import uuid
import warnings
from typing import Any

import pyarrow as pa

from atlas_assets.errors import InvalidOptionError
from atlas_assets.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
    coerce_option,
)
from atlas_assets.pipeline.naming import sanitise
from resources.model_store import resolve_model
from resources.records import DatasetRecord, IndexRecord, utc_now

MAX_INDEX_NAME = 100


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


def _embedding_model(value: Any, modality: str) -> str | None:
    if modality == "embedding":
        if value is not None:
            warnings.warn("embedding_model is ignored for a dataset of your own vectors", stacklevel=4)
        return None
    if value is None:
        options = NomicEmbedOptions()
    elif isinstance(value, str):
        options = NomicEmbedOptions(model=value)
    elif isinstance(value, dict):
        options = NomicEmbedOptions(**value)
    elif isinstance(value, NomicEmbedOptions):
        options = value
    else:
        raise InvalidOptionError("embedding_model must be a model name, a dict or NomicEmbedOptions")
    # Names an unknown model -> ModelError listing the available ones; wrong kind -> an error too.
    return resolve_model(options.model, kind="image" if modality == "image" else "text").name


def _index_name(record: DatasetRecord, name: str | None, indexed_field: str | None, modality: str) -> str:
    chosen = (name or f"{indexed_field or modality} map").strip()
    if not chosen or len(chosen) > MAX_INDEX_NAME or any(ord(c) < 32 for c in chosen):
        raise InvalidOptionError(f"an index name must be 1 to {MAX_INDEX_NAME} printable characters")
    if any(index.name == chosen for index in record.indices):
        raise InvalidOptionError(
            f"{record.identifier} already has an index named {chosen!r}; pass another name= "
            "or use get_map(name=...) to open it"
        )
    return chosen


def _asset_name(record: DatasetRecord, name: str) -> str:
    base = sanitise(re.sub(r"\s+", "_", name.lower()))[:40]
    taken = {index.asset_name for index in record.indices}
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}_{number}", number + 1
    return candidate


def new_index_record(
    record: DatasetRecord,
    name: str | None = None,
    indexed_field: str | None = None,
    modality: str | None = None,
    projection: bool | dict | NomicProjectOptions = True,
    topic_model: bool | dict | NomicTopicOptions = True,
    duplicate_detection: bool | dict | NomicDuplicatesOptions = True,
    embedding_model: str | dict | NomicEmbedOptions | None = None,
    reuse_embeddings_from_index: str | None = None,
) -> IndexRecord:
    """The index `create_index` asks for, checked against the dataset; raises before anything is written."""
    if record.total_datums == 0:
        raise InvalidOptionError(f"{record.identifier} has no data; add rows with add_data before create_index")
    data_modality = record.modality or "text"
    chosen_modality = modality or data_modality
    if chosen_modality not in ("text", "image", "embedding"):
        raise InvalidOptionError(f"modality must be 'text', 'image' or 'embedding', not {chosen_modality!r}")
    if chosen_modality != data_modality and not (data_modality == "text" and chosen_modality == "text"):
        raise InvalidOptionError(
            f"{record.identifier} holds {data_modality} data; a {chosen_modality} index cannot be built on it"
            + (" (a text model cannot embed images)" if data_modality == "image" else "")
        )
    if chosen_modality == "text":
        if not indexed_field:
            raise InvalidOptionError("a text index needs indexed_field= naming the text field to embed")
        if not _is_text(_field_type(record, indexed_field)):
            raise InvalidOptionError(f"indexed_field {indexed_field!r} is not a text field; pick a string field")
    elif indexed_field is not None:
        _field_type(record, indexed_field)

    topics = coerce_option(topic_model, NomicTopicOptions, "topic_model")
    if topics is not None and topics.topic_label_field:
        _field_type(record, topics.topic_label_field)
    if topics is not None and chosen_modality != "text" and not topics.topic_label_field:
        warnings.warn(
            "no topic_label_field for a map of "
            f"{chosen_modality}s: topics are built but named by number and position; "
            "pass topic_model={'topic_label_field': '<a text field>'} for worded labels",
            stacklevel=3,
        )
    duplicates = coerce_option(duplicate_detection, NomicDuplicatesOptions, "duplicate_detection")
    layout = coerce_option(projection, NomicProjectOptions, "projection")

    source = None
    if reuse_embeddings_from_index is not None:
        source = next(
            (i for i in record.indices if reuse_embeddings_from_index in (i.id, i.name)), None
        )
        if source is None:
            known = ", ".join(repr(i.name) for i in record.indices) or "none"
            raise InvalidOptionError(
                f"reuse_embeddings_from_index={reuse_embeddings_from_index!r} names no index of "
                f"{record.identifier}; existing indices: {known}"
            )
        if source.modality != chosen_modality:
            raise InvalidOptionError("reused embeddings must come from an index of the same modality")

    chosen_name = _index_name(record, name, indexed_field, chosen_modality)
    return IndexRecord(
        id=str(uuid.uuid4()),
        name=chosen_name,
        asset_name=_asset_name(record, chosen_name),
        indexed_field=indexed_field if chosen_modality == "text" else indexed_field,
        modality=chosen_modality,
        embedding_model=source.embedding_model if source else _embedding_model(embedding_model, chosen_modality),
        reuse_embeddings_from_index=source.id if source else None,
        projection=layout.model_dump() if layout is not None else None,
        topic_model=topics.model_dump() if topics is not None else None,
        duplicate_detection=duplicates.model_dump() if duplicates is not None else None,
        created=utc_now(),
    )
