"""`atlas.map_data(...)` of the `nomic` client: a new dataset, one upload, one map, in one call; and
the older `map_text` / `map_embeddings` (the nomic 3.x client refuses them with a DeprecationWarning;
here they still work, through map_data).

As in nomic: the modality follows the arguments (blobs -> image, indexed_field -> text, else the
embeddings); a dataset that already holds data is refused; a failed first upload deletes the new
dataset again; the map is named after the dataset; the dataset is returned. Different: an image
map's default model is this project's offline image model (nomic's default, nomic-embed-vision-v1.5,
needs the hub), and without `identifier` the random name is `map-<8 hex digits>`.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from atlas_assets.client.dataset import AtlasDataset
from atlas_assets.client.options import NomicEmbedOptions, NomicProjectOptions
from atlas_assets.errors import InvalidDataError, InvalidOptionError

TEXT_ONLY_MODELS = ("nomic-embed-text-v1", "nomic-embed-text-v1.5")
# nomic's map_text / map_embeddings defaults: only values changed from these are passed on
_NOMIC_PROJECTION_DEFAULTS = {"n_neighbors": 15, "n_epochs": 50, "spread": 1.0}


def map_data(
    data: Any = None,
    blobs: list[Any] | None = None,
    embeddings: np.ndarray | None = None,
    identifier: str | None = None,
    description: str = "",
    id_field: str | None = None,
    is_public: bool = True,
    indexed_field: str | None = None,
    projection: bool | dict | NomicProjectOptions | None = None,
    topic_model: bool | dict | Any = True,
    duplicate_detection: bool | dict | Any = True,
    embedding_model: str | dict | NomicEmbedOptions | None = None,
) -> AtlasDataset:
    """Create a dataset from `data` (+ `embeddings` or image `blobs`), build its map, return it."""
    modality = "embedding"
    if embeddings is not None:
        if not isinstance(embeddings, np.ndarray):
            raise InvalidDataError("You must pass in a numpy array of embeddings")
        if embeddings.size == 0:
            raise InvalidDataError("Your embeddings cannot be empty")
    if indexed_field is not None:
        if embeddings is not None:
            raise InvalidOptionError(
                "map_data got both indexed_field= (a text map) and embeddings=; pass one (nomic ignores the embeddings)"
            )
        modality = "text"
    if blobs is not None:
        if embeddings is not None:
            raise InvalidOptionError(
                "You cannot pass both `blobs` and `embeddings` to map_data(). To create a map of images, include "
                "`blobs` and not `embeddings`."
            )
        modality, indexed_field = "image", None
        if embedding_model is not None and _model_name(embedding_model) in TEXT_ONLY_MODELS:
            raise InvalidOptionError("You cannot use a text embedding model with blobs")
    if modality == "embedding" and embeddings is None:
        raise InvalidOptionError(
            "map_data needs indexed_field= (the text field to embed), embeddings= (your vectors) or blobs= (images)"
        )
    name = identifier or f"map-{uuid.uuid4().hex[:8]}"
    dataset = AtlasDataset(name, description=description, unique_id_field=id_field, is_public=is_public)
    if dataset.total_datums > 0:
        raise InvalidOptionError(
            f"Cannot use map_data to update an existing dataset ({dataset.identifier} holds "
            f"{dataset.total_datums} rows); use dataset.add_data() and dataset.update_indices()"
        )
    try:
        dataset.add_data(data=data, embeddings=embeddings, blobs=blobs)
    except BaseException:
        dataset.delete()  # as nomic: a failed first upload leaves no empty dataset behind
        raise
    dataset.create_index(
        name=name,
        indexed_field=indexed_field,
        modality=modality,
        projection=projection,
        topic_model=topic_model,
        duplicate_detection=duplicate_detection,
        embedding_model=embedding_model,
    )
    return dataset


def map_text(
    data: Any,
    indexed_field: str,
    id_field: str | None = None,
    name: str | None = None,
    description: str | None = None,
    build_topic_model: bool = True,
    is_public: bool = True,
    colorable_fields: list[str] | None = None,
    num_workers: Any = None,
    reset_project_if_exists: bool = False,
    add_datums_if_exists: bool = False,
    shard_size: Any = None,
    projection_n_neighbors: int = 15,
    projection_epochs: int = 50,
    projection_spread: float = 1.0,
    duplicate_detection: bool = True,
    duplicate_threshold: float = 0.1,
    organization_name: str | None = None,
) -> AtlasDataset:
    """The nomic 2.x call (refused by nomic 3.x): map_data over a text field."""
    name = _qualified(name, organization_name)
    _reset_if_asked(name, reset_project_if_exists)
    return map_data(
        data=data,
        identifier=name,
        description=description or "",
        id_field=id_field,
        is_public=is_public,
        indexed_field=indexed_field,
        projection=_projection(projection_n_neighbors, projection_epochs, projection_spread),
        topic_model=build_topic_model,
        duplicate_detection={"duplicate_cutoff": duplicate_threshold} if duplicate_detection else False,
    )


def map_embeddings(
    embeddings: np.ndarray,
    data: Any = None,
    id_field: str | None = None,
    name: str | None = None,
    description: str | None = None,
    is_public: bool = True,
    colorable_fields: list[str] | None = None,
    build_topic_model: bool = True,
    topic_label_field: str | None = None,
    num_workers: Any = None,
    reset_project_if_exists: bool = False,
    add_datums_if_exists: bool = False,
    shard_size: Any = None,
    projection_n_neighbors: int = 15,
    projection_epochs: int = 50,
    projection_spread: float = 1.0,
    organization_name: str | None = None,
) -> AtlasDataset:
    """The nomic 2.x call (refused by nomic 3.x): map_data over your own vectors."""
    name = _qualified(name, organization_name)
    _reset_if_asked(name, reset_project_if_exists)
    topics: bool | dict = {"topic_label_field": topic_label_field} if build_topic_model and topic_label_field else build_topic_model
    return map_data(
        data=data,
        embeddings=embeddings,
        identifier=name,
        description=description or "",
        id_field=id_field,
        is_public=is_public,
        projection=_projection(projection_n_neighbors, projection_epochs, projection_spread),
        topic_model=topics,
    )


def _model_name(embedding_model: Any) -> str | None:
    if isinstance(embedding_model, str):
        return embedding_model
    if isinstance(embedding_model, dict):
        return embedding_model.get("model")
    if isinstance(embedding_model, NomicEmbedOptions):
        return embedding_model.model
    raise InvalidOptionError("embedding_model must be a string, dictionary, or NomicEmbedOptions object")


def _projection(n_neighbors: int, n_epochs: int, spread: float) -> dict[str, Any] | None:
    given = {"n_neighbors": n_neighbors, "n_epochs": n_epochs, "spread": spread}
    changed = {key: value for key, value in given.items() if value != _NOMIC_PROJECTION_DEFAULTS[key]}
    return changed or None


def _qualified(name: str | None, organisation: str | None) -> str | None:
    if organisation and name and "/" not in name:
        return f"{organisation}/{name}"
    return name


def _reset_if_asked(name: str | None, reset: bool) -> None:
    if reset and name:
        from atlas_assets.client.dataset import parse_identifier
        from resources.storage import DatasetStore

        organisation, slug, _ = parse_identifier(name)
        if DatasetStore().find_dataset(organisation, slug) is not None:
            AtlasDataset(name).delete()
