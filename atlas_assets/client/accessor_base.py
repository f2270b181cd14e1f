"""What every map accessor (`map.data`, `.embeddings`, `.topics`, `.duplicates`, `.tags`) shares: its
map, the id field, and the read model checked to hold the stage asked for (with an error that says
whether the stage was switched off when the map was built, or is only not built yet)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from atlas_assets.errors import IndexNotReadyError
from atlas_assets.maps.model import MapModel

if TYPE_CHECKING:  # the map module imports the accessors
    from atlas_assets.client.map import AtlasProjection

# stage -> (the create_index option that switches it off, what it is called in messages)
_SWITCHES = {
    "projection": ("projection", "no 2-D layout"),
    "topics": ("topic_model", "no topics"),
    "duplicates": ("duplicate_detection", "no duplicate detection"),
}


class MapAccessor:
    def __init__(self, projection: AtlasProjection) -> None:
        self.projection = projection

    @property
    def _projection(self) -> AtlasProjection:
        return self.projection

    @property
    def dataset(self) -> Any:
        return self.projection.dataset

    @property
    def _id_field(self) -> str:
        return self.projection.dataset.id_field

    def _model(self, stage: str | None = None) -> MapModel:
        """The read model, checked to hold `stage` (IndexNotReadyError naming the fix otherwise)."""
        model = self.projection.read_model()
        built = {
            None: True,
            "projection": model.x is not None,
            "topics": bool(model.topic_rows),
            "duplicates": model.duplicate_class is not None,
        }[stage]
        if not built:
            raise IndexNotReadyError(self._not_built(stage))  # type: ignore[arg-type]
        return model

    def _not_built(self, stage: str) -> str:
        option, what = _SWITCHES[stage]
        index = self.projection.index_record()
        settings = getattr(index, option)
        switched_off = settings is None or (
            (stage == "topics" and settings.get("build_topic_model") is False)
            or (stage == "duplicates" and settings.get("tag_duplicates") is False)
        )
        if switched_off:
            return (
                f"map {index.name!r} has {what}: it was switched off ({option}=False) when the map was "
                f"created, so update_indices() will not build it; create a map with it: "
                f"dataset.create_index(..., {option}=True)"
            )
        return (
            f"the {stage} of map {index.name!r} has not been built yet; "
            "run dataset.update_indices() (or materialise it in the Dagster UI)"
        )

    def _frame(self, model: MapModel, columns: dict[str, Any]) -> pd.DataFrame:
        """The id field first, then `columns`, one row per map row."""
        return pd.DataFrame({self._id_field: model.ids, **columns})
