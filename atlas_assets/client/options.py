"""Option models of `create_index`, named and shaped as in the `nomic` client.

Each `create_index` option takes a bool, a dict or one of these models; `coerce_option` turns any of
them into the model (or None when switched off) and turns pydantic's errors into `InvalidOptionError`.

As in the `nomic` client (whose pydantic models ignore fields they do not know), a field that is not
one of the model's is ignored, but here with a warning that names the valid fields; a value out of
range is an error naming the field. `ProjectionOptions` is the newest client's name of
`NomicProjectOptions` (3.1.3); both are accepted everywhere, and `model="umap"` (newest client) is
the UMAP-faithful layout, `nomic-project-v1`.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from atlas_assets.errors import InvalidOptionError

DEFAULT_EMBEDDING_MODEL = "NomicEmbed"
# Layout models: the newest nomic client's "umap" is nomic-project-v1 here (the UMAP-faithful layout).
LAYOUT_MODEL_ALIASES = {"umap": "nomic-project-v1"}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _ignore_unknown_fields(cls, values: Any) -> Any:
        """Unknown fields are dropped with a warning (nomic's models ignore them silently)."""
        if not isinstance(values, dict):
            return values
        unknown = [name for name in values if name not in cls.model_fields]
        if unknown:
            warnings.warn(
                f"{cls.__name__} ignores {', '.join(repr(name) for name in unknown)} (as the nomic client "
                f"does); valid fields: {', '.join(cls.model_fields)}",
                stacklevel=6,
            )
            values = {name: value for name, value in values.items() if name in cls.model_fields}
        return values

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'value'}: {item['msg']}"
                for item in error.errors()
            )
            raise InvalidOptionError(
                f"invalid {type(self).__name__}: {problems}. "
                f"Valid fields: {', '.join(type(self).model_fields)}"
            ) from None


class NomicTopicOptions(_Options):
    """Topic model settings (docs/topics_and_duplicates.md).

    cluster_method: both group rows by the neighbour graph in embedding space. "fast" (default) only
    merges regions that touch on the 2-D map, so every topic is one region and its label sits on it;
    "accurate" merges whatever is most alike (closer to the data; topics may interleave on the map,
    and its best depth agrees more with labels whose classes the map splits apart, e.g. ag_news).
    Both run in seconds for 100k rows. Both merge small communities into the deepest topics and
    group those into broader ones, so each topic at depth d+1 always lies inside one topic at depth
    d. enforce_topic_hierarchy: False groups at each depth's topic count, so the data decides how
    many subtopics a topic gets (a compact topic may keep a single subtopic); True splits every
    topic into subtopics in proportion to its size, at least two whenever it can be split.
    """

    build_topic_model: bool = True
    topic_label_field: str | None = None
    cluster_method: Literal["fast", "accurate"] = "fast"
    enforce_topic_hierarchy: bool = False


class NomicDuplicatesOptions(_Options):
    """Semantic duplicate detection: rows whose cosine distance is <= duplicate_cutoff are joined."""

    tag_duplicates: bool = True
    duplicate_cutoff: float = Field(default=0.1, ge=0.0, le=1.0)


class NomicProjectOptions(_Options):
    """2-D layout settings; None means chosen from the data size (see docs/concepts.md)."""

    n_neighbors: int | None = Field(default=None, ge=2, le=200)
    n_epochs: int | None = Field(default=None, ge=1, le=10_000)
    model: Literal["nomic-project-v1", "nomic-project-v2", "umap"] | None = None
    local_neighborhood_size: int | None = Field(default=None, ge=1, le=200)
    spread: float | None = Field(default=None, gt=0.0, le=100.0)
    rho: float | None = Field(default=None, ge=0.0, le=10.0)
    min_dist: float | None = Field(default=None, ge=0.0, le=10.0)

    @model_validator(mode="before")
    @classmethod
    def _v2_knobs_only_for_v2(cls, values: Any) -> Any:
        """local_neighborhood_size and rho apply to nomic-project-v2 only: nomic ignores them for the
        other models, and so does this (with a warning)."""
        if not isinstance(values, dict) or values.get("model") in (None, "nomic-project-v2"):
            return values
        ignored = [name for name in ("local_neighborhood_size", "rho") if values.get(name) is not None]
        if ignored:
            warnings.warn(
                f"{' and '.join(ignored)} only appl{'y' if len(ignored) > 1 else 'ies'} to "
                f"model='nomic-project-v2'; ignored for model={values['model']!r}",
                stacklevel=6,
            )
            values = {name: value for name, value in values.items() if name not in ignored}
        return values

    @model_validator(mode="after")
    def _min_dist_within_spread(self) -> "NomicProjectOptions":
        if self.min_dist is not None and self.spread is not None and self.min_dist > self.spread:
            raise ValueError(
                f"min_dist ({self.min_dist}) must not exceed spread ({self.spread}); "
                "lower min_dist or raise spread"
            )
        return self

    def layout_settings(self) -> dict[str, Any]:
        """The options as the index record keeps them (the layout's own model names)."""
        values = self.model_dump()
        values["model"] = LAYOUT_MODEL_ALIASES.get(values["model"], values["model"])
        return values


class ProjectionOptions(NomicProjectOptions):
    """The newest `nomic` client's name of NomicProjectOptions (same fields; `model="umap"` too)."""


class NomicEmbedOptions(_Options):
    """Which embedding model to use; ignored for datasets of the user's own vectors."""

    model: str = DEFAULT_EMBEDDING_MODEL


OptionModel = TypeVar("OptionModel", bound=_Options)


def coerce_option(
    value: bool | dict[str, Any] | OptionModel | None, model: type[OptionModel], option_name: str
) -> OptionModel | None:
    """Turn a create_index option given as bool, dict or model into the model, or None when off."""
    if value is None and model is NomicProjectOptions:
        return model()  # the newest nomic client's default: projection=None means "the usual layout"
    if value is None or value is False:
        return None
    if value is True:
        return model()
    if isinstance(value, model):
        return value
    if isinstance(value, dict):
        return model(**value)
    raise InvalidOptionError(
        f"{option_name} must be True, False, a dict or {model.__name__}, not {type(value).__name__}"
    )
